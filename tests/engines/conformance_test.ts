/** The engine conformance suite (conformance.ts) run by every kind that has a target. */
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { engineConformance } from "./conformance.ts";
import { dropDatabase, pg, tableDigest } from "../helpers/pg.ts";
import { startRedis, type TestRedis } from "../helpers/redis.ts";
import { listTree } from "../helpers/tree.ts";
import { randomBytes } from "../helpers/tmp.ts";
import { createHash } from "node:crypto";
import {
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from "@aws-sdk/client-s3";
import { type S3Server, startS3 } from "../helpers/s3.ts";
import { filesUnder } from "../helpers/crash.ts";
import assert from "node:assert/strict";

engineConformance({
  kind: "directory",
  async source(dir, large) {
    const src = join(dir, "src");
    await Deno.mkdir(join(src, "a", "b"), { recursive: true });
    if (large) await Deno.writeFile(join(src, "big.bin"), randomBytes(40 << 20));
    await Deno.writeTextFile(join(src, "a", "b", "f.txt"), "x".repeat(100_000));
    await Deno.writeTextFile(join(src, "top.txt"), "top\n");
    await Deno.symlink("top.txt", join(src, "link"));
    return { client: { kind: "directory", path: src }, close: async () => {} };
  },
  target: (dir, n) => Promise.resolve({ target: join(dir, `out${n}`), close: async () => {} }),
  digest: async (dir, t) => (await listTree(t ?? join(dir, "src"))).join("\n"),
  isEmpty: async (_dir, t) => !(await Deno.stat(t).then(() => true, () => false)),
});

function sqliteDigest(path: string): string {
  const db = new DatabaseSync(path, { readOnly: true });
  const rows = db.prepare("SELECT id, v FROM t ORDER BY id").all();
  db.close();
  return JSON.stringify(rows);
}

engineConformance({
  kind: "sqlite",
  source(dir, large) {
    const path = join(dir, "live.db");
    const db = new DatabaseSync(path);
    db.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)");
    if (large) {
      db.exec(
        "CREATE TABLE big (b); WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 40) INSERT INTO big SELECT randomblob(1048576) FROM n;",
      );
    }
    for (let i = 0; i < 2000; i++) db.prepare("INSERT INTO t (v) VALUES (?)").run(`v${i}`);
    db.close();
    return Promise.resolve({ client: { kind: "sqlite", path }, close: async () => {} });
  },
  target: (dir, n) => Promise.resolve({ target: join(dir, `out${n}.db`), close: async () => {} }),
  digest: (dir, t) => Promise.resolve(sqliteDigest(t ?? join(dir, "live.db"))),
  isEmpty: async (_dir, t) => !(await Deno.stat(t).then(() => true, () => false)),
});

const redisServers = new Map<string, TestRedis>();
let redisSource: TestRedis | null = null;
engineConformance({
  kind: "redis",
  async source(_dir, large) {
    const r = await startRedis();
    redisSource = r;
    await r.cmd("SET", "a", "1");
    if (large) await r.cmd("SET", "big", randomBytes(40 << 20));
    await r.cmd("RPUSH", "l", "x", "y", "z");
    await r.cmd("HSET", "h", "f", "v".repeat(5000));
    return { client: { kind: "redis", url: r.url }, close: () => r.stop() };
  },
  async target() {
    const r = await startRedis();
    redisServers.set(r.url, r);
    return { target: r.url, close: () => r.stop() };
  },
  digest: (_dir, t) => (t === null ? redisSource! : redisServers.get(t)!).digest(),
  isEmpty: async (_dir, t) => Number(await redisServers.get(t)!.cmd("DBSIZE")) === 0,
});

