import assert from "node:assert/strict";
import { join } from "node:path";
import { digestFacts } from "../../src/engines/redis/digest.ts";
import {
  compareLoad,
  memoryShortfall,
  planRehearsal,
  rehearse,
} from "../../src/engines/redis/rehearsal.ts";
import { rdbVersionFor } from "../../src/engines/redis/rdb_version.ts";
import {
  keyspaceCounts,
  loadInScratchServer,
  logReason,
  parseRedisServerVersion,
  ScratchUnsupported,
} from "../../src/engines/redis/scratch_server.ts";
import { readManifest, writeManifest } from "../../src/repository/manifest.ts";
import { markChild, Scratch } from "../../src/io/scratch.ts";
import type { Services } from "../../src/runtime/services.ts";
import { fillEverything, startRedis, type TestRedis } from "../helpers/redis.ts";
import { run, testServices } from "../helpers/services.ts";
import { cairn, withTempDir } from "../helpers/tmp.ts";

const ZERO = "0".repeat(40);

async function localRedisVersion(): Promise<string> {
  const out = await new Deno.Command("redis-server", { args: ["--version"] }).output();
  return parseRedisServerVersion(new TextDecoder().decode(out.stdout))!;
}

async function withSource<T>(
  extra: string[],
  fn: (r: TestRedis, services: Services, dir: string) => Promise<T>,
  tools: Record<string, unknown> = {},
  client: Record<string, unknown> = {},
): Promise<T> {
  const r = await startRedis(extra);
  try {
    return await withTempDir(async (dir) => {
      const services = await testServices(dir, {
        cache: { kind: "redis", url: r.url, ...client },
      });
      Object.assign(services.config.tools, tools);
      try {
        return await fn(r, services, dir);
      } finally {
        await services.store.close();
      }
    });
  } finally {
    await r.stop();
  }
}

/** Everything under this process's scratch root (the rehearsal must leave nothing). */
async function scratchLeft(services: Services): Promise<string[]> {
  const out: string[] = [];
  try {
    for await (const owner of Deno.readDir(services.scratch.root)) {
      if (!owner.isDirectory) continue;
      for await (const e of Deno.readDir(join(services.scratch.root, owner.name))) {
        out.push(e.name);
      }
    }
  } catch { /* no root: nothing left */ }
  return out;
}

Deno.test("redis rehearsal: the source's DEBUG DIGEST is recorded and a scratch redis-server loading the backup matches it, keys whose TTL passed included", async () => {
  await withSource([], async (source, services) => {
    await fillEverything(source);
    // A key whose TTL has passed but that the source still holds (no active expiry):
    // in the RDB and in the digest; a scratch master would drop it while loading.
    await source.cmd("DEBUG", "SET-ACTIVE-EXPIRE", "0");
    await source.cmd("SET", "gone:soon", "x", "PX", "1");
    await new Promise((r) => setTimeout(r, 20));
    const digest = await source.digest();
    assert.notEqual(digest, ZERO);

    const b = await run(services, { kind: "backup", client_name: "cache" });
    assert.equal(b.status, "completed", b.error ?? "");
    const key = String(b.result!.key);
    const manifest = await readManifest(services.repository, key);
    assert.equal(manifest.facts.digest, digest);
    assert.equal(manifest.facts.digest_skipped, undefined);
    assert.equal(b.result!.digest, digest);

    const v = await run(services, { kind: "verify", client_name: "cache", key });
    assert.equal(v.status, "completed", v.error ?? "");
    const checks = v.result!.checks as Record<string, any>;
    assert.equal(checks.check, "scratch redis-server");
    assert.deepEqual(checks.scratch_server, {
      version: await localRedisVersion(),
      digest,
      digest_check: "matches the source's at backup time",
      keys_per_db: manifest.facts.keys_per_db,
    });
    assert.deepEqual(await scratchLeft(services), [], "the scratch server's directory is removed");
  });
});

