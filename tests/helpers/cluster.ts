import { join } from "node:path";
import { PostgresStore } from "../../src/store/postgres.ts";
import { type RunningDaemon, spawnDaemon } from "./daemon.ts";
import { PG_HOST, PG_PORT } from "./pg.ts";

export function storeUrl(database: string): string {
  return `postgres://postgres@${PG_HOST}:${PG_PORT}/${database}`;
}

export interface NodeSpec {
  name: string;
  clients: Record<string, unknown>;
  /** node.clients; default: every client of its config. */
  nodeClients?: string[];
  backup?: Record<string, unknown>;
  tools?: Record<string, unknown>;
  /** The store URL this node uses (a proxy in front of the server); default the server. */
  url?: string;
}

/** Writes one node's config: the shared postgres store and fs repository, its own clients. */
export async function writeNodeConfig(
  dir: string,
  database: string,
  spec: NodeSpec,
): Promise<string> {
  const config = {
    server: { listen: "127.0.0.1:0" },
    node: { name: spec.name, ...(spec.nodeClients ? { clients: spec.nodeClients } : {}) },
    store: { kind: "postgres", url: spec.url ?? storeUrl(database), path: join(dir, spec.name) },
    repository: { kind: "fs", path: join(dir, "repo") },
    backup: {
      worker_max_attempts: 2,
      retry_backoff_ms: 100,
      execution_worker_poll_ms: 5000, // NOTIFY wakes the workers; polling is only the fallback
      schedule_worker_poll_ms: 1000,
      worker_concurrency: 4,
      ...(spec.backup ?? {}),
    },
    ...(spec.tools ? { tools: spec.tools } : {}),
    clients: spec.clients,
  };
  const path = join(dir, `${spec.name}.yaml`);
  await Deno.writeTextFile(path, JSON.stringify(config, null, 2));
  return path;
}

export interface Cluster {
  nodes: Map<string, RunningDaemon>;
  store: PostgresStore;
  stop(): Promise<void>;
}

/** Starts one daemon process per spec on one postgres store (in parallel, as an operator would). */
export async function startCluster(
  dir: string,
  database: string,
  specs: NodeSpec[],
): Promise<Cluster> {
  const configs = await Promise.all(specs.map((s) => writeNodeConfig(dir, database, s)));
  const started = await Promise.allSettled(configs.map((c) => spawnDaemon(c)));
  const nodes = new Map<string, RunningDaemon>();
  started.forEach((r, i) => r.status === "fulfilled" && nodes.set(specs[i].name, r.value));
  const stopAll = () => Promise.all([...nodes.values()].map((d) => d.stop().catch(() => 0)));
  const failed = started.find((r) => r.status === "rejected") as PromiseRejectedResult | undefined;
  if (failed) {
    await stopAll();
    throw failed.reason;
  }
  const store = await PostgresStore.open(storeUrl(database), { max: 4 });
  return {
    nodes,
    store,
    async stop() {
      await stopAll();
      await store.close();
    },
  };
}

/** The ids of the jobs a daemon started, from its "Job started" log lines (one per attempt). */
export function startedJobs(d: RunningDaemon): number[] {
  return d.logs.filter((l) => l.includes('"msg":"Job started"')).map((l) => JSON.parse(l).job_id);
}

/** A GNU tar that waits `seconds` before each archive (its --version answers at once). */
export async function slowTar(dir: string, seconds: number): Promise<string> {
  const real = new TextDecoder().decode(
    (await new Deno.Command("sh", { args: ["-c", "command -v tar"], stdout: "piped" }).output())
      .stdout,
  ).trim();
  const path = join(dir, "slow_tar.sh");
  await Deno.writeTextFile(
    path,
    `#!/bin/sh\nfor a in "$@"; do [ "$a" = --version ] && exec ${real} "$@"; done\n/bin/sleep ${seconds}\nexec ${real} "$@"\n`,
  );
  await Deno.chmod(path, 0o755);
  return path;
}

/** The lease owner a node registered (cairn_nodes), once it has. */
export async function ownerOf(store: PostgresStore, name: string): Promise<string | null> {
  return (await store.nodes()).find((n) => n.name === name && n.stopped_at === null)?.owner ?? null;
}

/** The epoch ms of a daemon's first log line with `msg` and (when given) this job id. */
export function logTime(d: RunningDaemon, msg: string, jobId?: number): number | null {
  for (const line of d.logs) {
    if (!line.includes(`"msg":${JSON.stringify(msg)}`)) continue;
    const rec = JSON.parse(line);
    if (jobId === undefined || rec.job_id === jobId) return Date.parse(rec.ts);
  }
  return null;
}
