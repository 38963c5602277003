import { Hono } from "hono";
import { CairnError } from "../../errors.ts";
import { jobRecord } from "../../jobs/types.ts";
import type { AppEnv } from "../deps.ts";
import { ok } from "../envelope.ts";
import { IdParam, ListJobsQuery } from "../schemas.ts";
import { parseWith, queryOf } from "../validate.ts";

export function jobRoutes(): Hono<AppEnv> {
  const app = new Hono<AppEnv>();

  app.get("/", async (c) => {
    const q = queryOf(c, ListJobsQuery);
    const page = await c.get("deps").services.store.list(
      { status: q.status, client_name: q.client_name, kind: q.kind },
      { limit: q.limit, cursor: q.cursor },
    );
    return ok(c, { jobs: page.jobs.map(jobRecord), next_cursor: page.next_cursor });
  });

  app.get("/:id", async (c) => {
    const id = parseWith(IdParam, c.req.param("id"), "path");
    const job = await c.get("deps").services.store.get(id);
    if (!job) throw new CairnError("JOB_NOT_FOUND", `Job ${id} not found`);
    return ok(c, jobRecord(job));
  });

  app.post("/:id/cancel", async (c) => {
    const { services, pool } = c.get("deps");
    const id = parseWith(IdParam, c.req.param("id"), "path");
    let job = await services.store.requestCancel(id);
    if (job.status === "running" && pool?.cancelLocal(id)) {
      // Ours: stopped now; wait briefly so the reply shows the final state.
      for (let i = 0; i < 100 && job.status === "running"; i++) {
        await new Promise((r) => setTimeout(r, 50));
        job = (await services.store.get(id)) ?? job;
      }
    }
    return ok(c, jobRecord(job), {
      message: job.status === "cancelled" ? "Job cancelled" : "Cancellation requested",
    });
  });

  return app;
}
