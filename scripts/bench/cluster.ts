/**
 * Jobs per second through 1 and 3 nodes (daemon-like processes, each a real worker
 * pool with a no-op job body) sharing one job store, PostgreSQL against SQLite in the
 * same run; then claim latency with 100,000 jobs in the store.
 *
 * Throughput: N jobs are enqueued first; the nodes start together and the clock runs
 * until the store counts N completed (claim -> complete, every commit durable).
 * Latency: 100,000 pending jobs; one claimer takes and completes `--claims` of them,
 * timing each claim.
 *
 *   deno task bench:cluster [--jobs 2000 --concurrency 8 --claims 2000 --backlog 100000]
 *     [--stores sqlite,postgres] [--nodes 1,3] [--no-latency]
 *
 * The last three narrow a run (to compare two builds on a busy machine in alternation,
 * many short runs beat a few long ones).
 *
 * Needs PostgreSQL on 127.0.0.1:5432 (user postgres, trust), as the tests do.
 */
import { join } from "node:path";
import { parseArgs } from "node:util";
import postgres from "postgres";
import { parseConfig } from "../../src/config/load.ts";
import * as state from "../../src/jobs/state.ts";
import { configureLog } from "../../src/log.ts";
import { openServices } from "../../src/runtime/services.ts";
import { WorkerPool } from "../../src/runtime/worker_pool.ts";
import { openStore } from "../../src/store/open.ts";

const { values } = parseArgs({
  options: {
    jobs: { type: "string", default: "2000" },
    concurrency: { type: "string", default: "8" },
    claims: { type: "string", default: "2000" },
    backlog: { type: "string", default: "100000" },
    stores: { type: "string", default: "sqlite,postgres" },
    nodes: { type: "string", default: "1,3" },
    "no-latency": { type: "boolean", default: false },
    // Internal: run as one node of a throughput measurement.
    node: { type: "string" },
  },
});
const N = Number(values.jobs);
const concurrency = Number(values.concurrency);
configureLog({ to: () => {} });

type StoreConfig = { kind: "sqlite"; path: string } | {
  kind: "postgres";
  url: string;
  path: string;
};

function configFor(store: StoreConfig, dir: string) {
  return parseConfig(JSON.stringify({
    store,
    repository: { kind: "fs", path: join(dir, "repo") },
    clients: { bench: { kind: "directory", path: dir } },
  }));
}

/** One node: a worker pool with a no-op body; waits for "go" on stdin, runs until told to stop. */
async function runNode(spec: { store: StoreConfig; dir: string }): Promise<void> {
  const services = await openServices(configFor(spec.store, spec.dir));
  const pool = new WorkerPool(services, {
    concurrency,
    pollMs: 100,
    execute: () => Promise.resolve({ ok: true }),
  });
  console.log("ready");
  const lines = Deno.stdin.readable.pipeThrough(new TextDecoderStream()).getReader();
  await lines.read(); // "go"
  pool.start();
  await lines.read(); // stdin closed: stop
  await pool.stop(1000);
  await services.store.close();
}

async function freshDatabase(): Promise<{ url: string; drop: () => Promise<void> }> {
  const name = `cairn_bench_${crypto.randomUUID().replaceAll("-", "").slice(0, 10)}`;
  const admin = postgres({
    host: "127.0.0.1",
    port: 5432,
    user: "postgres",
    database: "postgres",
    onnotice: () => {},
  });
  await admin.unsafe(`CREATE DATABASE "${name}"`);
  return {
    url: `postgres://postgres@127.0.0.1:5432/${name}`,
    drop: async () => {
      await admin.unsafe(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      await admin.end();
    },
  };
}

async function withStore<T>(
  kind: "sqlite" | "postgres",
  fn: (store: StoreConfig, dir: string) => Promise<T>,
): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix: "cairn-bench-cluster-" });
  const db = kind === "postgres" ? await freshDatabase() : null;
  try {
    const store: StoreConfig = db
      ? { kind: "postgres", url: db.url, path: join(dir, "node") }
      : { kind: "sqlite", path: join(dir, "cairn.db") };
    return await fn(store, dir);
  } finally {
    await db?.drop();
    await Deno.remove(dir, { recursive: true });
  }
}

/** `n` pending jobs, due one millisecond apart and all due now (as many enqueues would leave). */
function backlog(n: number) {
  const now = Date.now();
  return Array.from(
    { length: n },
    (_, i) =>
      state.newJob(i + 1, { kind: "backup", client_name: "bench", max_attempts: 1 }, now - n + i),
  );
}

