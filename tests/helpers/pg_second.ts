import { freePort } from "./tmp.ts";
import { join } from "node:path";

/** A second PostgreSQL server of its own: another port, another data directory, password auth. */
export interface SecondServer {
  port: number;
  password: string;
  url(database: string): string;
  stop(): Promise<void>;
}

const BIN = "/usr/lib/postgresql/15/bin";

async function asPostgres(args: string[]): Promise<void> {
  const out = await new Deno.Command("runuser", {
    args: ["-u", "postgres", "--", ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(
      `${args.join(" ")} failed: ${new TextDecoder().decode(out.stderr)}${
        new TextDecoder().decode(out.stdout)
      }`,
    );
  }
}

/**
 * initdb + pg_ctl start as the postgres user, in a temp directory, on a free port,
 * with scram-sha-256 for every connection (superuser `postgres` with `password`).
 * Fails with the tool's message when it cannot (no runuser, no PostgreSQL 15 binaries).
 */
export async function startSecondPostgres(
  password = "second-server-pw-4417",
): Promise<SecondServer> {
  const dir = await Deno.makeTempDir({ prefix: "cairn-pg2-" });
  await Deno.chown(dir, 101, 104).catch(async () => {
    const id = (name: string) =>
      new Deno.Command("id", { args: [name, "postgres"], stdout: "piped" }).output().then((o) =>
        Number(new TextDecoder().decode(o.stdout).trim())
      );
    await Deno.chown(dir, await id("-u"), await id("-g"));
  });
  const pwfile = join(dir, "pw");
  await Deno.writeTextFile(pwfile, password + "\n");
  await Deno.chown(pwfile, (await Deno.stat(dir)).uid, (await Deno.stat(dir)).gid);
  const data = join(dir, "data");
  const port = freePort();
  await asPostgres([
    `${BIN}/initdb`,
    "-D",
    data,
    "-U",
    "postgres",
    "--auth=scram-sha-256",
    `--pwfile=${pwfile}`,
    "--no-sync",
  ]);
  await asPostgres([
    `${BIN}/pg_ctl`,
    "-D",
    data,
    "-l",
    join(dir, "log"),
    "-w",
    "-o",
    `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off`,
    "start",
  ]);
  return {
    port,
    password,
    url: (database) => `postgres://postgres:${password}@127.0.0.1:${port}/${database}`,
    stop: async () => {
      await asPostgres([`${BIN}/pg_ctl`, "-D", data, "-m", "immediate", "-w", "stop"]).catch(
        () => {},
      );
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}
