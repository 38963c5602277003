import { Hono } from "hono";
import { CairnError } from "../../errors.ts";
import { parseKey } from "../../repository/keys.ts";
import {
  deleteBackup,
  listBackups,
  manifestSummary,
  readManifest,
} from "../../repository/manifest.ts";
import { requireClient } from "../../runtime/services.ts";
import { preflightRestore } from "../../runtime/restore_preflight.ts";
import { sealTarget } from "../../runtime/target_secrets.ts";
import { type AppEnv, clientFrom, enqueue, requiredClientName } from "../deps.ts";
import { ok } from "../envelope.ts";
import { CreateBackupBody, ListBackupsQuery, RestoreBody, VerifyBody } from "../schemas.ts";
import { jsonBody, queryOf } from "../validate.ts";

/** The fixed resources under /admin/backups, which the catch-all key routes must not claim. */
export const RESOURCE_PATH = /^(jobs|schedules|dlq|prune)(\/|$)/;

/** The key from the path, already URL-decoded once by the router (backups%2Fapp_db%2F...). */
function keyParam(key: string): string {
  parseKey(key);
  return key;
}

function parseRange(
  header: string | undefined,
  size: number,
): { start: number; end: number } | null | "invalid" {
  if (!header) return null;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === "" && m[2] === "")) return "invalid";
  let start: number, end: number;
  if (m[1] === "") {
    start = Math.max(0, size - Number(m[2]));
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === "" ? size - 1 : Math.min(Number(m[2]), size - 1);
  }
  return start > end || start >= size ? "invalid" : { start, end };
}

export function backupRoutes(): Hono<AppEnv> {
  const app = new Hono<AppEnv>();

  app.post("/", async (c) => {
    const { services } = c.get("deps");
    const body = await jsonBody(c, CreateBackupBody);
    const client = requiredClientName(c, body.client_name);
    requireClient(services.config, client);
    const job = await enqueue(c.get("deps"), {
      kind: "backup",
      client_name: client,
      label: body.label ?? "manual",
      max_attempts: services.config.backup.worker_max_attempts,
      ...(body.force ? { params: { force: true } } : {}),
    });
    return ok(c, { job_id: job.id, client_name: job.client_name, status: job.status }, {
      status: 202,
      message: "Backup job queued",
    });
  });

  app.get("/", async (c) => {
    const q = queryOf(c, ListBackupsQuery);
    const page = await listBackups(c.get("deps").services.repository, {
      client: q.client_name,
      limit: q.limit,
      cursor: q.cursor,
    });
    return ok(c, { backups: page.backups.map(manifestSummary), next_cursor: page.next_cursor });
  });

  app.post("/:key{.+}/restore", async (c) => {
    const { services } = c.get("deps");
    const key = keyParam(c.req.param("key"));
    const body = await jsonBody(c, RestoreBody);
    const manifest = await readManifest(services.repository, key);
    const client = clientFrom(c, body.client_name) ?? manifest.client_name;
    const config = requireClient(services.config, client);
    const pgOnly = (["tables", "no_owner", "keep_old"] as const).filter((f) =>
      body[f] !== undefined
    );
    if (pgOnly.length && config.kind !== "postgres") {
      throw new CairnError(
        "VALIDATION_FAILED",
        `${
          pgOnly.join(", ")
        } apply only to PostgreSQL restores; client ${client} is of kind ${config.kind}`,
        { details: pgOnly.map((path) => ({ path, message: "only for postgres clients" })) },
      );
    }
    // A usage mistake (wrong target shape, occupied target) is a 400 now, never a job.
    await preflightRestore({
      clientName: client,
      client: config,
      manifest,
      target: body.target ?? null,
      replace: body.replace ?? false,
      flush: body.flush ?? false,
      tables: body.tables,
      encryption: services.config.repository.encryption,
    }, "api");
    const job = await enqueue(c.get("deps"), {
      kind: "restore",
      client_name: client,
      key,
      max_attempts: services.config.backup.worker_max_attempts,
      params: {
        // A password in the target stays in this process's memory, never in the store.
        ...sealTarget(body.target),
        ...(body.replace !== undefined ? { replace: body.replace } : {}),
        ...(body.flush !== undefined ? { flush: body.flush } : {}),
        ...(body.tables !== undefined ? { tables: body.tables } : {}),
        ...(body.no_owner !== undefined ? { no_owner: body.no_owner } : {}),
        ...(body.keep_old !== undefined ? { keep_old: body.keep_old } : {}),
      },
    });
    return ok(c, { job_id: job.id, key, client_name: client, status: job.status }, {
      status: 202,
      message: "Restore job queued",
    });
  });

  app.post("/:key{.+}/verify", async (c) => {
    const { services } = c.get("deps");
    const key = keyParam(c.req.param("key"));
    const body = await jsonBody(c, VerifyBody);
    const manifest = await readManifest(services.repository, key);
    const client = body.client_name ?? manifest.client_name;
    requireClient(services.config, client);
    const job = await enqueue(c.get("deps"), {
      kind: "verify",
      client_name: client,
      key,
      max_attempts: services.config.backup.worker_max_attempts,
    });
    return ok(c, { job_id: job.id, key, status: job.status }, {
      status: 202,
      message: "Verify job queued",
    });
  });

  app.get("/:key{.+}/download", async (c) => {
    const { repository } = c.get("deps").services;
    const key = keyParam(c.req.param("key"));
    const manifest = await readManifest(repository, key);
    const info = await repository.stat(key);
    if (!info) {
      throw new CairnError(
        "BACKUP_NOT_FOUND",
        `The artifact of ${key} is missing from the repository`,
      );
    }
    const range = parseRange(c.req.header("range"), info.size);
    if (range === "invalid") {
      c.header("content-range", `bytes */${info.size}`);
      return c.body(null, 416);
    }
    const body = await repository.get(key, range ?? undefined);
    const filename = key.slice(key.lastIndexOf("/") + 1);
    c.header("content-type", "application/octet-stream");
    c.header("content-disposition", `attachment; filename="${filename}"`);
    c.header("x-checksum-sha256", manifest.sha256);
    c.header("accept-ranges", "bytes");
    c.header("content-length", String(range ? range.end - range.start + 1 : info.size));
    if (range) {
      c.header("content-range", `bytes ${range.start}-${range.end}/${info.size}`);
      c.status(206);
    }
    // The repository stream goes straight into the response: the socket's pace
    // pulls the file, so a 50 GB artifact needs no more memory than a small one.
    return c.body(body);
  });

  app.delete("/:key{.+}", async (c) => {
    // `DELETE /admin/backups/jobs` is a wrong method on a resource, not a key (405).
    if (RESOURCE_PATH.test(c.req.param("key"))) return c.notFound();
    const key = keyParam(c.req.param("key"));
    await deleteBackup(c.get("deps").services.repository, key);
    return ok(c, { key, deleted: true }, { message: "Backup deleted" });
  });

  return app;
}