Deno.test("redis rehearsal: a backup whose recorded digest is not its data's fails, naming both digests", async () => {
  await withSource([], async (source, services) => {
    await fillEverything(source);
    const a = await run(services, { kind: "backup", client_name: "cache" });
    assert.equal(a.status, "completed", a.error ?? "");
    const digestA = String(a.result!.digest);
    // Same keys, one value changed: key counts alone cannot tell the two backups apart.
    await source.cmd("SET", "str:small", "changed");
    const b = await run(services, { kind: "backup", client_name: "cache" });
    assert.equal(b.status, "completed", b.error ?? "");
    const keyB = String(b.result!.key);
    const digestB = String(b.result!.digest);
    assert.notEqual(digestA, digestB);
    const manifest = await readManifest(services.repository, keyB);
    await writeManifest(services.repository, {
      ...manifest,
      facts: { ...manifest.facts, digest: digestA },
    });
    const v = await run(services, { kind: "verify", client_name: "cache", key: keyB });
    assert.equal(v.status, "failed");
    assert.equal(
      v.error,
      `Backup ${keyB} does not match the source: its DEBUG DIGEST in a scratch redis-server ${await localRedisVersion()} is ${digestB}; the source's when the snapshot was taken was ${digestA}`,
    );
    assert.equal(v.attempts, 1, "VERIFY_FAILED is not retried");
    assert.deepEqual(await scratchLeft(services), [], "removed after a failure too");
  });
});

Deno.test("redis rehearsal: a source that refuses DEBUG records no digest and says why; the scratch server still checks the key counts", async () => {
  await withSource(["--enable-debug-command", "no"], async (source, services) => {
    await source.cmd("SET", "a", "1");
    await source.cmd("SELECT", "3");
    await source.cmd("SET", "b", "2");
    const b = await run(services, { kind: "backup", client_name: "cache" });
    assert.equal(b.status, "completed", b.error ?? "");
    const key = String(b.result!.key);
    const manifest = await readManifest(services.repository, key);
    assert.equal(manifest.facts.digest, undefined);
    const skipped = String(manifest.facts.digest_skipped);
    assert.match(
      skipped,
      /^the source refused DEBUG DIGEST \(ERR DEBUG command not allowed\..*\); set enable-debug-command to yes \(or local when cairn connects over loopback\) to record it$/,
    );
    assert.equal(b.result!.digest_skipped, skipped);

    const v = await run(services, { kind: "verify", client_name: "cache", key });
    assert.equal(v.status, "completed", v.error ?? "");
    const checks = v.result!.checks as Record<string, any>;
    assert.equal(checks.check, "scratch redis-server");
    assert.equal(
      checks.scratch_server.digest_check,
      `not compared: no digest was recorded at backup time (${skipped})`,
    );
    assert.deepEqual(checks.scratch_server.keys_per_db, { db0: 1, db3: 1 });
  });
});

Deno.test("redis rehearsal: tools.redis_server that cannot be run fails the verify (TOOL_MISSING); without redis-server on PATH the parse and key counts stand", async () => {
  await withSource([], async (source, services, dir) => {
    await source.cmd("SET", "a", "1");
    const b = await run(services, { kind: "backup", client_name: "cache" });
    assert.equal(b.status, "completed", b.error ?? "");
    const key = String(b.result!.key);

    services.config.tools.redis_server = join(dir, "no-such-redis-server");
    const v = await run(services, { kind: "verify", client_name: "cache", key });
    assert.equal(v.status, "failed");
    assert.match(
      v.error!,
      new RegExp(
        `^${
          join(dir, "no-such-redis-server")
        } could not be run \\(.*\\): install redis-server or point tools\\.redis_server at it$`,
      ),
    );

    const config = join(dir, "cairn.yaml");
    const writeConfig = (tools: Record<string, string>) =>
      Deno.writeTextFile(
        config,
        JSON.stringify({
          store: { kind: "sqlite", path: join(dir, "cli.db") },
          repository: { kind: "fs", path: join(dir, "repo") },
          tools,
          clients: { cache: { kind: "redis", url: source.url } },
        }),
      );
    // The setting from the config file, and its environment override.
    await writeConfig({ redis_server: join(dir, "from-config") });
    const configured = await cairn(["verify", key, "--config", config]);
    assert.equal(configured.code, 1);
    assert.match(configured.stderr + configured.stdout, /from-config could not be run/);
    const overridden = await cairn(["verify", key, "--config", config], {
      env: { CAIRN_REDIS_SERVER_PATH: join(dir, "from-env") },
    });
    assert.equal(overridden.code, 1);
    assert.match(overridden.stderr + overridden.stdout, /from-env could not be run/);

    // The CLI in a process whose PATH holds no redis-server, none configured.
    await writeConfig({});
    const cli = await cairn(["verify", key, "--json", "--config", config], {
      env: { PATH: join(dir, "empty-bin") },
    });
    assert.equal(cli.code, 0, cli.stdout + cli.stderr);
    const job = JSON.parse(cli.stdout);
    assert.equal(job.result.checks.check, "parse and key counts");
    assert.equal(
      job.result.checks.scratch_server_skipped,
      "redis-server is not on PATH (install it, or set tools.redis_server, to load the backup into a scratch server)",
    );
    assert.deepEqual(job.result.checks.keys_per_db, { db0: 1 });
  });
});

