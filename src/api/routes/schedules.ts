import { Hono } from "hono";
import { CairnError } from "../../errors.ts";
import { nextRunAt } from "../../jobs/cron.ts";
import { type Schedule, type SchedulePatch, scheduleRecord } from "../../jobs/types.ts";
import { requireClient } from "../../runtime/services.ts";
import { type AppEnv, requiredClientName } from "../deps.ts";
import { ok } from "../envelope.ts";
import { CreateScheduleBody, IdParam, PatchScheduleBody } from "../schemas.ts";
import { jsonBody, parseWith } from "../validate.ts";

function nextRun(s: Pick<Schedule, "cron" | "timezone" | "enabled">): number | null {
  return s.enabled ? nextRunAt(s.cron, s.timezone, new Date())?.getTime() ?? null : null;
}

function unknownClientField(error: unknown): never {
  if (error instanceof CairnError && error.code === "UNKNOWN_CLIENT") {
    throw new CairnError("UNKNOWN_CLIENT", error.message, {
      details: [{ path: "client_name", message: error.message }],
    });
  }
  throw error;
}

/** A schedule from the config's `schedules:` is changed there, not through the API. */
function refuseConfigOwned(s: Schedule): void {
  if (!s.config_owned) return;
  throw new CairnError(
    "SCHEDULE_CONFIG_OWNED",
    `Schedule ${s.id} (${s.client_name}/${s.label}) is declared in the config file's schedules: ` +
      "section; edit it there and restart the daemon (the API changes only schedules it created)",
  );
}

export function scheduleRoutes(): Hono<AppEnv> {
  const app = new Hono<AppEnv>();

  app.get("/", async (c) => {
    const schedules = await c.get("deps").services.store.listSchedules();
    return ok(c, { schedules: schedules.map(scheduleRecord) });
  });

  app.post("/", async (c) => {
    const { services, scheduler } = c.get("deps");
    const body = await jsonBody(c, CreateScheduleBody);
    const client = requiredClientName(c, body.client_name);
    try {
      requireClient(services.config, client);
    } catch (error) {
      unknownClientField(error);
    }
    const schedule = await services.store.createSchedule({
      client_name: client,
      cron: body.cron,
      timezone: body.timezone,
      label: body.label,
      enabled: body.enabled,
      retention: body.retention,
      kind: body.kind,
      auto_prune: body.auto_prune,
      next_run_at: nextRun(body),
    });
    scheduler?.poke();
    return ok(c, scheduleRecord(schedule), { status: 201, message: "Schedule created" });
  });

  app.patch("/:id", async (c) => {
    const { services, scheduler } = c.get("deps");
    const id = parseWith(IdParam, c.req.param("id"), "path");
    const body = await jsonBody(c, PatchScheduleBody);
    const current = await services.store.getSchedule(id);
    if (!current) throw new CairnError("SCHEDULE_NOT_FOUND", `Schedule ${id} not found`);
    refuseConfigOwned(current);
    if (body.client_name !== undefined) {
      try {
        requireClient(services.config, body.client_name);
      } catch (error) {
        unknownClientField(error);
      }
    }
    const { next_run_at, last_run_at, ...rest } = body;
    const patch: SchedulePatch = { ...rest };
    if (last_run_at !== undefined) {
      patch.last_run_at = last_run_at === null ? null : Date.parse(last_run_at);
    }
    const merged = { ...current, ...patch };
    if (next_run_at !== undefined) {
      patch.next_run_at = next_run_at === null ? null : Date.parse(next_run_at);
    } else if (
      body.cron !== undefined || body.timezone !== undefined || body.enabled !== undefined
    ) {
      patch.next_run_at = nextRun(merged);
    }
    const schedule = await services.store.updateSchedule(id, patch);
    scheduler?.poke();
    return ok(c, scheduleRecord(schedule), { message: "Schedule updated" });
  });

  app.delete("/:id", async (c) => {
    const id = parseWith(IdParam, c.req.param("id"), "path");
    const current = await c.get("deps").services.store.getSchedule(id);
    if (current) refuseConfigOwned(current);
    if (!(await c.get("deps").services.store.deleteSchedule(id))) {
      throw new CairnError("SCHEDULE_NOT_FOUND", `Schedule ${id} not found`);
    }
    return ok(c, { id, deleted: true }, { message: "Schedule deleted; its jobs' history is kept" });
  });

  return app;
}
