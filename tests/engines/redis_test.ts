import assert from "node:assert/strict";
import { join } from "node:path";
import { rdbVersionFor } from "../../src/engines/redis/engine.ts";
import { PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { readManifest, writeManifest } from "../../src/repository/manifest.ts";
import { s3Repository, startS3 } from "../helpers/s3.ts";
import { fillEverything, startRedis, type TestRedis } from "../helpers/redis.ts";
import type { Services } from "../../src/runtime/services.ts";
import { run, testServices } from "../helpers/services.ts";
import { withTempDir } from "../helpers/tmp.ts";

async function withRedis<T>(
  servers: Array<string[]>,
  fn: (...r: TestRedis[]) => Promise<T>,
): Promise<T> {
  const started: TestRedis[] = [];
  try {
    for (const extra of servers) started.push(await startRedis(extra));
    return await fn(...started);
  } finally {
    for (const r of started) await r.stop();
  }
}

/** Restores backup `key` of client "cache" into `target`, with any further params. */
function restoreInto(
  services: Services,
  key: string,
  target: TestRedis,
  params: Record<string, unknown> = {},
) {
  return run(services, {
    kind: "restore",
    client_name: "cache",
    key,
    params: { target: target.url, ...params },
  });
}

for (
  const [mode, extra] of [
    ["diskless ($EOF mark, keep-alives first)", [
      "--repl-diskless-sync",
      "yes",
      "--repl-diskless-sync-delay",
      "1",
    ]],
    ["disk-based ($<length>)", ["--repl-diskless-sync", "no"]],
  ] as const
) {
  Deno.test(`redis: every type and encoding survives snapshot -> verify -> restore into a fresh server, ${mode}`, async () => {
    await withRedis(
      [[...extra, "--maxmemory-policy", "allkeys-lfu"], []],
      async (source, target) => {
        await fillEverything(source);
        await withTempDir(async (dir) => {
          const services = await testServices(dir, { cache: { kind: "redis", url: source.url } });
          try {
            const b = await run(services, { kind: "backup", client_name: "cache" });
            assert.equal(b.status, "completed", b.error ?? "");
            const key = String(b.result!.key);
            assert.match(key, /\.rdb\.zst$/);
            const manifest = await readManifest(services.repository, key);
            assert.equal(manifest.facts.rdb_version, 10);
            assert.equal(manifest.facts.checksum, "ok");
            assert.equal(manifest.facts.snapshot_method, "sync");
            assert.match(String(manifest.facts.redis_version), /^7\./);
            const perDb = manifest.facts.keys_per_db as Record<string, number>;
            assert.equal(perDb.db1, 2);
            assert.equal(perDb.db5, 1);
            assert.equal(perDb.db0, Number(await source.cmd("DBSIZE")));
            assert.equal(manifest.facts.functions, 1);
            assert.equal(b.result!.keys, perDb.db0 + 3);

            const v = await run(services, { kind: "verify", client_name: "cache", key });
            assert.equal(v.status, "completed", v.error ?? "");

            const r = await restoreInto(services, key, target);
            assert.equal(r.status, "completed", r.error ?? "");
            assert.ok(
              Number(r.result!.keys_restored_by_commands) >= 3,
              "the big set, zset and hash went through element mode",
            );
            assert.equal(
              await target.digest(),
              await source.digest(),
              "DEBUG DIGEST of both servers is equal",
            );
            const ttl = Number(await target.cmd("PTTL", "str:ttl"));
            assert.ok(ttl > 3_000_000 && ttl <= 3_600_000, `TTL kept (${ttl})`);
            assert.ok(
              Number(await target.cmd("TTL", "hash:hashtable")) > 80_000,
              "TTL kept on an element-mode key",
            );
            const fns = await target.cmd("FCALL", "cairn_echo", "0", "works");
            assert.equal(new TextDecoder().decode(fns as Uint8Array), "works");
          } finally {
            await services.store.close();
          }
        });
      },
    );
  });
}

Deno.test("redis: a snapshot while a writer runs is a consistent, verifiable point in time", async () => {
  await withRedis([[]], async (source) => {
    await source.cmd(
      "EVAL",
      "for i = 1, 50000 do redis.call('SET', 'k' .. i, string.rep('v', 50)) end return 1",
      "0",
    );
    const writer = await startWriter(source);
    await withTempDir(async (dir) => {
      const services = await testServices(dir, { cache: { kind: "redis", url: source.url } });
      try {
        const b = await run(services, { kind: "backup", client_name: "cache" });
        assert.equal(b.status, "completed", b.error ?? "");
        const v = await run(services, {
          kind: "verify",
          client_name: "cache",
          key: String(b.result!.key),
        });
        assert.equal(v.status, "completed", v.error ?? "");
        assert.ok(Number(b.result!.keys) >= 50000);
        // The digests before and after the snapshot differ: none stands for it.
        assert.equal(
          b.result!.digest_skipped,
          "the data changed while the snapshot was taken (DEBUG DIGEST before and after differ)",
        );
        assert.match(
          String((v.result!.checks as Record<string, any>).scratch_server.digest_check),
          /^not compared: no digest was recorded at backup time \(the data changed/,
        );
      } finally {
        await writer.stop();
        await services.store.close();
      }
    });
    assert.ok(writer.writes() > 0, "the writer ran during the snapshot");
  });
});

async function startWriter(r: TestRedis) {
  const { RedisConnection } = await import("../../src/engines/redis/resp.ts");
  const { parseRedisUrl } = await import("../../src/engines/redis/url.ts");
  const conn = await RedisConnection.open(parseRedisUrl(r.url));
  let running = true, n = 0;
  const loop = (async () => {
    while (running) {
      await conn.command(["INCR", "counter"]);
      await conn.command(["SET", `w${n % 1000}`, String(n)]);
      n++;
    }
  })();
  return { writes: () => n, stop: async () => ((running = false), await loop, conn.close()) };
}

Deno.test("redis: restore into a non-empty server needs flush or replace; flush empties it first", async () => {
  await withRedis([[], []], async (source, target) => {
    await source.cmd("SET", "a", "1");
    await source.cmd("RPUSH", "l", "x", "y");
    await target.cmd("SET", "stale", "should go");
    await target.cmd("SET", "a", "old");
    await withTempDir(async (dir) => {
      const services = await testServices(dir, { cache: { kind: "redis", url: source.url } });
      try {
        const key = String(
          (await run(services, { kind: "backup", client_name: "cache" })).result!.key,
        );
        const refused = await restoreInto(services, key, target);
        assert.equal(refused.status, "failed");
        assert.match(refused.error!, /is not empty: pass "flush": true .* "replace": true/);
        assert.equal(
          new TextDecoder().decode((await target.cmd("GET", "a")) as Uint8Array),
          "old",
          "nothing written",
        );
        const replaced = await restoreInto(services, key, target, { replace: true });
        assert.equal(replaced.status, "completed", replaced.error ?? "");
        assert.equal(
          Number(await target.cmd("EXISTS", "stale")),
          1,
          "replace overwrites, it does not empty",
        );
        const flushed = await restoreInto(services, key, target, { flush: true });
        assert.equal(flushed.status, "completed", flushed.error ?? "");
        assert.equal(Number(await target.cmd("EXISTS", "stale")), 0);
        assert.equal(await target.digest(), await source.digest());
      } finally {
        await services.store.close();
      }
    });
  });
});

/**
 * Backs `source` up into a fresh fs repository, flips one byte of the artifact at
 * `fraction` of its length, and hands over the services and the backup's key.
 */
async function withDamagedBackup(
  source: TestRedis,
  fraction: number,
  fn: (services: Services, key: string, artifact: Uint8Array) => Promise<void>,
): Promise<void> {
  await withTempDir(async (dir) => {
    const services = await testServices(dir, { cache: { kind: "redis", url: source.url } });
    try {
      const key = String(
        (await run(services, { kind: "backup", client_name: "cache" })).result!.key,
      );
      const path = join(dir, "repo", key);
      const bytes = await Deno.readFile(path);
      bytes[Math.floor(bytes.length * fraction)] ^= 0x20;
      await Deno.writeFile(path, bytes);
      await fn(services, key, bytes);
    } finally {
      await services.store.close();
    }
  });
}

Deno.test("redis: an RDB saved without a checksum is checked by its sha256 before anything is written", async () => {
  await withRedis([["--rdbchecksum", "no"], []], async (source, target) => {
    await fillEverything(source);
    await withDamagedBackup(source, 1 / 2, async (services, key) => {
      const r = await restoreInto(services, key, target);
      assert.equal(r.status, "failed");
      assert.match(r.error!, /damaged: sha256/);
      assert.equal(Number(await target.cmd("DBSIZE")), 0, "not one key was written");
    });
  });
});

Deno.test("redis: a target older than the snapshot's RDB version is refused before writing", async () => {
  assert.equal(rdbVersionFor("7.0.15"), 10);
  assert.equal(rdbVersionFor("7.2.4"), 11);
  assert.equal(rdbVersionFor("7.4.0"), 12);
  assert.equal(rdbVersionFor("6.2.14"), 9);
  await withRedis([[], []], async (source, target) => {
    await source.cmd("SET", "a", "1");
    await withTempDir(async (dir) => {
      const services = await testServices(dir, { cache: { kind: "redis", url: source.url } });
      try {
        const key = String(
          (await run(services, { kind: "backup", client_name: "cache" })).result!.key,
        );
        const manifest = await readManifest(services.repository, key);
        await writeManifest(services.repository, {
          ...manifest,
          facts: { ...manifest.facts, rdb_version: 11 },
        });
        const r = await restoreInto(services, key, target);
        assert.equal(r.status, "failed");
        assert.match(
          r.error!,
          /runs Redis 7\.0\.\d+ \(RDB v10\), older than the snapshot's RDB v11/,
        );
        assert.equal(Number(await target.cmd("DBSIZE")), 0);
      } finally {
        await services.store.close();
      }
    });
  });
});

Deno.test("redis: big values go through the streamed and element paths and restore exactly", async () => {
  await withRedis([[], []], async (source, target) => {
    await source.cmd(
      "EVAL",
      "redis.call('SET', 'bigstr', string.rep('0123456789abcdef', 2 * 1024 * 1024)) return 1",
      "0",
    );
    await source.cmd(
      "EVAL",
      "for i = 1, 200000 do redis.call('HSET', 'bighash', 'f' .. i, 'v' .. i) end return 1",
      "0",
    );
    await source.cmd(
      "EVAL",
      "for i = 1, 100000 do redis.call('RPUSH', 'biglist', 'item' .. i) end return 1",
      "0",
    );
    await source.cmd("PEXPIREAT", "bighash", String(Date.now() + 3_600_000));
    await withTempDir(async (dir) => {
      const services = await testServices(dir, { cache: { kind: "redis", url: source.url } });
      try {
        const key = String(
          (await run(services, { kind: "backup", client_name: "cache" })).result!.key,
        );
        const r = await restoreInto(services, key, target);
        assert.equal(r.status, "completed", r.error ?? "");
        assert.equal(await target.digest(), await source.digest());
        assert.ok(Number(await target.cmd("PTTL", "bighash")) > 3_000_000);
      } finally {
        await services.store.close();
      }
    });
  });
});

Deno.test("redis: dead server, wrong password, ACL denial and NOAUTH each fail with a distinct, clear error", async () => {
  const locked = await startRedis([], { password: "right-redis-pw" });
  try {
    await locked.cmd(
      "ACL",
      "SETUSER",
      "nosync",
      "on",
      ">nosync-pw",
      "~*",
      "+@all",
      "-sync",
      "-psync",
      "-config",
      "-bgsave",
    );
    await locked.cmd(
      "ACL",
      "SETUSER",
      "nosync_local",
      "on",
      ">local-pw",
      "~*",
      "+@all",
      "-sync",
      "-psync",
    );
    await locked.cmd("SET", "k", "v");
    const port = locked.port;
    await withTempDir(async (dir) => {
      const services = await testServices(dir, {
        dead: { kind: "redis", url: "redis://127.0.0.1:1" },
        badpw: { kind: "redis", url: `redis://:wrong-redis-pw@127.0.0.1:${port}` },
        nopw: { kind: "redis", url: `redis://127.0.0.1:${port}` },
        denied: { kind: "redis", url: `redis://nosync:nosync-pw@127.0.0.1:${port}` },
        local: { kind: "redis", url: `redis://nosync_local:local-pw@127.0.0.1:${port}` },
      });
      try {
        const fail = async (client: string, pattern: RegExp) => {
          const job = await run(services, { kind: "backup", client_name: client });
          assert.equal(job.status, "failed", client);
          assert.match(job.error!, pattern, client);
          for (const secret of ["wrong-redis-pw", "right-redis-pw", "nosync-pw"]) {
            assert.ok(!job.error!.includes(secret));
          }
        };
        await fail("dead", /Redis at 127\.0\.0\.1:1: connection refused/);
        await fail("badpw", /rejected the credentials/);
        await fail("nopw", /NOAUTH.*put the password in the url/);
        await fail("denied", /refused replication .*NOPERM.*ACL SETUSER nosync \+sync \+replconf/);
        const local = await run(services, { kind: "backup", client_name: "local" });
        assert.equal(
          local.status,
          "completed",
          `same host: falls back to BGSAVE and the dump file: ${local.error}`,
        );
        const manifest = await readManifest(services.repository, String(local.result!.key));
        assert.equal(manifest.facts.snapshot_method, "bgsave");
      } finally {
        await services.store.close();
      }
    });
  } finally {
    await locked.stop();
  }
});

Deno.test("redis: a target that refuses RESTORE part way stops the restore and names the key", async () => {
  await withRedis([[], []], async (source, target) => {
    for (let i = 0; i < 50; i++) await source.cmd("SET", `k${i}`, `v${i}`);
    await target.cmd("ACL", "SETUSER", "norestore", "on", ">nr-pw", "~*", "+@all", "-restore");
    await withTempDir(async (dir) => {
      const services = await testServices(dir, { cache: { kind: "redis", url: source.url } });
      try {
        const key = String(
          (await run(services, { kind: "backup", client_name: "cache" })).result!.key,
        );
        const restore = await run(services, {
          kind: "restore",
          client_name: "cache",
          key,
          params: { target: `redis://norestore:nr-pw@127.0.0.1:${target.port}` },
        });
        assert.equal(restore.status, "failed");
        assert.match(restore.error!, /RESTORE "k\d+" was refused by the target: NOPERM/);
      } finally {
        await services.store.close();
      }
    });
  });
});

Deno.test("redis through an S3 repository: restore reads the artifact twice, proven before writing and checked again as it is decoded", async () => {
  const s3 = await startS3(["redis-backups"]);
  try {
    await withRedis([[], []], async (source, target) => {
      await fillEverything(source);
      await withTempDir(async (dir) => {
        const services = await testServices(
          dir,
          { cache: { kind: "redis", url: source.url } },
          {},
          s3Repository(s3, "redis-backups"),
        );
        try {
          const b = await run(services, { kind: "backup", client_name: "cache" });
          assert.equal(b.status, "completed", b.error ?? "");
          const key = String(b.result!.key);
          const r = await restoreInto(services, key, target);
          assert.equal(r.status, "completed", r.error ?? "");
          assert.equal(await target.digest(), await source.digest());

          // The same artifact with one byte flipped, put back in place of the original.
          const stored = new Uint8Array(
            await new Response(await services.repository.get(key)).arrayBuffer(),
          );
          stored[Math.floor(stored.length / 2)] ^= 0x10;
          const client = new S3Client({
            endpoint: s3.endpoint,
            region: "us-east-1",
            forcePathStyle: true,
            credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
          });
          await client.send(
            new PutObjectCommand({ Bucket: "redis-backups", Key: key, Body: stored }),
          );
          await target.cmd("FLUSHALL");
          const bad = await restoreInto(services, key, target);
          assert.equal(bad.status, "failed");
          assert.match(bad.error!, /damaged: sha256/);
          assert.equal(Number(await target.cmd("DBSIZE")), 0, "not one key was written");
        } finally {
          await services.store.close();
        }
      });
    });
  } finally {
    await s3.stop();
  }
});

Deno.test("redis: a /db target takes a one-database snapshot into that database, checks only it, and refuses a snapshot of several", async () => {
  await withRedis([[], []], async (source, target) => {
    await source.cmd("SET", "k", "v");
    await source.cmd("SET", "k2", "v2");
    await withTempDir(async (dir) => {
      const services = await testServices(dir, { cache: { kind: "redis", url: source.url } });
      try {
        const one = await run(services, { kind: "backup", client_name: "cache" });
        assert.equal(one.status, "completed", one.error ?? "");
        // db0 of the target holds something else: a restore into /3 looks at db 3 only.
        await target.cmd("SET", "other", "x");
        const into3 = await run(services, {
          kind: "restore",
          client_name: "cache",
          key: String(one.result!.key),
          params: { target: `${target.url}/3` },
        });
        assert.equal(into3.status, "completed", into3.error ?? "");
        await target.cmd("SELECT", "3");
        assert.equal(new TextDecoder().decode(await target.cmd("GET", "k") as Uint8Array), "v");
        assert.equal(Number(await target.cmd("DBSIZE")), 2);
        await target.cmd("SELECT", "0");
        assert.equal(Number(await target.cmd("DBSIZE")), 1, "db 0 untouched");

        await source.cmd("SELECT", "7");
        await source.cmd("SET", "seven", "7");
        await source.cmd("SELECT", "0");
        const two = await run(services, { kind: "backup", client_name: "cache" });
        assert.equal(two.status, "completed", two.error ?? "");
        const refused = await run(services, {
          kind: "restore",
          client_name: "cache",
          key: String(two.result!.key),
          params: { target: `${target.url}/4` },
        });
        assert.equal(refused.status, "failed");
        assert.match(
          refused.error!,
          /holds databases 0, 7; a restore target with \/4 takes one database/,
        );
      } finally {
        await services.store.close();
      }
    });
  });
});

Deno.test("redis: a disk-based SYNC gives the RDB's length as the backup's bytes_total", async () => {
  await withRedis([["--repl-diskless-sync", "no"]], async (source) => {
    await source.cmd("SET", "k", "v".repeat(10_000));
    await withTempDir(async (dir) => {
      const services = await testServices(dir, { cache: { kind: "redis", url: source.url } });
      try {
        const { runHere } = await import("../../src/runtime/run_here.ts");
        const totals: number[] = [];
        const job = await runHere(services, {
          kind: "backup",
          client_name: "cache",
          max_attempts: 1,
        }, { onProgress: (_j, p) => p.bytes_total !== null && totals.push(p.bytes_total) });
        assert.equal(job.status, "completed", job.error ?? "");
        const manifest = await readManifest(services.repository, String(job.result!.key));
        assert.ok(totals.length > 0, "a total while running");
        assert.equal(totals[0], manifest.plain_size_bytes);
      } finally {
        await services.store.close();
      }
    });
  });
});