for (
  const [max, reason] of [
    [
      2,
      "not recorded: the source holds 3 keys, more than record_digest_max_keys (2); DEBUG DIGEST would block it while it hashes them",
    ],
    [0, "not recorded: record_digest_max_keys is 0"],
  ] as const
) {
  Deno.test(`redis digest: record_digest_max_keys ${max} with 3 keys: the source is not asked, the manifest says why`, async () => {
    await withSource(
      [],
      async (source, services) => {
        await source.cmd("MSET", "a", "1", "b", "2", "c", "3");
        await source.cmd("CONFIG", "RESETSTAT");
        const b = await run(services, { kind: "backup", client_name: "cache" });
        assert.equal(b.status, "completed", b.error ?? "");
        const manifest = await readManifest(services.repository, String(b.result!.key));
        assert.equal(manifest.facts.digest, undefined);
        assert.equal(manifest.facts.digest_skipped, reason);
        const stats = new TextDecoder().decode(
          (await source.cmd("INFO", "commandstats")) as Uint8Array,
        );
        assert.ok(!stats.includes("cmdstat_debug"), "no DEBUG command reached the source");
      },
      {},
      { record_digest_max_keys: max },
    );
  });
}

Deno.test("redis digest facts: recorded only when before and after agree; otherwise why not", () => {
  const d = "a".repeat(40);
  assert.deepEqual(digestFacts({ digest: d }, { digest: d }), { digest: d });
  assert.deepEqual(digestFacts({ digest: d }, { digest: "b".repeat(40) }), {
    digest_skipped:
      "the data changed while the snapshot was taken (DEBUG DIGEST before and after differ)",
  });
  assert.deepEqual(digestFacts({ digest: d }, null), {
    digest_skipped: "DEBUG DIGEST could not be read again after the snapshot",
  });
  assert.deepEqual(digestFacts({ digest: d }, { refused: "NOPERM" }), {
    digest_skipped: "DEBUG DIGEST could not be read again after the snapshot (NOPERM)",
  });
  assert.deepEqual(digestFacts({ skipped: "not recorded: too many" }, null), {
    digest_skipped: "not recorded: too many",
  });
  assert.deepEqual(digestFacts({ digest: d }, { skipped: "x" }), {
    digest_skipped: "DEBUG DIGEST could not be read again after the snapshot (x)",
  });
  assert.deepEqual(digestFacts({ refused: "ERR no" }, null), {
    digest_skipped: "the source refused DEBUG DIGEST (ERR no); " +
      "set enable-debug-command to yes (or local when cairn connects over loopback) to record it",
  });
});

Deno.test("redis scratch server: version and keyspace parsing; a load compared with the manifest", () => {
  assert.equal(
    parseRedisServerVersion("Redis server v=7.0.15 sha=00000000:0 malloc=jemalloc-5.3.0 bits=64"),
    "7.0.15",
  );
  assert.equal(parseRedisServerVersion("KeyDB server v=6.3.4 sha=0"), "6.3.4");
  assert.equal(parseRedisServerVersion("something else"), null);
  assert.deepEqual(
    keyspaceCounts({
      db0: "keys=3,expires=1,avg_ttl=0",
      db12: "keys=1,expires=0,avg_ttl=0",
      db2: "keys=0,expires=0,avg_ttl=0",
      dbx: "keys=9",
      redis_version: "7.0.15",
    }),
    { db0: 3, db12: 1 },
  );
  const load = { version: "7.0.15", digest: "c".repeat(40), keys_per_db: { db0: 3 } };
  assert.deepEqual(compareLoad(load, { digest: "c".repeat(40), keys_per_db: { db0: 3 } }), []);
  assert.deepEqual(compareLoad(load, { keys_per_db: { db0: 3, db1: 0 } }), [], "no digest: counts");
  assert.deepEqual(compareLoad(load, { digest: "d".repeat(40), keys_per_db: { db0: 2, db4: 1 } }), [
    `its DEBUG DIGEST in a scratch redis-server 7.0.15 is ${"c".repeat(40)}; ` +
    `the source's when the snapshot was taken was ${"d".repeat(40)}`,
    "db0: 3 keys in the scratch redis-server, 2 in the manifest",
    "db4: 0 keys in the scratch redis-server, 1 in the manifest",
  ]);
});

