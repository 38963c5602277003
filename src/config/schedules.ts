import { z } from "zod";
import { cronProblem, timezoneProblem } from "../jobs/cron.ts";
import { RetentionSchema, SCHEDULE_KINDS } from "../jobs/types.ts";
import { LABEL } from "../repository/keys.ts";

/**
 * One entry of the config's `schedules:` list. (client, label, kind) identifies it
 * across restarts: reconciliation updates the schedule with that identity in place.
 */
export const ConfigScheduleSchema = z.strictObject({
  client: z.string().min(1),
  cron: z.string().min(1).superRefine((v, ctx) => {
    const problem = cronProblem(v);
    if (problem) ctx.addIssue({ code: "custom", message: problem });
  }),
  timezone: z.string().default("UTC").superRefine((v, ctx) => {
    const problem = timezoneProblem(v);
    if (problem) ctx.addIssue({ code: "custom", message: problem });
  }),
  label: z.string().regex(LABEL, "must be 1-40 of a-z, 0-9, _ and -").default("scheduled"),
  kind: z.enum(SCHEDULE_KINDS).default("backup"),
  enabled: z.boolean().default(true),
  retention: RetentionSchema.default({}),
  auto_prune: z.boolean().default(true),
});
export type ConfigSchedule = z.infer<typeof ConfigScheduleSchema>;

export const ConfigSchedulesSchema = z.array(ConfigScheduleSchema).default([]).superRefine(
  (list, ctx) => {
    const seen = new Set<string>();
    list.forEach((s, i) => {
      const id = `${s.client}/${s.label}/${s.kind}`;
      if (seen.has(id)) {
        ctx.addIssue({
          code: "custom",
          path: [i, "label"],
          message:
            `a second ${s.kind} schedule labelled ${s.label} for client ${s.client}: (client, label, kind) must be unique`,
        });
      }
      seen.add(id);
    });
  },
);
