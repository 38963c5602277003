import type { ClientConfig } from "../../config/schema.ts";
import { CairnError } from "../../errors.ts";
import { logger } from "../../log.ts";
import { VERSION } from "../../version.ts";
import type { BackupFacts, Engine, RestoreRequest, VerifyRequest } from "../engine.ts";
import { spawnTool, type Tool } from "../process.ts";
import { compareCounts, countRows, type Counts, manifestTables } from "./catalog.ts";
import { parsePgUrl, pgError, restoreDestination, type Sql, toolEnv } from "./conn.ts";
import { toolFailure } from "./pg_restore.ts";
import { dropDatabase, open, openAdmin } from "./databases.ts";
import { sweepFreshDatabases } from "./leftovers.ts";
import { restoreTables, restoreWhole } from "./restore.ts";
import { restoreInto } from "./pg_restore.ts";
import { assertDumpCanRead, toolVersion } from "./tools.ts";
type PostgresClient = Extract<ClientConfig, { kind: "postgres" }>;

/**
 * PostgreSQL through pg_dump's custom format, streamed. Row counts are taken in
 * the very snapshot pg_dump dumps (exported from a REPEATABLE READ transaction
 * that stays open until pg_dump exits), so writes during the backup can never make
 * a later verification disagree with the manifest.
 */
