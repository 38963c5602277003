import { Hono } from "hono";
import { plural } from "../../plural.ts";
import { CairnError } from "../../errors.ts";
import { type Job, jobRecord } from "../../jobs/types.ts";
import type { JobStore } from "../../store/store.ts";
import type { AppEnv } from "../deps.ts";
import { ok } from "../envelope.ts";
import { BulkRequeueBody, CleanupBody, DlqQuery, IdParam } from "../schemas.ts";
import { jsonBody, parseWith, queryOf } from "../validate.ts";

async function allFailed(store: JobStore): Promise<Job[]> {
  const out: Job[] = [];
  let cursor: string | null = null;
  do {
    const page = await store.list({ status: "failed" }, { limit: 1000, cursor });
    out.push(...page.jobs);
    cursor = page.next_cursor;
  } while (cursor);
  return out;
}

/** The dead-letter queue: jobs that failed for good, kept until requeued or deleted. */
export function dlqRoutes(): Hono<AppEnv> {
  const app = new Hono<AppEnv>();

  app.get("/", async (c) => {
    const { store } = c.get("deps").services;
    const q = queryOf(c, DlqQuery);
    const filter = { status: "failed" as const, client_name: q.client_name, kind: q.kind };
    const [page, total] = await Promise.all([
      store.list(filter, { limit: q.limit, offset: q.offset }),
      store.count(filter),
    ]);
    return ok(c, {
      jobs: page.jobs.map(jobRecord),
      total_count: total,
      has_more: q.offset + page.jobs.length < total,
    });
  });

  app.get("/stats", async (c) => {
    const failed = await allFailed(c.get("deps").services.store);
    // Maps, not plain objects: a client called "constructor" must count from 0.
    const kinds = new Map<string, number>();
    const clients = new Map<string, number>();
    let oldest: number | null = null, newest: number | null = null;
    for (const j of failed) {
      kinds.set(j.kind, (kinds.get(j.kind) ?? 0) + 1);
      const client = j.client_name ?? "(none)";
      clients.set(client, (clients.get(client) ?? 0) + 1);
      const at = j.finished_at ?? j.updated_at;
      oldest = oldest === null ? at : Math.min(oldest, at);
      newest = newest === null ? at : Math.max(newest, at);
    }
    const by_kind = Object.fromEntries(kinds);
    const by_client = Object.fromEntries(clients);
    return ok(c, {
      total: failed.length,
      by_kind,
      by_client,
      oldest_failed_at: oldest === null ? null : new Date(oldest).toISOString(),
      newest_failed_at: newest === null ? null : new Date(newest).toISOString(),
    });
  });

  app.post("/requeue", async (c) => {
    const { services, pool } = c.get("deps");
    const body = await jsonBody(c, BulkRequeueBody);
    const requeued = await services.store.requeueMany({
      client_name: body.client_name,
      kind: body.kind,
    });
    pool?.wake();
    return ok(c, { requeued }, { message: `Requeued ${plural(requeued, "job")}` });
  });

  app.post("/cleanup", async (c) => {
    const body = await jsonBody(c, CleanupBody);
    const cutoff = Date.now() - body.older_than_days * 86_400_000;
    const deleted = await c.get("deps").services.store.deleteJobs({
      status: "failed",
      finished_before: cutoff,
    });
    return ok(c, { deleted }, { message: `Deleted ${plural(deleted, "failed job")}` });
  });

  app.post("/:id/requeue", async (c) => {
    const { services, pool } = c.get("deps");
    const id = parseWith(IdParam, c.req.param("id"), "path");
    const job = await services.store.requeue(id);
    pool?.wake();
    return ok(c, jobRecord(job), { message: "Job requeued" });
  });

  app.delete("/:id", async (c) => {
    const id = parseWith(IdParam, c.req.param("id"), "path");
    const deleted = await c.get("deps").services.store.deleteJob(id, { onlyStatus: "failed" });
    if (!deleted) {
      throw new CairnError("JOB_NOT_FOUND", `No failed job ${id} in the dead-letter queue`);
    }
    return ok(c, { id, deleted: true }, { message: "Failed job deleted" });
  });

  return app;
}
