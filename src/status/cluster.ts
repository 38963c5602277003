import type { NodeInfo } from "../store/store.ts";

/** A node as GET /admin/status and `cairn status` show it (and the metrics read it). */
export interface NodeStatus {
  name: string;
  clients: string[];
  /** live: beating; stale: no heartbeat for `staleMs`; stopped: shut down cleanly. */
  state: "live" | "stale" | "stopped";
  started_at: string;
  last_heartbeat_at: string;
  heartbeat_age_s: number;
  running_jobs: number;
  running_job_ids: number[];
}

/** Pending jobs that wait for a client no live node declares. */
export interface UnrunnableClient {
  client: string;
  pending_jobs: number;
  /** Nodes that declare it but are not live now. */
  declared_by_down_nodes: string[];
  message: string;
}

export interface ClusterStatus {
  nodes: NodeStatus[];
  unrunnable: UnrunnableClient[];
}

/**
 * What status says about the nodes sharing a store: each node's state from its
 * heartbeat (stale after `staleMs` without one), and every client with pending jobs
 * that no live node can run ("no node can run client X"). Pure: `now` and the rows
 * are given; times in epoch ms.
 */
export function clusterStatus(
  nodes: NodeInfo[],
  pendingByClient: ReadonlyMap<string, number>,
  now: number,
  staleMs: number,
): ClusterStatus {
  const out: NodeStatus[] = nodes.map((n) => ({
    name: n.name,
    clients: [...n.clients].sort(),
    state: n.stopped_at !== null ? "stopped" : now - n.heartbeat_at > staleMs ? "stale" : "live",
    started_at: new Date(n.started_at).toISOString(),
    last_heartbeat_at: new Date(n.heartbeat_at).toISOString(),
    heartbeat_age_s: Math.max(0, Math.round((now - n.heartbeat_at) / 1000)),
    running_jobs: n.running_job_ids.length,
    running_job_ids: n.running_job_ids,
  }));
  const unrunnable: UnrunnableClient[] = [];
  for (const [client, pending] of [...pendingByClient].sort(([a], [b]) => a.localeCompare(b))) {
    if (pending <= 0) continue;
    const declaring = out.filter((n) => n.clients.includes(client));
    if (declaring.some((n) => n.state === "live")) continue;
    const down = declaring.map((n) => n.name);
    unrunnable.push({
      client,
      pending_jobs: pending,
      declared_by_down_nodes: down,
      message: down.length === 0
        ? `no node can run client ${client}: no node declares it (node.clients)`
        : `no node can run client ${client}: ${down.join(", ")} ${
          down.length === 1 ? "declares" : "declare"
        } it but ${down.length === 1 ? "is" : "are"} not running`,
    });
  }
  return { nodes: out, unrunnable };
}