export const postgresEngine: Engine<PostgresClient> = {
  kind: "postgres",
  extension: "dump",

  /** Fresh databases of killed whole-database restores on the client's server (leftovers.ts). */
  sweepLeftovers(client) {
    return sweepFreshDatabases(parsePgUrl(client.url));
  },

  async backup(ctx) {
    const target = parsePgUrl(ctx.client.url);
    // Asking pg_dump its version and connecting overlap: both are start-up latency.
    const asking = toolVersion(ctx.tools.pg_dump, "tools.pg_dump (or CAIRN_PG_DUMP_PATH)");
    asking.catch(() => {});
    const sql = await open(target);
    let dump: Awaited<typeof asking>;
    try {
      dump = await asking;
    } catch (error) {
      await sql.end({ timeout: 1 }).catch(() => {});
      throw error;
    }
    let reserved: Awaited<ReturnType<Sql["reserve"]>> | null = null;
    let envCleanup: (() => Promise<void>) | null = null;
    let tool: Tool | null = null;
    let counter: Sql | null = null;
    let counting: Promise<unknown> | null = null;
    const stopCounting = new AbortController();
    const cleanup = async () => {
      stopCounting.abort();
      await counting?.catch(() => {});
      await counter?.end({ timeout: 5 }).catch(() => {});
      if (tool) {
        // "Cancelled" must mean the child is gone, not merely signalled.
        tool.kill();
        await Promise.race([tool.exited, new Promise((r) => setTimeout(r, 6000))]);
      }
      reserved?.release();
      await sql.end({ timeout: 5 }).catch(() => {});
      await envCleanup?.();
    };
    try {
      reserved = await sql.reserve();
      const [{ server_version, server_version_num }] = await reserved<
        Array<{ server_version: string; server_version_num: string }>
      >`
        SELECT current_setting('server_version') AS server_version, current_setting('server_version_num') AS server_version_num`;
      assertDumpCanRead(dump, server_version, Number(server_version_num));
      await reserved`BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY`;
      await reserved`SET LOCAL idle_in_transaction_session_timeout = 0`;
      await reserved`SET LOCAL statement_timeout = 0`;
      // One backend per count: parallel workers would take the CPU pg_dump needs.
      await reserved`SET LOCAL max_parallel_workers_per_gather = 0`;
      const [{ snapshot }] = await reserved<
        Array<{ snapshot: string }>
      >`SELECT pg_export_snapshot() AS snapshot`;
      const [{ size }] = await reserved<
        Array<{ size: string }>
      >`SELECT pg_database_size(current_database())::text AS size`;
      const env = await toolEnv(target, ctx.scratch);
      envCleanup = env.cleanup;
      // An uncompressed archive: the artifact pipeline compresses it (zstd by
      // default, off pg_dump's single core), and pg_restore reads either kind.
      const compression = "none in the archive (the pipeline compresses the artifact)";
      tool = spawnTool(
        dump.bin,
        [
          "--format=custom",
          "--compress=0",
          "--no-password",
          `--snapshot=${snapshot}`,
        ],
        {
          env: env.env,
          stdout: "piped",
          signal: ctx.signal,
          setting: "tools.pg_dump",
        },
      );
      // bytes_total: the database's size, an estimate (a dump leaves out indexes and free
      // space, so a backup usually completes short of it).
      ctx.progress({ bytes_done: 0, bytes_total: Number(size), phase: "dumping" });
      const started = tool;
      // The counts run in the exporting transaction while pg_dump reads the same
      // snapshot: the same numbers, but the scans overlap the dump instead of preceding it.
      // On a second session that imports the snapshot, batch by batch, so its
      // locks come and go instead of adding one per table to pg_dump's.
      counter = await open(target);
      const counts = countRows(counter, {
        signal: AbortSignal.any([ctx.signal, stopCounting.signal]),
        snapshot,
      });
      counting = counts;
      counts.catch(() => {});
      const facts = (async (): Promise<BackupFacts> => {
        // A count the role may not make ("permission denied for table t") is named
        // and classified like every other failure of this connection.
        const [status, counted] = await Promise.all([
          started.exited,
          counts.catch((error) => {
            throw pgError(error, target);
          }),
        ]);
        if (!status.success) throw toolFailure(started, "pg_dump", status);
        await reserved!`COMMIT`;
        const rows = counted.tables.reduce((a, t) => a + t.rows, 0);
        return {
          tool_versions: { cairn: VERSION, pg_dump: dump.version, server: server_version },
          facts: {
            database: target.database,
            server_version,
            pg_dump_version: dump.version,
            database_size_bytes: Number(size),
            snapshot,
            compression,
            tables: counted.tables,
            large_objects: counted.large_objects,
          },
          counters: { tables: counted.tables.length, rows },
        };
      })();
      facts.catch(() => {});
      return { body: started.child.stdout, facts, cleanup };
    } catch (error) {
      await cleanup();
      throw pgError(error, target);
    }
  },

  restore(ctx, request: RestoreRequest) {
    const dest = restoreDestination(ctx.client.url, request.target);
    return request.tables && request.tables.length > 0
      ? restoreTables(ctx, request, dest)
      : restoreWhole(ctx, request, dest);
  },

  async verify(ctx, request: VerifyRequest) {
    // A role that may create databases, when the client's own may not.
    const target = parsePgUrl(ctx.client.verify_url ?? ctx.client.url);
    // Job ids are only unique within one job store; two hosts (or a CLI with its own
    // store) verifying against one server must never share, or drop, a scratch database.
    const scratch = `cairn_verify_${ctx.jobId}_${
      crypto.randomUUID().replaceAll("-", "").slice(0, 10)
    }`;
    try {
      const admin = await openAdmin(target);
      try {
        await admin.unsafe(`DROP DATABASE IF EXISTS "${scratch}" WITH (FORCE)`);
        await admin.unsafe(`CREATE DATABASE "${scratch}" TEMPLATE template0`);
      } catch (error) {
        throw pgError(error, target, scratch);
      } finally {
        await admin.end({ timeout: 5 });
      }
      ctx.progress({
        bytes_done: 0,
        bytes_total: request.manifest.size_bytes,
        phase: "restore rehearsal",
      });
      // Owners and grants are left out: the rehearsal checks contents, and the
      // roles may not exist where it runs (or the verify role may not assume them).
      await restoreInto(ctx, target, request, scratch, {
        noOwner: true,
        singleTransaction: false,
        clean: false,
      });
      const sql = await open(target, scratch);
      let actual: Counts;
      try {
        actual = await countRows(sql, { signal: ctx.signal });
      } finally {
        await sql.end({ timeout: 5 });
      }
      const { comparison, problems } = compareCounts({
        tables: manifestTables(request.manifest.facts),
        large_objects: Number(request.manifest.facts.large_objects ?? 0),
      }, actual);
      if (problems.length) {
        throw new CairnError(
          "VERIFY_FAILED",
          `Restore rehearsal of ${request.manifest.key} does not match its manifest: ${
            problems.join("; ")
          }`,
          { details: comparison },
        );
      }
      return {
        scratch_database: scratch,
        tables_checked: comparison.length,
        rows_checked: actual.tables.reduce((a, t) => a + t.rows, 0),
        large_objects: actual.large_objects,
        comparison,
      };
    } finally {
      // Whatever happened (failure, cancel), the scratch database goes.
      await dropDatabase(target, scratch).catch((e) =>
        logger.warn("Could not drop the scratch database", { database: scratch, error: String(e) })
      );
    }
  },
};
