import type { Context } from "hono";
import { Metrics } from "../../metrics/metrics.ts";
import type { AppEnv } from "../deps.ts";

/** GET /metrics: the Prometheus text exposition format (see src/metrics/prom.ts). */
export async function metricsHandler(c: Context<AppEnv>): Promise<Response> {
  const deps = c.get("deps");
  deps.metrics ??= new Metrics();
  const { text, contentType } = await deps.metrics.render(deps.services, deps.startedAt);
  return c.body(text, 200, { "content-type": contentType });
}
