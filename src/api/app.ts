import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { CairnError } from "../errors.ts";
import { logger } from "../log.ts";
import { requireAdminKey } from "./auth.ts";
import type { ApiDeps, AppEnv } from "./deps.ts";
import { errorBody } from "./envelope.ts";
import { allowedMethods } from "./methods.ts";
import { backupRoutes, RESOURCE_PATH } from "./routes/backups.ts";
import { dlqRoutes } from "./routes/dlq.ts";
import { jobRoutes } from "./routes/jobs.ts";
import { notificationRoutes } from "./routes/notifications.ts";
import { metricsHandler } from "./routes/metrics.ts";
import { repositoryRoutes } from "./routes/repository.ts";
import { scheduleRoutes } from "./routes/schedules.ts";
import { systemRoutes } from "./routes/system.ts";
import { isUiPath, uiRoutes } from "../ui/routes.tsx";

/** The admin API. Routes throw; this one place turns errors into the envelope. */
export function createApp(deps: ApiDeps): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  const { config } = deps.services;

  app.use("*", async (c, next) => {
    const requestId = c.req.header("x-request-id")?.slice(0, 100) || crypto.randomUUID();
    c.set("requestId", requestId);
    c.set("deps", deps);
    const started = performance.now();
    await next();
    c.header("x-request-id", requestId);
    logger.info("request", {
      request_id: requestId,
      method: c.req.method,
      path: c.req.path,
      status: c.res.status,
      duration_ms: Math.round((performance.now() - started) * 10) / 10,
    });
  });
  const adminAuth = requireAdminKey(
    config.server.admin_key || undefined,
    config.server.metrics_token,
  );
  // The dashboard (/ and /ui/*) has its own session auth; the API keeps its bearer auth.
  app.use("*", (c, next) => isUiPath(c.req.path) ? next() : adminAuth(c, next));
  app.use(
    "*",
    bodyLimit({
      maxSize: config.server.max_body_bytes,
      onError: (c) =>
        c.json(
          errorBody(
            "PAYLOAD_TOO_LARGE",
            `Request body exceeds server.max_body_bytes (${config.server.max_body_bytes} bytes)`,
          ),
          413,
        ),
    }),
  );

  // Fixed paths before the key routes, whose {key} may contain slashes.
  app.route("/admin/notifications", notificationRoutes());
  app.get("/metrics", metricsHandler);
  app.route("/admin/repository", repositoryRoutes());
  app.route("/admin", systemRoutes());
  app.route("/admin/backups/jobs", jobRoutes());
  app.route("/admin/backups/schedules", scheduleRoutes());
  app.route("/admin/backups/dlq", dlqRoutes());
  app.route("/admin/backups", backupRoutes());
  app.route(
    "/",
    uiRoutes({
      adminKey: config.server.admin_key || undefined,
      // In-process calls to this same API, with the key: the dashboard's actions pass
      // exactly the API's validation, preflight and redaction.
      api: (method, path, init = {}) => {
        const headers: Record<string, string> = { ...init.headers };
        if (config.server.admin_key) headers.authorization = `Bearer ${config.server.admin_key}`;
        if (init.json !== undefined) headers["content-type"] = "application/json";
        return Promise.resolve(app.request(path, {
          method,
          headers,
          body: init.json === undefined ? undefined : JSON.stringify(init.json),
        }));
      },
    }) as unknown as Hono<AppEnv>,
  );

  app.notFound((c) => {
    // Under a fixed resource (jobs, schedules...), the catch-all key routes do not count.
    const resource = RESOURCE_PATH.test(c.req.path.replace(/^\/admin\/backups\//, ""));
    const routes = resource ? app.routes.filter((r) => !r.path.includes(":key{")) : app.routes;
    const allow = allowedMethods(routes, c.req.path);
    if (allow.length > 0) {
      c.header("Allow", allow.join(", "));
      return c.json(
        errorBody(
          "METHOD_NOT_ALLOWED",
          `${c.req.method} is not allowed on ${c.req.path}: use ${allow.join(", ")}`,
        ),
        405,
      );
    }
    return c.json(errorBody("NOT_FOUND", `No route for ${c.req.method} ${c.req.path}`), 404);
  });

  app.onError((error, c) => {
    if (error instanceof CairnError) {
      return c.json(
        errorBody(error.code, error.message, error.details),
        error.httpStatus as ContentfulStatusCode,
      );
    }
    if (error instanceof HTTPException && error.status < 500) {
      return c.json(
        errorBody(
          error.status === 413 ? "PAYLOAD_TOO_LARGE" : "VALIDATION_FAILED",
          error.message || "Bad request",
        ),
        error.status as ContentfulStatusCode,
      );
    }
    logger.error("Unhandled error in request", {
      request_id: c.get("requestId"),
      method: c.req.method,
      path: c.req.path,
      error: error.message,
      stack: error.stack,
    });
    return c.json(
      errorBody("INTERNAL", `Internal error (request ${c.get("requestId")}); see the daemon log`),
      500,
    );
  });

  return app;
}
