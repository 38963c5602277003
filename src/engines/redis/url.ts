import { CairnError } from "../../errors.ts";

export interface RedisTarget {
  host: string;
  port: number;
  username: string | null;
  password: string | null;
  db: number;
  tls: boolean;
}

/** redis://[user[:password]@]host:port[/db], or rediss:// for TLS. */
export function parseRedisUrl(url: string, what = "url"): RedisTarget {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new CairnError(
      "VALIDATION_FAILED",
      `Invalid Redis ${what}: expected redis://[user[:password]@]host:port[/db]`,
    );
  }
  if (u.protocol !== "redis:" && u.protocol !== "rediss:") {
    throw new CairnError(
      "VALIDATION_FAILED",
      `Invalid Redis ${what}: it must start with redis:// or rediss://`,
    );
  }
  const db = u.pathname.replace(/^\//, "");
  if (db !== "" && !/^\d+$/.test(db)) {
    throw new CairnError(
      "VALIDATION_FAILED",
      `Invalid Redis ${what}: the path must be a database number`,
    );
  }
  return {
    host: u.hostname.replace(/^\[|\]$/g, "") || "127.0.0.1",
    port: Number(u.port || 6379),
    username: u.username ? decodeURIComponent(u.username) : null,
    password: u.password ? decodeURIComponent(u.password) : null,
    db: db === "" ? 0 : Number(db),
    tls: u.protocol === "rediss:",
  };
}

export function describe(t: RedisTarget): string {
  return `Redis at ${t.host}:${t.port}`;
}
