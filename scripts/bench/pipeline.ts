/**
 * The artifact pipeline's cost, in one run (figures go in docs/pipeline.md):
 * 1. Level sweep: an uncompressed pg_dump archive (pg_dump -Fc -Z0) of each database
 *    through cairn's own codec (src/pipeline/codec.ts) at zstd 1/3/6/9 and gzip 6:
 *    seconds and size, to choose the default level.
 * 2. Overhead: `cairn backup` with zstd + age against the same backup with neither
 *    (compression: none, no encryption): time ratio and size ratio.
 * 3. Against the standard pipe: cairn's encrypted backup against
 *    `pg_dump -Fc | age -r R > FILE`.
 * 4. With --rss-gib N: peak RSS of an encrypted (zstd + age) directory backup of N GiB
 *    of random bytes to S3 (s3rver), against the 200 MB goal.
 * Databases: pgbench at --scale (compresses well) and --text-mib of random hex text
 * (compresses about 2x).
 *
 *   deno run -A scripts/bench/pipeline.ts [--scale 10 --text-mib 128 --rss-gib 0]
 */
import { join } from "node:path";
import { parseArgs } from "node:util";
import { generateIdentity, identityToRecipient } from "age-encryption";
import postgres from "postgres";
import { encodeAll } from "../../src/pipeline/codec.ts";
import type { Transform } from "../../src/pipeline/transforms.ts";
import { CAIRN, settleDisk, startS3Server, timed, writeConfig } from "./common.ts";

const { values } = parseArgs({
  options: {
    scale: { type: "string", default: "10" },
    "text-mib": { type: "string", default: "128" },
    "rss-gib": { type: "string", default: "0" },
  },
});
const dir = await Deno.makeTempDir({ prefix: "cairn-bench-pipeline-" });
const admin = postgres("postgres://postgres@127.0.0.1:5432/postgres", { onnotice: () => {} });
const identity = await generateIdentity();
const recipient = await identityToRecipient(identity);
const mib = (n: number) => (n / 1048576).toFixed(1);

async function sizeOf(path: string): Promise<number> {
  return (await Deno.stat(path)).size;
}

async function sweep(dump: string): Promise<void> {
  const plain = await sizeOf(dump);
  const runs: Array<[string, Transform[]]> = [
    ["zstd 1", [{ name: "zstd", level: 1 }]],
    ["zstd 3", [{ name: "zstd", level: 3 }]],
    ["zstd 6", [{ name: "zstd", level: 6 }]],
    ["zstd 9", [{ name: "zstd", level: 9 }]],
    ["gzip 6", [{ name: "gzip", level: 6 }]],
    ["zstd 3 + age", [{ name: "zstd", level: 3 }, { name: "age", recipients: [recipient] }]],
  ];
  for (const [name, transforms] of runs) {
    const file = await Deno.open(dump);
    const t = performance.now();
    let size = 0;
    for await (const chunk of await encodeAll(file.readable, transforms)) size += chunk.length;
    const s = (performance.now() - t) / 1000;
    console.log(
      `    ${name.padEnd(13)} ${s.toFixed(2)} s, ${mib(size)} MiB (ratio ${
        (plain / size).toFixed(1)
      }x, ${(plain / 1048576 / s).toFixed(0)} MiB/s)`,
    );
  }
}

