import { z } from "zod";
import { loadConfig } from "../config/load.ts";
import { JOB_STATUSES, jobRecord } from "../jobs/types.ts";
import { openStore } from "../store/open.ts";
import { parseFlags, UsageError } from "./args.ts";
import { out, table } from "./output.ts";

export async function jobsCommand(argv: string[]): Promise<number> {
  const { values } = parseFlags(argv, {
    status: { type: "string" },
    client: { type: "string" },
    limit: { type: "string" },
    json: { type: "boolean" },
  }, { min: 0, max: 0, names: [] });
  const status = values.status as string | undefined;
  if (status !== undefined && !(JOB_STATUSES as readonly string[]).includes(status)) {
    throw new UsageError(
      `Invalid --status ${JSON.stringify(status)}: one of ${JOB_STATUSES.join(", ")}`,
    );
  }
  const limit = z.coerce.number().int().min(1).max(1000).safeParse(values.limit ?? "50");
  if (!limit.success) {
    throw new UsageError(
      `Invalid --limit ${JSON.stringify(values.limit)}: a whole number from 1 to 1000`,
    );
  }
  const config = await loadConfig(values.config as string | undefined);
  const store = await openStore(config.store);
  try {
    const { jobs } = await store.list(
      { status: status as never, client_name: values.client as string | undefined },
      { limit: limit.data },
    );
    if (values.json) {
      out(JSON.stringify({ jobs: jobs.map(jobRecord) }));
      return 0;
    }
    if (jobs.length === 0) {
      out("No jobs.");
      return 0;
    }
    out(table([
      ["ID", "KIND", "CLIENT", "STATUS", "ATTEMPTS", "CREATED", "KEY / ERROR"],
      ...jobs.map((j) => [
        String(j.id),
        j.kind,
        j.client_name ?? "-",
        j.status,
        `${j.attempts}/${j.max_attempts}`,
        new Date(j.created_at).toISOString(),
        j.status === "failed" || j.status === "cancelled" ? (j.error ?? "") : (j.key ?? ""),
      ]),
    ]));
    return 0;
  } finally {
    await store.close();
  }
}
