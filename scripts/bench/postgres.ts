/**
 * PostgreSQL backup and restore against the plain tools, in one run, on a pgbench
 * database (scale 70 is about 1 GiB):
 * - cairn backup to fs      vs  pg_dump -Fc -f FILE                     (target <= 1.10)
 * - cairn backup to S3      vs  pg_dump -Fc -f FILE, then upload it     (target <= 0.75)
 * - cairn restore           vs  pg_restore of the same file             (target <= 1.10)
 * - cairn's peak RSS during the backups (target < 200 MB, flat in size)
 *
 * pgbench's tables compress about 50x, so its dump uploads in a fraction of a second
 * and there is little for streaming to overlap, and zlib keeps pace with the server, so
 * cairn leaves compression to pg_dump. A second round adds --text-mib of random hex
 * text (compresses about 2x, like much real data): there pg_dump's single-threaded
 * zlib is the bottleneck, cairn compresses on worker threads, and the upload overlaps.
 *
 * Each comparison runs --rounds times, alternating the baseline and cairn; the median
 * round's ratio is the result (a single pair moves by +-15% on a shared 2-core box).
 *
 *   deno task bench:postgres [--scale 70 --text-mib 512 --big-scale 0 --rounds 3]
 */
import { join } from "node:path";
import { parseArgs } from "node:util";
import { S3Client } from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import postgres from "postgres";
import { PART_SIZE, QUEUE_SIZE } from "../../src/repository/s3.ts";
import { CAIRN, settleDisk, startS3Server, timed as sh, writeConfig } from "./common.ts";

const { values } = parseArgs({
  options: {
    scale: { type: "string", default: "70" },
    "big-scale": { type: "string", default: "0" },
    "text-mib": { type: "string", default: "512" },
    rounds: { type: "string", default: "3" },
  },
});
const ROUNDS = Number(values.rounds);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const list = (xs: number[]) => xs.map((x) => x.toFixed(2)).join(" / ");

/**
 * One comparison's line: every round's (baseline, cairn) seconds, the median ratio
 * and each round's, the target, cairn's peak RSS, and `extra` at the end.
 */
function report(
  label: string,
  baseline: string,
  pairs: Array<[number, number]>,
  target: string,
  rssMiB: number,
  extra = "",
): void {
  const each = pairs.map(([b, c]) => c / b);
  console.log(
    `  ${label} ${baseline} ${list(pairs.map((p) => p[0]))} s, cairn ${
      list(pairs.map((p) => p[1]))
    } s -> median ratio ${median(each).toFixed(2)} (${list(each)}; target ${target}); ` +
      `cairn peak RSS ${rssMiB.toFixed(0)} MiB${extra}`,
  );
}
const dir = await Deno.makeTempDir({ prefix: "cairn-bench-pg-" });
const DB = "cairn_bench_pg";
const admin = postgres({
  host: "127.0.0.1",
  user: "postgres",
  database: "postgres",
  onnotice: () => {},
});

