import { Hono } from "hono";
import { z } from "zod";
import { jobRecord } from "../../jobs/types.ts";
import { type AppEnv, enqueue } from "../deps.ts";
import { ok } from "../envelope.ts";
import { jsonBody } from "../validate.ts";

export const RepositoryCheckBody = z.strictObject({
  /** Also hash every stored byte against its manifest's sha256. */
  read_data: z.boolean().default(false),
});

/** POST /admin/repository/check: queues a check job; its result lists the problems. */
export function repositoryRoutes(): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  app.post("/check", async (c) => {
    const deps = c.get("deps");
    const body = await jsonBody(c, RepositoryCheckBody);
    const job = await enqueue(deps, {
      kind: "check",
      client_name: null,
      max_attempts: 1,
      params: { read_data: body.read_data },
    });
    return ok(c, { job_id: job.id, ...jobRecord(job) }, {
      status: 202,
      message: "Repository check queued; its job's result lists what it finds",
    });
  });
  return app;
}
