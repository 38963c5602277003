import { join } from "node:path";

export async function tempDir(prefix = "cairn-test-"): Promise<string> {
  return await Deno.makeTempDir({ prefix });
}

export async function withTempDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await tempDir();
  try {
    return await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/** A config file for tests: an fs repository and a store under `dir`, plus the given clients. */
export async function writeConfig(
  dir: string,
  options: {
    clients?: Record<string, unknown>;
    store?: "sqlite" | "jsonl";
    backup?: Record<string, unknown>;
    repositoryPath?: string;
    /** Merged over the fs repository (encryption, compression). */
    repository?: Record<string, unknown>;
    server?: Record<string, unknown>;
    extra?: string;
  } = {},
): Promise<string> {
  const store = options.store ?? "sqlite";
  const config = {
    // Port 0: a test never collides with a running daemon (or another test) on a fixed port.
    server: { listen: "127.0.0.1:0", ...(options.server ?? {}) },
    store: { kind: store, path: join(dir, store === "sqlite" ? "cairn.db" : "jobs.jsonl") },
    repository: {
      kind: "fs",
      path: options.repositoryPath ?? join(dir, "repo"),
      ...(options.repository ?? {}),
    },
    backup: {
      worker_max_attempts: 1,
      retry_backoff_ms: 100,
      execution_worker_poll_ms: 250,
      ...(options.backup ?? {}),
    },
    clients: options.clients ?? {},
  };
  const path = join(dir, "cairn.yaml");
  await Deno.writeTextFile(path, JSON.stringify(config, null, 2) + (options.extra ?? ""));
  return path;
}

export const MAIN = new URL("../../main.ts", import.meta.url).pathname;

/** The permissions the compiled binary gets (deno.json "compile"): tests run cairn with exactly these. */
export const CAIRN_PERMISSIONS = [
  "--allow-read",
  "--allow-write",
  "--allow-net",
  "--allow-env",
  "--allow-run",
  "--allow-sys",
];

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the real `cairn` entry point as a child process. */
export async function cairn(
  args: string[],
  options: { env?: Record<string, string>; cwd?: string } = {},
): Promise<CliResult> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", ...CAIRN_PERMISSIONS, MAIN, ...args],
    env: { NO_COLOR: "1", ...(options.env ?? {}) },
    cwd: options.cwd,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

export async function sha256File(path: string): Promise<string> {
  const { createHash } = await import("node:crypto");
  const hash = createHash("sha256");
  const file = await Deno.open(path);
  for await (const chunk of file.readable) hash.update(chunk);
  return hash.digest("hex");
}

/** A small tree with nested directories, a symlink, an empty file and odd names. */
export async function makeTree(root: string): Promise<void> {
  await Deno.mkdir(join(root, "sub/deeper"), { recursive: true });
  await Deno.writeTextFile(join(root, "a.txt"), "alpha\n");
  await Deno.writeTextFile(join(root, "sub/b.txt"), "bravo ".repeat(1000));
  await Deno.writeFile(join(root, "sub/deeper/bin.dat"), randomBytes(70_000));
  await Deno.writeTextFile(join(root, "empty"), "");
  await Deno.writeTextFile(join(root, "sub/ünïcødé name with spaces.txt"), "unicode\n");
  const long = "l".repeat(120);
  await Deno.writeTextFile(join(root, "sub", long), "long name\n");
  await Deno.chmod(join(root, "a.txt"), 0o640);
  await Deno.symlink("a.txt", join(root, "link-to-a"));
  await Deno.symlink("/etc/hostname", join(root, "link-outside"));
  await Deno.utime(
    join(root, "a.txt"),
    new Date("2020-01-02T03:04:05Z"),
    new Date("2020-01-02T03:04:05Z"),
  );
}

/** Random bytes of any size (getRandomValues gives at most 64 KiB per call). */
export function randomBytes(n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i += 65536) {
    crypto.getRandomValues(out.subarray(i, Math.min(n, i + 65536)));
  }
  return out;
}

/**
 * A loopback port free at this moment (bound, noted, closed): for a server a test
 * starts, or, left unused, for "nothing listens there".
 */
export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}
