/**
 * Dashboard figures with 50 clients and 100,000 finished jobs in the store:
 * - overview page weight: bytes transferred for GET / and its assets (first, uncached visit)
 * - time to first render (first-contentful-paint) in headless chromium
 * - server time per overview request (GET / over loopback, signed in): mean, p50, p99
 *
 *   deno task bench:ui [--jobs 100000 --clients 50 --requests 50]
 */
import { join } from "node:path";
import { parseArgs } from "node:util";
// deno-lint-ignore no-import-prefix -- bench-only: kept out of deno.json and deno.lock
import { chromium } from "npm:playwright-core@1.65.1";
import { CAIRN } from "./common.ts";
import { parseConfig } from "../../src/config/load.ts";
import { configureLog } from "../../src/log.ts";
import { openStore } from "../../src/store/open.ts";

const { values } = parseArgs({
  options: {
    jobs: { type: "string", default: "100000" },
    clients: { type: "string", default: "50" },
    requests: { type: "string", default: "50" },
  },
});
const KEY = "bench-ui-key";
const JOBS = Number(values.jobs), CLIENTS = Number(values.clients);
configureLog({ to: () => {} });

const dir = await Deno.makeTempDir({ prefix: "cairn-bench-ui-" });
const port = 20000 + Math.floor(Math.random() * 20000);
const configPath = join(dir, "cairn.yaml");
await Deno.mkdir(join(dir, "src"));
const clients = Object.fromEntries(
  Array.from({ length: CLIENTS }, (_, i) => [`client_${i}`, {
    kind: "directory",
    path: join(dir, "src"),
  }]),
);
await Deno.writeTextFile(
  configPath,
  JSON.stringify({
    server: { listen: `127.0.0.1:${port}`, admin_key: KEY },
    store: { kind: "sqlite", path: join(dir, "cairn.db") },
    repository: { kind: "fs", path: join(dir, "repo") },
    backup: { worker_enabled: false },
    clients,
  }),
);

// Finished jobs, as a real history: backups (1 in 10 failed) and verifies, spread over clients.
const store = await openStore(parseConfig(await Deno.readTextFile(configPath)).store);
const lease = { owner: "bench", leaseMs: 600_000 };
let t = performance.now();
for (let i = 0; i < JOBS; i++) {
  const job = await store.enqueue({
    kind: i % 7 === 0 ? "verify" : "backup",
    client_name: `client_${i % CLIENTS}`,
    max_attempts: 1,
    label: "manual",
  }, { claimAs: lease });
  if (i % 10 === 3) {
    await store.fail(job.id, job.lease_token!, "bench failure", {
      retryDelayMs: 0,
      permanent: true,
    });
  } else {
    await store.complete(job.id, job.lease_token!, { size_bytes: 1_000_000 + (i % 997) * 1000 });
  }
}
await store.close();
console.log(
  `filled the store with ${JOBS} jobs in ${((performance.now() - t) / 1000).toFixed(1)} s`,
);

const child = new Deno.Command(Deno.execPath(), {
  args: [...CAIRN.slice(1), "daemon", "--config", configPath],
  stdout: "null",
  stderr: "null",
}).spawn();
const base = `http://127.0.0.1:${port}`;
try {
  for (let i = 0;; i++) {
    try {
      const res = await fetch(`${base}/admin/health`);
      await res.arrayBuffer();
      if (res.ok) break;
    } catch { /* not yet */ }
    if (i > 3000) throw new Error("daemon did not start");
    await new Promise((r) => setTimeout(r, 10));
  }
  const login = await fetch(`${base}/ui/login`, {
    method: "POST",
    redirect: "manual",
    headers: { "content-type": "application/x-www-form-urlencoded", origin: base },
    body: new URLSearchParams({ key: KEY }),
  });
  await login.body?.cancel();
  const cookie = (login.headers.get("set-cookie") ?? "").split(";")[0];
  const times: number[] = [];
  let htmlBytes = 0;
  for (let i = 0; i < Number(values.requests); i++) {
    t = performance.now();
    const res = await fetch(`${base}/`, { headers: { cookie } });
    htmlBytes = (await res.arrayBuffer()).byteLength;
    if (res.status !== 200) throw new Error(`GET / answered ${res.status}`);
    times.push(performance.now() - t);
  }
  times.sort((a, b) => a - b);
  const mean = times.reduce((a, b) => a + b, 0) / times.length;
  console.log(
    `GET / (overview, ${CLIENTS} clients): mean ${mean.toFixed(1)} ms, p50 ${
      times[Math.floor(times.length / 2)].toFixed(1)
    } ms, p99 ${
      times[Math.min(times.length - 1, Math.floor(times.length * 0.99))].toFixed(1)
    } ms; HTML ${htmlBytes} bytes uncompressed`,
  );

  const profile = await Deno.makeTempDir({ prefix: "cairn-bench-ui-profile-" });
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  try {
    await context.addCookies([{
      name: "cairn_session",
      value: cookie.split("=")[1],
      url: base,
    }]);
    const page = context.pages()[0] ?? await context.newPage();
    const responses: Promise<number>[] = [];
    page.on(
      "requestfinished",
      (req) => responses.push(req.sizes().then((s) => s.responseBodySize + s.responseHeadersSize)),
    );
    await page.goto(`${base}/`, { waitUntil: "load" });
    const fcp = await page.evaluate(() =>
      performance.getEntriesByName("first-contentful-paint")[0]?.startTime ?? null
    );
    const bytes = (await Promise.all(responses)).reduce((a, b) => a + b, 0);
    console.log(
      `overview in chromium: ${responses.length} requests, ${bytes} bytes transferred (headers + bodies, first visit); first-contentful-paint ${
        fcp === null ? "n/a" : fcp.toFixed(0) + " ms"
      } after navigation start`,
    );
  } finally {
    await context.close();
    await Deno.remove(profile, { recursive: true }).catch(() => {});
  }
} finally {
  child.kill("SIGTERM");
  await child.status;
  await Deno.remove(dir, { recursive: true }).catch(() => {});
}
