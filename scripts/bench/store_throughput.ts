/**
 * Enqueue and complete N no-op jobs through the real worker pool, once per store,
 * and print jobs per second. The job body does nothing, so this measures the
 * store's enqueue -> claim -> complete path with every commit fsynced.
 *
 *   deno task bench:store [--jobs 10000 --concurrency 4]
 */
import { join } from "node:path";
import { parseArgs } from "node:util";
import { parseConfig } from "../../src/config/load.ts";
import { configureLog } from "../../src/log.ts";
import { openServices } from "../../src/runtime/services.ts";
import { WorkerPool } from "../../src/runtime/worker_pool.ts";

const { values } = parseArgs({
  options: {
    jobs: { type: "string", default: "10000" },
    concurrency: { type: "string", default: "4" },
  },
});
const N = Number(values.jobs);
const concurrency = Number(values.concurrency);
configureLog({ to: () => {} });

async function measure(kind: "sqlite" | "jsonl"): Promise<number> {
  const dir = await Deno.makeTempDir({ prefix: "cairn-bench-store-" });
  try {
    const config = parseConfig(JSON.stringify({
      store: { kind, path: join(dir, kind === "sqlite" ? "cairn.db" : "jobs.jsonl") },
      repository: { kind: "fs", path: join(dir, "repo") },
    }));
    const services = await openServices(config);
    let done = 0;
    let finish!: () => void;
    const all = new Promise<void>((r) => (finish = r));
    const pool = new WorkerPool(services, {
      concurrency,
      pollMs: 1000,
      execute: () => Promise.resolve({ ok: true }),
      onSettled: () => {
        if (++done === N) finish();
      },
    });
    pool.start();
    const started = performance.now();
    for (let i = 0; i < N; i++) {
      await services.store.enqueue({ kind: "backup", client_name: "bench", max_attempts: 1 });
      pool.wake();
    }
    await all;
    const seconds = (performance.now() - started) / 1000;
    await pool.stop(1000);
    const completed = await services.store.count({ status: "completed" });
    await services.store.close();
    if (completed !== N) throw new Error(`expected ${N} completed jobs, found ${completed}`);
    return N / seconds;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

console.log(
  `store throughput: ${N} no-op jobs, enqueue -> claim -> complete, worker_concurrency ${concurrency}`,
);
for (const kind of ["sqlite", "jsonl"] as const) {
  const rate = await measure(kind);
  const target = kind === "sqlite" ? " (target >= 500/s)" : "";
  console.log(
    `  ${kind.padEnd(6)} ${rate.toFixed(0).padStart(6)} jobs/s${target}  ratio to target ${
      (rate / 500).toFixed(2)
    }`,
  );
}