async function throughput(kind: "sqlite" | "postgres", nodes: number): Promise<number> {
  return await withStore(kind, async (storeConfig, dir) => {
    const store = await openStore(configFor(storeConfig, dir).store);
    for (let i = 0; i < N; i++) {
      await store.enqueue({ kind: "backup", client_name: "bench", max_attempts: 1 });
    }
    const children = Array.from({ length: nodes }, () =>
      new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "--allow-all",
          import.meta.filename!,
          "--node",
          JSON.stringify({ store: storeConfig, dir }),
          "--concurrency",
          String(concurrency),
        ],
        stdin: "piped",
        stdout: "piped",
        stderr: "inherit",
      }).spawn());
    const writers = children.map((c) => c.stdin.getWriter());
    await Promise.all(children.map(async (c) => {
      const reader = c.stdout.pipeThrough(new TextDecoderStream()).getReader();
      const { value } = await reader.read();
      if (!value?.includes("ready")) throw new Error(`a node did not start: ${value}`);
      reader.releaseLock();
    }));
    const started = performance.now();
    await Promise.all(writers.map((w) => w.write(new TextEncoder().encode("go\n"))));
    // A job the store could not record (SQLite: "database is locked" past busy_timeout on
    // a loaded machine) is failed, not lost: it ends the wait too, and is reported.
    const ended = async () =>
      (await store.count({ status: "completed" })) + (await store.count({ status: "failed" }));
    while ((await ended()) < N) await new Promise((r) => setTimeout(r, 20));
    const seconds = (performance.now() - started) / 1000;
    await Promise.all(writers.map((w) => w.close()));
    await Promise.all(children.map((c) => c.status));
    await Promise.all(children.map((c) => c.stdout.cancel().catch(() => {})));
    const failed = await store.count({ status: "failed" });
    await store.close();
    if (failed > 0) console.log(`    (${kind}, ${nodes} nodes: ${failed} of ${N} jobs failed)`);
    return N / seconds;
  });
}

async function claimLatency(
  kind: "sqlite" | "postgres",
): Promise<{ p50: number; p99: number; n: number }> {
  const count = Number(values.backlog);
  const claims = Number(values.claims);
  return await withStore(kind, async (storeConfig, dir) => {
    const store = await openStore(configFor(storeConfig, dir).store);
    await store.importRecords({ jobs: backlog(count), schedules: [] });
    const lease = { owner: "bench", leaseMs: 60_000 };
    const times: number[] = [];
    for (let i = 0; i < claims; i++) {
      const t0 = performance.now();
      const job = await store.claim(lease, { clients: ["bench"] });
      times.push(performance.now() - t0);
      if (!job) throw new Error("ran out of jobs");
      await store.complete(job.id, job.lease_token!, {});
    }
    await store.close();
    times.sort((a, b) => a - b);
    const at = (q: number) => times[Math.min(times.length - 1, Math.floor(q * times.length))];
    return { p50: at(0.5), p99: at(0.99), n: claims };
  });
}

if (values.node) {
  await runNode(JSON.parse(values.node));
} else {
  console.log(
    `cluster throughput: ${N} no-op jobs enqueued first, then claim -> complete by nodes of worker_concurrency ${concurrency}`,
  );
  const kinds = values.stores.split(",").filter((k): k is "sqlite" | "postgres" =>
    k === "sqlite" || k === "postgres"
  );
  for (const kind of kinds) {
    for (const nodes of values.nodes.split(",").map(Number)) {
      const rate = await throughput(kind, nodes);
      const target = kind === "postgres" && nodes === 3 ? "  (target >= 500/s)" : "";
      console.log(
        `  ${kind.padEnd(8)} ${nodes} node${nodes > 1 ? "s" : " "} ${
          rate.toFixed(0).padStart(6)
        } jobs/s${target}`,
      );
    }
  }
  if (!values["no-latency"]) {
    console.log(
      `claim latency: ${values.backlog} pending jobs in the store, ${values.claims} claims one after another`,
    );
    for (const kind of kinds) {
      const { p50, p99 } = await claimLatency(kind);
      console.log(`  ${kind.padEnd(8)} p50 ${p50.toFixed(2)} ms  p99 ${p99.toFixed(2)} ms`);
    }
  }
}
