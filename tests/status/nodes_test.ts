import assert from "node:assert/strict";
import { join } from "node:path";
import { createApp } from "../../src/api/app.ts";
import { parseConfig } from "../../src/config/load.ts";
import { configureLog } from "../../src/log.ts";
import { Metrics } from "../../src/metrics/metrics.ts";
import { openServices } from "../../src/runtime/services.ts";
import { PostgresStore } from "../../src/store/postgres.ts";
import { PG_HOST, PG_PORT, withDatabase } from "../helpers/pg.ts";
import { promtoolCheck } from "../helpers/promtool.ts";
import { cairn, withTempDir } from "../helpers/tmp.ts";

const promtool = new Deno.Command("sh", { args: ["-c", "command -v promtool"] }).outputSync()
  .success;

Deno.test({
  name:
    "status on a PostgreSQL store: GET /admin/status, cairn status and /metrics show each node and the clients no live node can run",
  sanitizeResources: false,
  sanitizeOps: false,
  ignore: !promtool,
  fn: async () => {
    configureLog({ to: () => {} });
    await withDatabase((db) =>
      withTempDir(async (dir) => {
        const url = `postgres://postgres@${PG_HOST}:${PG_PORT}/${db}`;
        const configText = JSON.stringify({
          store: { kind: "postgres", url },
          node: { name: "alpha", clients: ["files"] },
          repository: { kind: "fs", path: join(dir, "repo") },
          clients: {
            files: { kind: "directory", path: dir },
            ledger: { kind: "directory", path: dir },
          },
        });
        const configPath = join(dir, "cairn.yaml");
        await Deno.writeTextFile(configPath, configText);

        const store = await PostgresStore.open(url, { max: 2 });
        try {
          const now = store.now();
          await store.registerNode({ name: "alpha", owner: "owner-a", clients: ["files"] });
          await store.registerNode({ name: "beta", owner: "owner-b", clients: ["ledger"] });
          await store.nodeStopped({ name: "beta", owner: "owner-b" });
          const held = await store.enqueue({
            kind: "backup",
            client_name: "files",
            max_attempts: 1,
          }, {
            claimAs: { owner: "owner-a", leaseMs: 600_000 },
          });
          await store.enqueue({ kind: "backup", client_name: "ledger", max_attempts: 1 });
          await store.enqueue({ kind: "backup", client_name: "ledger", max_attempts: 1 });

          const expected = {
            node: "alpha",
            nodes: [
              ["alpha", "live", ["files"], 1, [held.id]],
              ["beta", "stopped", ["ledger"], 0, []],
            ],
            unrunnable: [{
              client: "ledger",
              pending_jobs: 2,
              declared_by_down_nodes: ["beta"],
              message: "no node can run client ledger: beta declares it but is not running",
            }],
          };
          const shape = (b: any) => ({
            node: b.node,
            nodes: b.nodes.map((
              n: any,
            ) => [n.name, n.state, n.clients, n.running_jobs, n.running_job_ids]),
            unrunnable: b.unrunnable,
          });

          const json = await cairn(["status", "--json", "--config", configPath]);
          assert.equal(json.code, 1, json.stderr);
          assert.deepEqual(shape(JSON.parse(json.stdout)), expected);
          const alpha = JSON.parse(json.stdout).nodes[0];
          assert.ok(Date.parse(alpha.last_heartbeat_at) >= now - 1000);

          const text = await cairn(["status", "--config", configPath]);
          assert.match(text.stdout, /^NODE\s+STATE\s+HEARTBEAT AGE\s+RUNNING JOBS\s+CLIENTS$/m);
          assert.match(text.stdout, /^alpha \(this config\)\s+live\s+\d+s\s+1\s+files$/m);
          assert.match(text.stdout, /^beta\s+stopped\s+\d+s\s+0\s+ledger$/m);
          assert.match(
            text.stdout,
            /^no node can run client ledger: beta declares it but is not running \(2 pending\)$/m,
          );

          const services = await openServices(parseConfig(configText));
          try {
            const app = createApp({ services, pool: null, scheduler: null, startedAt: Date.now() });
            const api = (await (await app.request("/admin/status")).json()).data;
            assert.deepEqual(shape(api), expected);

            const { text: metrics } = await new Metrics().render(services);
            const check = await promtoolCheck(metrics);
            assert.equal(check.code, 0, check.out);
            assert.match(metrics, /^cairn_node_state\{node="alpha",state="live"\} 1$/m);
            assert.match(metrics, /^cairn_node_state\{node="beta",state="stopped"\} 1$/m);
            assert.match(metrics, /^cairn_node_state\{node="beta",state="live"\} 0$/m);
            assert.match(metrics, /^cairn_node_running_jobs\{node="alpha"\} 1$/m);
            assert.match(metrics, /^cairn_node_running_jobs\{node="beta"\} 0$/m);
            assert.match(metrics, /^cairn_unrunnable_pending_jobs\{client="ledger"\} 2$/m);
            assert.match(
              metrics,
              /^cairn_node_last_heartbeat_timestamp_seconds\{node="alpha"\} \d+(\.\d+)?(e\+\d+)?$/m,
            );
          } finally {
            await services.store.close();
          }
        } finally {
          await store.close();
        }
      })
    );
  },
});
