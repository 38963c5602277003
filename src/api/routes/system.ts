import { Hono } from "hono";
import { redactClient } from "../../config/redacted.ts";
import { jobRecord } from "../../jobs/types.ts";
import { planMirrorGc, planPrune } from "../../runtime/prune.ts";
import { requireClient } from "../../runtime/services.ts";
import { VERSION } from "../../version.ts";
import { readClientStatuses, readClusterStatus } from "../../status/read.ts";
import type { AppEnv } from "../deps.ts";
import { enqueue } from "../deps.ts";
import { errorBody, ok } from "../envelope.ts";
import { openApiDocument } from "../openapi.ts";
import { PruneBody } from "../schemas.ts";
import { jsonBody } from "../validate.ts";

export function systemRoutes(): Hono<AppEnv> {
  const app = new Hono<AppEnv>();

  app.get("/health", async (c) => {
    try {
      await c.get("deps").services.store.count({ status: "running" });
      return c.json({
        status: "success",
        message: "healthy",
        data: { status: "healthy", version: VERSION, timestamp: new Date().toISOString() },
      });
    } catch (error) {
      return c.json({
        ...errorBody(
          "INTERNAL",
          `Unhealthy: the job store cannot be read (${(error as Error).message})`,
        ),
        data: { status: "unhealthy", version: VERSION, timestamp: new Date().toISOString() },
      }, 503);
    }
  });

  app.get("/openapi.json", (c) => c.json(openApiDocument()));

  app.get("/clients", (c) => {
    const { config } = c.get("deps").services;
    const clients = Object.entries(config.clients).map(([name, client]) => ({
      name,
      ...redactClient(client),
    }));
    return ok(c, { clients });
  });

  app.get("/status", async (c) => {
    const { services, pool, startedAt } = c.get("deps");
    const { store, config } = services;
    const stats = await store.stats();
    const lastSuccess: Record<string, unknown> = {};
    for (const name of Object.keys(config.clients)) {
      const [job] =
        (await store.list({ client_name: name, kind: "backup", status: "completed" }, { limit: 1 }))
          .jobs;
      lastSuccess[name] = job
        ? { job_id: job.id, key: job.key, finished_at: new Date(job.finished_at!).toISOString() }
        : null;
    }
    const schedules = await store.listSchedules();
    const clients = await readClientStatuses(store, config, Date.now(), startedAt);
    const deliveries = await store.deliveryCounts();
    const cluster = await readClusterStatus(store, config);
    return ok(c, {
      // Every configured client is ok (the question a monitoring check asks).
      healthy: clients.every((cl) => cl.health === "ok"),
      clients,
      notifications: {
        failing: Object.values(deliveries).reduce((n, d) => n + d.failing, 0),
        dead: Object.values(deliveries).reduce((n, d) => n + d.dead, 0),
        by_channel: deliveries,
      },
      version: VERSION,
      uptime_s: Math.round((Date.now() - startedAt) / 1000),
      jobs: { total: stats.total, by_status: stats.by_status, by_kind: stats.by_kind },
      workers: {
        enabled: config.backup.worker_enabled,
        concurrency: config.backup.worker_concurrency,
        active: pool?.active ?? 0,
        owner: services.owner,
      },
      schedules: { total: schedules.length, enabled: schedules.filter((s) => s.enabled).length },
      store: config.store.kind,
      repository: { kind: services.repository.kind, location: services.repository.location },
      last_success: lastSuccess,
      ...cluster,
    });
  });

  app.post("/backups/prune", async (c) => {
    const deps = c.get("deps");
    const body = await jsonBody(c, PruneBody);
    if (body.client_name) requireClient(deps.services.config, body.client_name);
    if (body.dry_run) {
      const schedules = await planPrune(deps.services, { client_name: body.client_name });
      return ok(c, {
        dry_run: true,
        would_remove: schedules.reduce((n, s) => n + s.remove.length, 0),
        would_keep: schedules.reduce((n, s) => n + s.keep.length, 0),
        schedules,
        mirrors: await planMirrorGc(deps.services, { client_name: body.client_name }, schedules),
      }, { message: "Prune plan (nothing deleted)" });
    }
    const job = await enqueue(deps, {
      kind: "prune",
      client_name: body.client_name ?? null,
      max_attempts: 1,
      params: { dry_run: false },
    });
    // job_id like every other enqueue; the record's fields stay for existing callers.
    return ok(c, { job_id: job.id, ...jobRecord(job) }, {
      status: 202,
      message: "Prune job queued",
    });
  });

  return app;
}
