/**
 * Admin API figures, from a second process on loopback (bounded loops):
 * - GET /admin/backups/jobs?limit=50 with 100,000 jobs in the store: p50 and p99 (target p99 < 20 ms)
 * - POST /admin/backups enqueue rate
 * - daemon start to first healthy response (target < 300 ms)
 *
 * - with --ops: the daemon also has a notification channel and a metrics token; then the
 *   list latency is measured again while /metrics is scraped every second, and the
 *   scrape's own latency is reported (the cost of issue 22's metrics and notifications)
 *
 *   deno task bench:api [--jobs 100000 --requests 2000 --store sqlite] [--ops]
 */
import { join } from "node:path";
import { parseArgs } from "node:util";
import { CAIRN } from "./common.ts";
import { parseConfig } from "../../src/config/load.ts";
import { configureLog } from "../../src/log.ts";
import { openStore } from "../../src/store/open.ts";

const { values } = parseArgs({
  options: {
    jobs: { type: "string", default: "100000" },
    requests: { type: "string", default: "2000" },
    store: { type: "string", default: "sqlite" },
    ops: { type: "boolean", default: false },
  },
});
const LOAD = new URL("./http_load.ts", import.meta.url).pathname;
const KEY = "bench-key";
const kind = values.store as "sqlite" | "jsonl";
configureLog({ to: () => {} });

const dir = await Deno.makeTempDir({ prefix: "cairn-bench-api-" });
const port = 20000 + Math.floor(Math.random() * 20000);
const configPath = join(dir, "cairn.yaml");
await Deno.mkdir(join(dir, "src"));
await Deno.writeTextFile(join(dir, "src", "a.txt"), "a");
await Deno.writeTextFile(
  configPath,
  JSON.stringify({
    server: { listen: `127.0.0.1:${port}`, admin_key: KEY },
    ...(values.ops
      ? {
        notifications: [{ kind: "webhook", name: "bench", url: `http://127.0.0.1:${port + 1}/` }],
      }
      : {}),
    store: { kind, path: join(dir, kind === "sqlite" ? "cairn.db" : "jobs.jsonl") },
    repository: { kind: "fs", path: join(dir, "repo") },
    backup: { worker_enabled: false },
    clients: { files: { kind: "directory", path: join(dir, "src") } },
  }),
);

async function fill(n: number): Promise<void> {
  const store = await openStore(parseConfig(await Deno.readTextFile(configPath)).store);
  const t = performance.now();
  for (let i = 0; i < n; i++) {
    await store.enqueue({
      kind: i % 5 === 0 ? "verify" : "backup",
      client_name: i % 2 ? "files" : "other",
      max_attempts: 3,
      label: "manual",
    });
  }
  await store.close();
  console.log(
    `  filled the ${kind} store with ${n} jobs in ${((performance.now() - t) / 1000).toFixed(1)} s`,
  );
}

async function startDaemon(): Promise<{ child: Deno.ChildProcess; readyMs: number }> {
  const started = performance.now();
  const child = new Deno.Command(Deno.execPath(), {
    args: [...CAIRN.slice(1), "daemon", "--config", configPath],
    stdout: "null",
    stderr: "null",
  }).spawn();
  for (;;) {
    try {
      const res = await fetch(`http://127.0.0.1:${port}/admin/health`);
      await res.arrayBuffer();
      if (res.ok) return { child, readyMs: performance.now() - started };
    } catch { /* not listening yet */ }
    if (performance.now() - started > 30_000) {
      throw new Error("daemon did not become healthy in 30 s");
    }
    await new Promise((r) => setTimeout(r, 2));
  }
}

async function load(path: string, method: string, count: number, concurrency: number, body = "") {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-net",
      LOAD,
      `http://127.0.0.1:${port}${path}`,
      method,
      String(count),
      String(concurrency),
      KEY,
      body,
    ],
    stdout: "piped",
  }).output();
  return JSON.parse(new TextDecoder().decode(out.stdout));
}