async function scratchServersRunning(dir: string): Promise<number> {
  const out = await new Deno.Command("pgrep", { args: ["-f", dir], stdout: "piped" }).output();
  return new TextDecoder().decode(out.stdout).split("\n").filter(Boolean).length;
}

Deno.test("redis scratch server: an RDB it cannot load is VERIFY_FAILED with its log; a cancel during the load stops it", async () => {
  await withTempDir(async (dir) => {
    const version = await localRedisVersion();
    // Right header, broken body: redis-server exits while loading.
    await Deno.writeFile(
      join(dir, "bad.rdb"),
      new Uint8Array([...new TextEncoder().encode("REDIS0010"), 0x00, 0x05, 0xff, 0x13, 0x37]),
    );
    const phases: string[] = [];
    await assert.rejects(
      () =>
        loadInScratchServer({
          bin: "redis-server",
          version,
          dir,
          dbfilename: "bad.rdb",
          maxDb: 0,
          signal: new AbortController().signal,
          phase: (p) => phases.push(p),
        }),
      (e: Error) => {
        assert.equal((e as { code?: string }).code, "VERIFY_FAILED");
        assert.match(
          e.message,
          new RegExp(
            `^A scratch redis-server ${version} could not load the backup's RDB \\(it exited with \\d+\\): .*\\S`,
          ),
        );
        return true;
      },
    );
    assert.deepEqual(phases, [`loading into a scratch redis-server ${version}`]);
    assert.equal(await scratchServersRunning(dir), 0);

    // A version this server refuses (a newer Redis, a fork's numbering): not the backup's fault.
    await Deno.writeFile(join(dir, "newer.rdb"), new TextEncoder().encode("REDIS0099xxxxxxxx"));
    await assert.rejects(
      () =>
        loadInScratchServer({
          bin: "redis-server",
          version,
          dir,
          dbfilename: "newer.rdb",
          maxDb: 0,
          signal: new AbortController().signal,
          phase: () => {},
        }),
      (e: Error) => {
        assert.ok(e instanceof ScratchUnsupported);
        assert.match(
          e.message,
          new RegExp(
            `^redis-server ${version} cannot load this RDB \\(Can't handle RDB format version 99;`,
          ),
        );
        return true;
      },
    );

    // A cancel as the load starts: the server is killed, the call ends with the abort.
    await Deno.writeFile(
      join(dir, "empty.rdb"),
      await (async () => {
        const r = await startRedis();
        try {
          await r.cmd("SET", "k", "v");
          await r.cmd("SAVE");
          return await Deno.readFile(join(r.dir, "dump.rdb"));
        } finally {
          await r.stop();
        }
      })(),
    );
    const controller = new AbortController();
    await assert.rejects(() =>
      loadInScratchServer({
        bin: "redis-server",
        version,
        dir,
        dbfilename: "empty.rdb",
        maxDb: 0,
        signal: controller.signal,
        phase: () => controller.abort(new Error("cancelled by the test")),
      }), /cancelled by the test/);
    assert.equal(await scratchServersRunning(dir), 0, "no scratch redis-server left running");
  });
});

Deno.test("redis rehearsal: an RDB newer than the local redis-server reads is left to the parse, saying why", async () => {
  const version = await localRedisVersion();
  const why = `redis-server ${version} reads RDB up to v${
    rdbVersionFor(version)
  }; the backup is RDB v99 (install a newer redis-server, or set tools.redis_server)`;
  // Decided from the manifest before the artifact is copied...
  const manifest = {
    key: "backups/c/20260101T000000000Z-manual.rdb",
    size_bytes: 10,
    facts: { rdb_version: 99 },
  } as unknown as Parameters<typeof planRehearsal>[1];
  assert.deepEqual(await planRehearsal({}, manifest), { skipped: why });
  // ...and again from the RDB's own header, should the manifest say less.
  const ctx = { signal: new AbortController().signal, progress: () => {} };
  assert.deepEqual(
    await rehearse(ctx, manifest, { bin: "redis-server", version }, "/nowhere/plain", {
      rdb_version: 99,
      keys: { db0: 1 },
    }),
    { check: "parse and key counts", scratch_server_skipped: why },
  );
  assert.deepEqual(
    await rehearse(ctx, manifest, { skipped: "no server" }, null, { rdb_version: 9, keys: {} }),
    { check: "parse and key counts", scratch_server_skipped: "no server" },
  );
});

