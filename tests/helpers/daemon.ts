import { CAIRN_PERMISSIONS, MAIN } from "./tmp.ts";

export interface RunningDaemon {
  url: string;
  pid: number;
  logs: string[];
  /** Sends a signal and waits for the exit code. */
  stop(signal?: Deno.Signal): Promise<number>;
  /** fetch() against the daemon with the admin key (unless headers say otherwise). */
  api(
    path: string,
    init?: RequestInit & { json?: unknown; key?: string | null },
  ): Promise<Response>;
}

/**
 * Starts the real `cairn daemon` as a child process. The config should listen on
 * 127.0.0.1:0; the bound port is read from the daemon's "started" log line.
 */
export async function spawnDaemon(
  config: string,
  options: { adminKey?: string; env?: Record<string, string> } = {},
): Promise<RunningDaemon> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", ...CAIRN_PERMISSIONS, MAIN, "daemon", "--config", config],
    env: { NO_COLOR: "1", ...(options.env ?? {}) },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const logs: string[] = [];
  let resolveUrl!: (url: string) => void;
  let rejectUrl!: (e: Error) => void;
  const urlPromise = new Promise<string>((res, rej) => ((resolveUrl = res), (rejectUrl = rej)));
  const pump = async (stream: ReadableStream<Uint8Array>) => {
    let buf = "";
    for await (const text of stream.pipeThrough(new TextDecoderStream())) {
      buf += text;
      let nl;
      while ((nl = buf.indexOf("\n")) !== -1) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        logs.push(line);
        if (line.includes('"cairn daemon started"')) {
          resolveUrl(`http://${JSON.parse(line).listen}`);
        }
      }
    }
  };
  const pumps = Promise.all([pump(child.stdout), pump(child.stderr)]);
  const status = child.status.then((s) => {
    rejectUrl(new Error(`daemon exited with ${s.code} before it was ready:\n${logs.join("\n")}`));
    return s;
  });
  const timer = setTimeout(
    () => rejectUrl(new Error(`daemon not ready after 20 s:\n${logs.join("\n")}`)),
    20_000,
  );
  const url = await urlPromise.finally(() => clearTimeout(timer));
  return {
    url,
    pid: child.pid,
    logs,
    async stop(signal: Deno.Signal = "SIGTERM") {
      try {
        child.kill(signal);
      } catch { /* already gone */ }
      const s = await status;
      await pumps.catch(() => {});
      return s.code;
    },
    api(path, init = {}) {
      const headers = new Headers(init.headers);
      const key = init.key === undefined ? options.adminKey : init.key;
      if (key) headers.set("authorization", `Bearer ${key}`);
      let body = init.body;
      if (init.json !== undefined) {
        body = JSON.stringify(init.json);
        headers.set("content-type", "application/json");
      }
      return fetch(url + path, { ...init, headers, body });
    },
  };
}

export async function json(res: Response): Promise<any> {
  const text = await res.text();
  try {
    return JSON.parse(text);
  } catch {
    throw new Error(`Not JSON (${res.status}): ${text.slice(0, 300)}`);
  }
}

export async function waitFor<T>(
  fn: () => Promise<T | null | undefined | false>,
  what: string,
  timeoutMs = 30_000,
): Promise<T> {
  const start = Date.now();
  for (;;) {
    const v = await fn();
    if (v) return v as T;
    if (Date.now() - start > timeoutMs) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export async function waitForJob(
  d: RunningDaemon,
  id: number,
  statuses: string[],
  timeoutMs = 60_000,
): Promise<any> {
  return await waitFor(
    async () => {
      const job = (await json(await d.api(`/admin/backups/jobs/${id}`))).data;
      return statuses.includes(job.status) ? job : null;
    },
    `job ${id} to reach ${statuses.join("/")}`,
    timeoutMs,
  );
}
