/**
 * A bounded HTTP load loop, run as a separate process by api_latency.ts so that the
 * client does not share an event loop with the daemon. Prints one JSON line.
 *   deno run --allow-net scripts/bench/http_load.ts URL METHOD COUNT CONCURRENCY KEY [BODY]
 */
const [url, method, countArg, concurrencyArg, key, body] = Deno.args;
const count = Number(countArg);
const concurrency = Number(concurrencyArg);
const latencies: number[] = [];
let next = 0;
let errors = 0;
const started = performance.now();
async function worker() {
  while (next < count) {
    next++;
    const t = performance.now();
    const res = await fetch(url, {
      method,
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      body: body || undefined,
    });
    await res.arrayBuffer();
    if (!res.ok) errors++;
    latencies.push(performance.now() - t);
  }
}
await Promise.all(Array.from({ length: concurrency }, worker));
const seconds = (performance.now() - started) / 1000;
latencies.sort((a, b) => a - b);
const pct = (p: number) =>
  latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))];
console.log(
  JSON.stringify({
    count,
    errors,
    seconds,
    rate: count / seconds,
    p50: pct(50),
    p99: pct(99),
    max: latencies.at(-1),
  }),
);