async function database(name: string, fill: () => Promise<void>): Promise<void> {
  await admin.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await admin.unsafe(`CREATE DATABASE ${name}`);
  await fill();
  const url = `postgres://postgres@127.0.0.1:5432/${name}`;
  const dump = join(dir, `${name}.dump`);
  await timed(["pg_dump", "-Fc", "-Z0", "-f", dump, "-d", url]);
  console.log(`${name}: plain archive ${mib(await sizeOf(dump))} MiB`);
  console.log("  level sweep (cairn's codec, one thread):");
  await sweep(dump);
  await Deno.remove(dump);

  const client = { app: { kind: "postgres", url } };
  const bare = await writeConfig(dir, `${name}-bare`, {
    repository: { kind: "fs", path: join(dir, `${name}-bare-repo`), compression: "none" },
    clients: client,
  });
  const sealed = await writeConfig(dir, `${name}-sealed`, {
    repository: {
      kind: "fs",
      path: join(dir, `${name}-sealed-repo`),
      encryption: { recipients: [recipient] },
    },
    clients: client,
  });
  const piped = join(dir, `${name}.dump.age`);
  await settleDisk();
  const a = await timed([...CAIRN, "backup", "app", "--json", "--config", bare]);
  await settleDisk();
  const b = await timed([...CAIRN, "backup", "app", "--json", "--config", sealed]);
  await settleDisk();
  const c = await timed(["bash", "-c", `pg_dump -Fc -d ${url} | age -r ${recipient} > ${piped}`]);
  const sa = JSON.parse(a.stdout).result.size_bytes;
  const sb = JSON.parse(b.stdout).result.size_bytes;
  const sc = await sizeOf(piped);
  console.log(
    `  cairn none: ${a.seconds.toFixed(2)} s ${mib(sa)} MiB; cairn zstd3+age: ${
      b.seconds.toFixed(2)
    } s ${mib(sb)} MiB -> time ratio ${(b.seconds / a.seconds).toFixed(2)}, size ratio ${
      (sb / sa).toFixed(3)
    }`,
  );
  console.log(
    `  pg_dump -Fc | age -r: ${c.seconds.toFixed(2)} s ${mib(sc)} MiB -> cairn/pipe time ${
      (b.seconds / c.seconds).toFixed(2)
    }, size ${(sb / sc).toFixed(2)}; cairn peak RSS ${b.rssMiB.toFixed(0)} MiB`,
  );
  await admin.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
}

try {
  await database("cairn_bench_pgbench", async () => {
    await timed([
      "pgbench",
      "-i",
      "-q",
      "-s",
      values.scale!,
      "-h",
      "127.0.0.1",
      "-U",
      "postgres",
      "cairn_bench_pgbench",
    ]);
  });
  await database("cairn_bench_text", async () => {
    const sql = postgres("postgres://postgres@127.0.0.1:5432/cairn_bench_text", {
      onnotice: () => {},
    });
    const rows = Math.round((Number(values["text-mib"]) * 1048576) / 1024);
    await sql.unsafe(
      `CREATE TABLE t AS SELECT g AS id, (SELECT string_agg(md5(random()::text || g || x), '') FROM generate_series(1, 32) x) AS v FROM generate_series(1, ${rows}) g`,
    );
    await sql.end();
  });
  const gib = Number(values["rss-gib"]);
  for (const n of gib > 0 ? [1, gib].filter((v, i, a) => a.indexOf(v) === i) : []) {
    const s3 = await startS3Server(join(dir, "s3"), ["bench"]);
    const src = join(dir, `big-${n}`);
    await Deno.mkdir(src);
    await timed(["bash", "-c", `head -c ${n}G /dev/urandom > ${src}/blob.bin`]);
    const config = await writeConfig(dir, `rss-${n}`, {
      repository: {
        kind: "s3",
        endpoint: s3.endpoint,
        bucket: "bench",
        access_key_id: "S3RVER",
        secret_access_key: "S3RVER",
        encryption: { recipients: [recipient] },
      },
      clients: { big: { kind: "directory", path: src } },
    });
    const r = await timed([...CAIRN, "backup", "big", "--json", "--config", config]);
    console.log(
      `encrypted directory backup of ${n} GiB to S3: ${r.seconds.toFixed(1)} s, peak RSS ${
        r.rssMiB.toFixed(0)
      } MiB (goal < 200 MB), status ${JSON.parse(r.stdout).status}`,
    );
    await s3.stop();
    await Deno.remove(src, { recursive: true });
  }
} finally {
  await admin.end();
  await Deno.remove(dir, { recursive: true });
}