Deno.test("redis scratch server: the log's reason without prefixes, start-up chatter or host warnings", () => {
  const log = [
    "1:C 30 Nov 2026 12:44:19.799 # Redis version=7.0.15, bits=64, just started",
    "1:C 30 Nov 2026 12:44:19.799 # Configuration loaded",
    "1:S 30 Nov 2026 12:44:19.799 # Server initialized",
    "1:S 30 Nov 2026 12:44:19.799 # WARNING Memory overcommit must be enabled!",
    "1:S 30 Nov 2026 12:44:19.802 # Can't handle RDB format version 11",
    "1:S 30 Nov 2026 12:44:19.802 # Fatal error loading the DB: Invalid argument. Exiting.",
  ].join("\n");
  assert.equal(
    logReason(log),
    "Can't handle RDB format version 11; Fatal error loading the DB: Invalid argument. Exiting.",
  );
  assert.equal(logReason("1:M 30 Nov 2026 12:00:00.000 * Ready\n"), "Ready");
  assert.equal(logReason(""), "no log");
});

Deno.test("redis rehearsal: an RDB needing more than the host's available memory is not loaded", () => {
  const MiB = 1048576;
  assert.equal(memoryShortfall(100 * MiB, 200 * MiB), null);
  assert.equal(memoryShortfall(100 * MiB, null), null, "unknown memory does not stop it");
  assert.equal(
    memoryShortfall(100 * MiB, 200 * MiB - 1),
    "the RDB is 100 MiB; loading it into a scratch redis-server needs at least 200 MiB of memory " +
      "and this host has 200 MiB available",
  );
  assert.equal(
    memoryShortfall(3 * 1024 * MiB, 4 * 1024 * MiB),
    "the RDB is 3072 MiB; loading it into a scratch redis-server needs at least 6144 MiB of memory " +
      "and this host has 4096 MiB available",
  );
});

Deno.test("scratch sweep: a scratch redis-server a dead process left running is killed before its directory goes; a reused pid is not", async () => {
  await withTempDir(async (dir) => {
    const scratch = new Scratch(join(dir, "scratch"));
    await scratch.prepare();
    // A process that is gone: `true`, already exited.
    const gone = new Deno.Command("true").spawn();
    await gone.status;
    const deadDir = join(scratch.root, `${gone.pid}-12345`, "artifact-abc");
    await Deno.mkdir(deadDir, { recursive: true });
    const server = new Deno.Command("redis-server", {
      args: [
        ...["--port", "0", "--unixsocket", join(deadDir, "s.sock")],
        ...["--save", "", "--appendonly", "no", "--dir", deadDir],
      ],
      stdout: "null",
      stderr: "null",
    }).spawn();
    await markChild(deadDir, server.pid);
    // A live process whose pid is marked with another start time: a reused pid.
    const bystander = new Deno.Command("sleep", { args: ["300"] }).spawn();
    await Deno.writeFile(join(deadDir, `child-${bystander.pid}-1`), new Uint8Array());
    try {
      const removed = await scratch.sweep();
      assert.deepEqual(removed, [join(scratch.root, `${gone.pid}-12345`)]);
      const status = await Promise.race([
        server.status,
        new Promise<null>((r) => setTimeout(() => r(null), 10_000)),
      ]);
      assert.ok(status !== null && status.signal === "SIGKILL", "the orphan server was killed");
      const still = await Promise.race([
        bystander.status.then(() => "exited"),
        new Promise((r) => setTimeout(() => r("running"), 300)),
      ]);
      assert.equal(still, "running", "a process with a reused pid is left alone");
    } finally {
      for (const p of [server, bystander]) {
        try {
          p.kill("SIGKILL");
        } catch { /* gone */ }
        await p.status;
      }
    }
  });
});
