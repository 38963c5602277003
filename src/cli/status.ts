import { loadConfig } from "../config/load.ts";
import { readClientStatuses, readClusterStatus } from "../status/read.ts";
import { openStore } from "../store/open.ts";
import { parseFlags } from "./args.ts";
import { out, table } from "./output.ts";

/**
 * `cairn status [--json]`: each client's health, newest success, verification,
 * overdue flag and next run, read from the job store; on a PostgreSQL store also each
 * node (state, heartbeat age, running jobs) and the clients no live node can run. Exit 0 when every client is ok,
 * 1 when any is overdue, failing or never backed up (a monitoring check), 2 on usage.
 */
export async function statusCommand(argv: string[]): Promise<number> {
  const { values } = parseFlags(argv, { json: { type: "boolean" } }, {
    min: 0,
    max: 0,
    names: [],
  });
  const config = await loadConfig(values.config as string | undefined);
  const store = await openStore(config.store);
  try {
    const now = Date.now();
    const clients = await readClientStatuses(store, config, now, now);
    const healthy = clients.every((c) => c.health === "ok");
    const cluster = await readClusterStatus(store, config);
    if (values.json) {
      out(JSON.stringify({ healthy, clients, ...cluster }));
      return healthy ? 0 : 1;
    }
    if (clients.length === 0) {
      out("No clients are configured.");
    } else {
      out(table([
        ["CLIENT", "HEALTH", "LAST SUCCESS", "VERIFIED", "NEXT RUN"],
        ...clients.map((c) => [
          c.client,
          c.health,
          c.last_success?.finished_at ?? "-",
          c.verification ? c.verification.status : "no",
          c.next_run_at ?? "-",
        ]),
      ]));
    }
    if (cluster) {
      out("");
      out(table([
        ["NODE", "STATE", "HEARTBEAT AGE", "RUNNING JOBS", "CLIENTS"],
        ...cluster.nodes.map((n) => [
          n.name === cluster.node ? `${n.name} (this config)` : n.name,
          n.state,
          `${n.heartbeat_age_s}s`,
          String(n.running_jobs),
          n.clients.join(",") || "-",
        ]),
      ]));
      for (const u of cluster.unrunnable) out(`${u.message} (${u.pending_jobs} pending)`);
    }
    return healthy ? 0 : 1;
  } finally {
    await store.close();
  }
}