try {
  console.log(`admin API benchmark (${kind} store)`);
  // Start-up first, on an empty store, then with the full store.
  const starts: number[] = [];
  for (let i = 0; i < 5; i++) {
    const { child, readyMs } = await startDaemon();
    starts.push(readyMs);
    child.kill("SIGTERM");
    await child.status;
  }
  starts.sort((a, b) => a - b);
  console.log(
    `  daemon start to first healthy response: median ${starts[2].toFixed(0)} ms, best ${
      starts[0].toFixed(0)
    } ms (target < 300 ms; deno run, not the compiled binary)`,
  );

  await fill(Number(values.jobs));
  const { child, readyMs } = await startDaemon();
  try {
    console.log(`  start to healthy with ${values.jobs} jobs: ${readyMs.toFixed(0)} ms`);
    const n = Number(values.requests);
    await load("/admin/backups/jobs?limit=50", "GET", 200, 1); // warm-up
    const seq = await load("/admin/backups/jobs?limit=50", "GET", n, 1);
    console.log(
      `  GET /admin/backups/jobs?limit=50, 1 client:  p50 ${seq.p50.toFixed(2)} ms, p99 ${
        seq.p99.toFixed(2)
      } ms (target p99 < 20 ms), ${seq.rate.toFixed(0)} req/s, errors ${seq.errors}`,
    );
    const par = await load("/admin/backups/jobs?limit=50", "GET", n, 8);
    console.log(
      `  GET /admin/backups/jobs?limit=50, 8 clients: p50 ${par.p50.toFixed(2)} ms, p99 ${
        par.p99.toFixed(2)
      } ms, ${par.rate.toFixed(0)} req/s, errors ${par.errors}`,
    );
    const filtered = await load(
      "/admin/backups/jobs?limit=50&status=pending&client_name=files&kind=verify",
      "GET",
      n,
      1,
    );
    console.log(
      `  GET ...jobs with status+client+kind filters:  p50 ${filtered.p50.toFixed(2)} ms, p99 ${
        filtered.p99.toFixed(2)
      } ms`,
    );
    const post = await load(
      "/admin/backups",
      "POST",
      n,
      8,
      JSON.stringify({ client_name: "files" }),
    );
    console.log(
      `  POST /admin/backups, 8 clients: ${post.rate.toFixed(0)} enqueues/s, p50 ${
        post.p50.toFixed(2)
      } ms, p99 ${post.p99.toFixed(2)} ms, errors ${post.errors}`,
    );
    if (values.ops) {
      const scrapes: number[] = [];
      let scraping = true;
      const scraper = (async () => {
        while (scraping) {
          const t = performance.now();
          const res = await fetch(`http://127.0.0.1:${port}/metrics`, {
            headers: { authorization: `Bearer ${KEY}` },
          });
          await res.text();
          if (res.ok) scrapes.push(performance.now() - t);
          await new Promise((r) => setTimeout(r, 1000));
        }
      })();
      const withScrape = await load("/admin/backups/jobs?limit=50", "GET", n, 1);
      scraping = false;
      await scraper;
      scrapes.sort((a, b) => a - b);
      console.log(
        `  same GET, 1 client, while /metrics is scraped every 1 s: p50 ${
          withScrape.p50.toFixed(2)
        } ms, p99 ${withScrape.p99.toFixed(2)} ms (without: p99 ${seq.p99.toFixed(2)} ms)`,
      );
      console.log(
        `  GET /metrics with ${values.jobs} jobs: ${scrapes.length} scrapes, median ${
          scrapes[Math.floor(scrapes.length / 2)]?.toFixed(1)
        } ms, max ${scrapes[scrapes.length - 1]?.toFixed(1)} ms`,
      );
    }
  } finally {
    child.kill("SIGTERM");
    await child.status;
  }
} finally {
  await Deno.remove(dir, { recursive: true });
}
