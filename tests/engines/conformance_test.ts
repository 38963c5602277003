/** The engine conformance suite (conformance.ts) run by every kind that has a target. */
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { engineConformance } from "./conformance.ts";
import { dropDatabase, pg, tableDigest } from "../helpers/pg.ts";
import { startRedis, type TestRedis } from "../helpers/redis.ts";
import { listTree } from "../helpers/tree.ts";
import { randomBytes } from "../helpers/tmp.ts";

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