let pgSource = "";
engineConformance({
  kind: "postgres",
  async source(_dir, large) {
    const name = `cairn_c_${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`;
    pgSource = name;
    const admin = pg();
    await admin.unsafe(`CREATE DATABASE "${name}"`);
    await admin.end();
    const sql = pg(name);
    await sql.unsafe(
      "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 3000) g;",
    );
    if (large) {
      await sql.unsafe(
        "CREATE TABLE big AS SELECT g, md5(random()::text) || md5(random()::text) AS v FROM generate_series(1, 500000) g",
      );
    }
    await sql.end();
    return {
      client: { kind: "postgres", url: `postgres://postgres@127.0.0.1:5432/${name}` },
      close: () => dropDatabase(name),
    };
  },
  target(_dir, n) {
    const name = `cairn_c_out${n}_${crypto.randomUUID().replaceAll("-", "").slice(0, 8)}`;
    return Promise.resolve({ target: name, close: () => dropDatabase(name) });
  },
  async digest(_dir, t) {
    const datname = t ?? pgSource;
    const sql = pg(datname);
    try {
      return await tableDigest(sql, "t");
    } finally {
      await sql.end();
    }
  },
  async isEmpty(_dir, t) {
    const admin = pg();
    const rows = await admin`SELECT 1 FROM pg_database WHERE datname = ${t}`;
    await admin.end();
    return rows.length === 0;
  },
});

/**
 * The s3 mirror: its artifact is the run's listing, its objects are stored by the
 * engine (encrypted with the listing, never compressed); a restore target is a local
 * directory, each key at its path.
 */
let mirrorSource: { s3: S3Server; c: S3Client } | null = null;
const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
engineConformance({
  kind: "s3",
  async source(_dir, large) {
    const s3 = await startS3(["src"]);
    const c = new S3Client({
      endpoint: s3.endpoint,
      region: "us-east-1",
      forcePathStyle: true,
      credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
    });
    mirrorSource = { s3, c };
    const objects: Array<[string, Uint8Array]> = [
      ["top.txt", new TextEncoder().encode("top\n")],
      ["a/b/f.txt", new TextEncoder().encode("x".repeat(100_000))],
      ["a/random.bin", randomBytes(200_000)],
      ...(large ? [["big.bin", randomBytes(40 << 20)] as [string, Uint8Array]] : []),
    ];
    for (const [Key, Body] of objects) {
      await c.send(new PutObjectCommand({ Bucket: "src", Key, Body }));
    }
    return {
      client: {
        kind: "s3",
        endpoint: s3.endpoint,
        bucket: "src",
        access_key_id: s3.accessKeyId,
        secret_access_key: s3.secretAccessKey,
      },
      close: () => s3.stop(),
    };
  },
  target: (dir, n) => Promise.resolve({ target: join(dir, `out${n}`), close: async () => {} }),
  async digest(_dir, t) {
    const lines: string[] = [];
    if (t !== null) {
      for (const f of await filesUnder(t)) {
        lines.push(`${f} ${sha(await Deno.readFile(join(t, f)))}`);
      }
      return lines.join("\n");
    }
    const { c } = mirrorSource!;
    const page = await c.send(new ListObjectsV2Command({ Bucket: "src" }));
    for (const o of page.Contents ?? []) {
      const got = await c.send(new GetObjectCommand({ Bucket: "src", Key: o.Key! }));
      lines.push(`${o.Key} ${sha(await got.Body!.transformToByteArray())}`);
    }
    return lines.sort().join("\n");
  },
  isEmpty: async (_dir, t) => !(await Deno.stat(t).then(() => true, () => false)),
  async checkStored(dir, encrypted) {
    // Every mirrored copy is an age file with encryption on, the object itself without.
    const root = join(dir, "repo", "mirrors", "c");
    const files = await filesUnder(root);
    assert.equal(files.length, 3);
    for (const f of files) {
      const head = new TextDecoder().decode((await Deno.readFile(join(root, f))).subarray(0, 22));
      assert.equal(head === "age-encryption.org/v1\n", encrypted, f);
    }
  },
});
