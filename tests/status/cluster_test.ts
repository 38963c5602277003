import assert from "node:assert/strict";
import { clusterStatus } from "../../src/status/cluster.ts";
import type { NodeInfo } from "../../src/store/store.ts";

const T = Date.parse("2026-11-30T12:00:00Z");
const node = (name: string, clients: string[], over: Partial<NodeInfo> = {}): NodeInfo => ({
  name,
  owner: `cairn1 ${name}/b/1 1 1 x`,
  clients,
  started_at: T - 3600_000,
  heartbeat_at: T - 2000,
  stopped_at: null,
  running_job_ids: [],
  ...over,
});

Deno.test("cluster status: node states from heartbeats; running jobs per node", () => {
  const s = clusterStatus(
    [
      node("a", ["db", "files-a"], { running_job_ids: [4, 9] }),
      node("b", ["db"], { heartbeat_at: T - 31_000 }),
      node("c", ["db"], { stopped_at: T - 5000 }),
    ],
    new Map(),
    T,
    30_000,
  );
  assert.deepEqual(s.nodes.map((n) => [n.name, n.state, n.running_jobs, n.heartbeat_age_s]), [
    ["a", "live", 2, 2],
    ["b", "stale", 0, 31],
    ["c", "stopped", 0, 2],
  ]);
  assert.equal(s.nodes[0].last_heartbeat_at, "2026-11-30T11:59:58.000Z");
  assert.deepEqual(s.nodes[0].running_job_ids, [4, 9]);
  assert.deepEqual(s.unrunnable, []);
});

Deno.test("cluster status: a pending client no live node declares is named, with why", () => {
  const s = clusterStatus(
    [node("a", ["db"]), node("b", ["files-b"], { heartbeat_at: T - 60_000 })],
    new Map([["db", 3], ["files-b", 1], ["orphan", 2], ["zero", 0]]),
    T,
    30_000,
  );
  assert.deepEqual(s.unrunnable, [
    {
      client: "files-b",
      pending_jobs: 1,
      declared_by_down_nodes: ["b"],
      message: "no node can run client files-b: b declares it but is not running",
    },
    {
      client: "orphan",
      pending_jobs: 2,
      declared_by_down_nodes: [],
      message: "no node can run client orphan: no node declares it (node.clients)",
    },
  ]);
});
