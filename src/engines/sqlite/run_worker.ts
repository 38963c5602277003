import { CairnError } from "../../errors.ts";
import type { SqliteReply, SqliteRequest } from "./sqlite_worker.ts";

/** Runs one request in a fresh worker; an abort terminates the worker at once. */
export function runSqliteWorker(
  request: SqliteRequest,
  signal: AbortSignal,
): Promise<Extract<SqliteReply, { ok: true }>> {
  signal.throwIfAborted();
  const worker = new Worker(new URL("./sqlite_worker.ts", import.meta.url).href, {
    type: "module",
  });
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      worker.terminate();
      reject(signal.reason);
    };
    signal.addEventListener("abort", onAbort, { once: true });
    const settle = () => {
      signal.removeEventListener("abort", onAbort);
      worker.terminate();
    };
    worker.onmessage = (event: MessageEvent<SqliteReply>) => {
      settle();
      const reply = event.data;
      if (reply.ok) resolve(reply);
      else reject(new CairnError("SOURCE_UNAVAILABLE", `SQLite: ${reply.error}`));
    };
    worker.onerror = (event) => {
      event.preventDefault();
      settle();
      reject(new CairnError("INTERNAL", `SQLite worker failed: ${event.message}`));
    };
    worker.postMessage(request);
  });
}