async function recreate(name: string): Promise<void> {
  await admin.unsafe(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
  await admin.unsafe(`CREATE DATABASE "${name}"`);
}

const config = (name: string, repository: Record<string, unknown>) =>
  writeConfig(dir, name, {
    repository,
    clients: { bench: { kind: "postgres", url: `postgres://postgres@127.0.0.1:5432/${DB}` } },
  });

async function measure(scale: number, s3: { endpoint: string }, textMiB = 0): Promise<void> {
  await recreate(DB);
  const t = performance.now();
  await new Deno.Command("pgbench", {
    args: ["-h", "127.0.0.1", "-U", "postgres", "-i", "-q", "-s", String(scale), DB],
    stdout: "null",
    stderr: "null",
  }).output();
  if (textMiB > 0) {
    // 256 random hex characters a row: 4 bits of entropy a byte, so about 2x compressible.
    const docs = postgres({
      host: "127.0.0.1",
      user: "postgres",
      database: DB,
      onnotice: () => {},
    });
    await docs.unsafe(`CREATE TABLE bench_docs (id bigint PRIMARY KEY, body text NOT NULL)`);
    await docs.unsafe(
      `INSERT INTO bench_docs SELECT i, md5(random()::text) || md5(random()::text) || md5(random()::text) ||
         md5(random()::text) || md5(random()::text) || md5(random()::text) || md5(random()::text) ||
         md5(random()::text) FROM generate_series(1, ${
        Math.round(textMiB * 1024 * 1024 / 256)
      }) AS i`,
    );
    await docs.end();
  }
  const [{ size }] = await admin`SELECT pg_database_size(${DB})::bigint AS size`;
  console.log(
    `  pgbench -i -s ${scale}${textMiB ? ` + ${textMiB} MiB of random text` : ""}: ${
      (Number(size) / 2 ** 30).toFixed(2)
    } GiB database, built in ${((performance.now() - t) / 1000).toFixed(0)} s`,
  );
  await new Deno.Command("psql", {
    args: ["-h", "127.0.0.1", "-U", "postgres", "-d", DB, "-qc", "VACUUM ANALYZE"],
    stdout: "null",
  }).output();
  await admin`CHECKPOINT`;
  await settleDisk(); // the build's writes are flushed before anything is timed

  const file = join(dir, "baseline.dump");
  const fsConfig = await config(`fs${scale}`, { kind: "fs", path: join(dir, `repo${scale}`) });
  const fsPairs: Array<[number, number]> = [];
  let fsRss = 0;
  let job: { key: string; result: { size_bytes: number } } | null = null;
  for (let round = 0; round < ROUNDS; round++) {
    await settleDisk();
    const base = await sh(["pg_dump", "-h", "127.0.0.1", "-U", "postgres", "-Fc", "-f", file, DB]);
    await settleDisk();
    const fs = await sh([...CAIRN, "backup", "bench", "--json", "--config", fsConfig]);
    job = JSON.parse(fs.stdout);
    fsPairs.push([base.seconds, fs.seconds]);
    fsRss = Math.max(fsRss, fs.rssMiB);
  }
  report(
    "backup to fs: ",
    "pg_dump -Fc",
    fsPairs,
    "<= 1.10",
    fsRss,
    `; artifact ${(job!.result.size_bytes / 2 ** 20).toFixed(0)} MiB`,
  );
  const manifest = JSON.parse(
    await Deno.readTextFile(join(dir, `repo${scale}`, `${job!.key}.manifest.json`)),
  );
  console.log(`                 compressed by ${manifest.facts.compression}`);

  const client = new S3Client({
    endpoint: s3.endpoint,
    region: "us-east-1",
    forcePathStyle: true,
    credentials: { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" },
  });
  const s3Config = await config(`s3${scale}`, {
    kind: "s3",
    endpoint: s3.endpoint,
    bucket: "bench-repo",
    prefix: `scale${scale}`,
    access_key_id: "S3RVER",
    secret_access_key: "S3RVER",
  });
  const s3Pairs: Array<[number, number]> = [];
  let s3Rss = 0;
  for (let round = 0; round < ROUNDS; round++) {
    await settleDisk();
    const tUp = performance.now();
    await sh(["pg_dump", "-h", "127.0.0.1", "-U", "postgres", "-Fc", "-f", file, DB]);
    const f = await Deno.open(file);
    await new Upload({
      client,
      params: { Bucket: "bench-base", Key: `baseline-${scale}.dump`, Body: f.readable },
      partSize: PART_SIZE,
      queueSize: QUEUE_SIZE,
    }).done();
    const dumpThenUpload = (performance.now() - tUp) / 1000;
    await settleDisk();
    const viaS3 = await sh([...CAIRN, "backup", "bench", "--json", "--config", s3Config]);
    s3Pairs.push([dumpThenUpload, viaS3.seconds]);
    s3Rss = Math.max(s3Rss, viaS3.rssMiB);
  }
  report("backup to S3: ", "pg_dump -Fc + upload", s3Pairs, "<= 0.75", s3Rss);

  // The baseline restores the last pg_dump file; cairn restores its own last backup.
  const restorePairs: Array<[number, number]> = [];
  let restoreRss = 0;
  for (let round = 0; round < ROUNDS; round++) {
    for (const name of [`${DB}_r1`, `${DB}_r2`]) {
      await admin.unsafe(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
    }
    await recreate(`${DB}_r1`);
    // Each restore writes the whole database again; without a checkpoint between them
    // the second one would also pay for flushing the first one's writes.
    await admin`CHECKPOINT`;
    await settleDisk();
    const restoreBase = await sh([
      "pg_restore",
      "-h",
      "127.0.0.1",
      "-U",
      "postgres",
      "-d",
      `${DB}_r1`,
      "--no-owner",
      "--no-privileges",
      "--exit-on-error",
      "--single-transaction",
      file,
    ]);
    // Dropped, not kept: autovacuum would otherwise work through the first restore's
    // tables while the second one runs.
    await admin.unsafe(`DROP DATABASE IF EXISTS "${DB}_r1" WITH (FORCE)`);
    await admin`CHECKPOINT`;
    await settleDisk();
    const restore = await sh([
      ...CAIRN,
      "restore",
      job!.key,
      "--target",
      `${DB}_r2`,
      "--config",
      fsConfig,
    ]);
    restorePairs.push([restoreBase.seconds, restore.seconds]);
    restoreRss = Math.max(restoreRss, restore.rssMiB);
  }
  report("restore:      ", "pg_restore", restorePairs, "<= 1.10", restoreRss);
  for (const name of [`${DB}_r1`, `${DB}_r2`]) {
    await admin.unsafe(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
  }
  await Deno.remove(join(dir, `repo${scale}`), { recursive: true });
  await Deno.remove(file);
}

const s3 = await startS3Server(join(dir, "s3"), ["bench-repo", "bench-base"]);
try {
  console.log("postgres benchmark");
  await measure(Number(values.scale), s3);
  if (Number(values["text-mib"]) > 0) {
    await measure(Number(values.scale), s3, Number(values["text-mib"]));
  }
  if (Number(values["big-scale"]) > 0) await measure(Number(values["big-scale"]), s3);
} finally {
  await s3.stop();
  await admin.unsafe(`DROP DATABASE IF EXISTS "${DB}" WITH (FORCE)`);
  await admin.end();
  await Deno.remove(dir, { recursive: true });
}
