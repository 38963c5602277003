/**
 * What the Redis digest and the scratch-server rehearsal cost, in one run:
 * - a backup of N keys (DEBUG POPULATE, 100-byte values) with and without the
 *   source's DEBUG DIGEST (read twice, blocking the source each time);
 * - verifies of it alternating the scratch redis-server and the parse alone (the
 *   latter with no redis-server on PATH).
 *
 *   deno task bench:redis-rehearsal [--keys 1000000 --rounds 2]
 */
import { parseArgs } from "node:util";
import { startRedis } from "../../tests/helpers/redis.ts";
import { run, testServices } from "../../tests/helpers/services.ts";

const { values } = parseArgs({
  options: {
    keys: { type: "string", default: "1000000" },
    rounds: { type: "string", default: "2" },
  },
});
const keys = Number(values.keys);
const seconds = (since: number) => ((performance.now() - since) / 1000).toFixed(2);

const r = await startRedis();
const dir = await Deno.makeTempDir({ prefix: "cairn-bench-" });
try {
  await r.cmd("DEBUG", "POPULATE", String(keys), "key", "100");
  let key = "";
  for (const maxKeys of [0, keys]) {
    const services = await testServices(`${dir}/${maxKeys}`, {
      cache: { kind: "redis", url: r.url, record_digest_max_keys: maxKeys },
    });
    try {
      const t = performance.now();
      const b = await run(services, { kind: "backup", client_name: "cache" });
      if (b.status !== "completed") throw new Error(b.error ?? "backup failed");
      console.log(
        `backup of ${keys} keys, ${b.result!.digest ? "digest recorded" : "no digest"}: ${
          seconds(t)
        } s`,
      );
      key = String(b.result!.key);
      if (maxKeys === 0) continue;
      for (let round = 0; round < Number(values.rounds); round++) {
        for (const mode of ["scratch redis-server", "parse alone"]) {
          const path = Deno.env.get("PATH")!;
          if (mode === "parse alone") Deno.env.set("PATH", `${dir}/no-bin`);
          const t = performance.now();
          const v = await run(services, { kind: "verify", client_name: "cache", key });
          const took = seconds(t);
          Deno.env.set("PATH", path);
          if (v.status !== "completed") throw new Error(v.error ?? "verify failed");
          const check = (v.result!.checks as { check: string }).check;
          console.log(`verify, ${mode} (${check}): ${took} s`);
        }
      }
    } finally {
      await services.store.close();
    }
  }
} finally {
  await r.stop();
  await Deno.remove(dir, { recursive: true });
}
