import client from "prom-client";
import type { MetricsSnapshot } from "./snapshot.ts";

/** Job durations span seconds (a small SQLite file) to hours (a large database). */
const DURATION_BUCKETS = [1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600];

/**
 * cairn's metrics in the Prometheus text exposition format, with prom-client. Gauges
 * are set from a store snapshot at each scrape (the store is the truth, shared by every
 * daemon on it); the duration histogram counts jobs that finished in this process since
 * it started, as Prometheus histograms do.
 */
export class PromMetrics {
  readonly registry = new client.Registry();
  readonly contentType = client.Registry.PROMETHEUS_CONTENT_TYPE;
  readonly #duration = new client.Histogram({
    name: "cairn_job_duration_seconds",
    help: "Duration of jobs that finished in this process, first start to finish",
    labelNames: ["kind", "client", "status"],
    buckets: DURATION_BUCKETS,
    registers: [this.registry],
  });
  readonly #g = {
    lastSuccess: this.#gauge(
      "cairn_last_success_timestamp_seconds",
      "Finish time of the newest successful backup",
      ["client"],
    ),
    lastDuration: this.#gauge(
      "cairn_last_success_duration_seconds",
      "Duration of the newest successful backup",
      ["client"],
    ),
    lastSize: this.#gauge(
      "cairn_last_success_size_bytes",
      "Stored size of the newest successful backup",
      ["client"],
    ),
    lastVerify: this.#gauge(
      "cairn_last_verify_success_timestamp_seconds",
      "Finish time of the newest successful verification",
      ["client"],
    ),
    verifyOk: this.#gauge(
      "cairn_last_verify_passed",
      "1 when the newest finished verification passed, 0 when it failed",
      ["client"],
    ),
    health: this.#gauge(
      "cairn_client_health",
      "1 for the client's current health (ok, overdue, failing or never), 0 for the others",
      ["client", "health"],
    ),
    jobs: this.#gauge("cairn_jobs", "Jobs in the store by kind and status", ["kind", "status"]),
    dlq: this.#gauge("cairn_dlq_jobs", "Jobs in the dead-letter queue (failed for good)", []),
    queue: this.#gauge("cairn_queue_depth", "Pending jobs", []),
    running: this.#gauge("cairn_jobs_running", "Running jobs", []),
    nextRun: this.#gauge(
      "cairn_schedule_next_run_timestamp_seconds",
      "Next run time of each enabled schedule",
      ["schedule_id", "client", "label"],
    ),
    deliveries: this.#gauge(
      "cairn_notification_deliveries",
      "Notification deliveries in the outbox by channel and status",
      ["channel", "status"],
    ),
    failing: this.#gauge(
      "cairn_notification_deliveries_failing",
      "Deliveries that failed at least once and are still being retried",
      ["channel"],
    ),
    nodeState: this.#gauge(
      "cairn_node_state",
      "1 for the node's current state (live, stale or stopped, from its heartbeat), 0 for the others (PostgreSQL store)",
      ["node", "state"],
    ),
    nodeHeartbeat: this.#gauge(
      "cairn_node_last_heartbeat_timestamp_seconds",
      "Time of the node's newest heartbeat in the store (PostgreSQL store)",
      ["node"],
    ),
    nodeRunning: this.#gauge(
      "cairn_node_running_jobs",
      "Jobs the node holds a lease on now (PostgreSQL store)",
      ["node"],
    ),
    unrunnable: this.#gauge(
      "cairn_unrunnable_pending_jobs",
      "Pending jobs of a client no live node declares (node.clients), so none can run them",
      ["client"],
    ),
  };

  #gauge(name: string, help: string, labelNames: string[]): client.Gauge<string> {
    return new client.Gauge({ name, help, labelNames, registers: [this.registry] });
  }

  observe(kind: string, clientName: string, status: string, seconds: number): void {
    this.#duration.observe({ kind, client: clientName, status }, Math.max(0, seconds));
  }

  async render(s: MetricsSnapshot): Promise<string> {
    for (const g of Object.values(this.#g)) g.reset();
    const g = this.#g;
    for (const c of s.clients) {
      const l = { client: c.client };
      if (c.last_success_ts !== null) g.lastSuccess.set(l, c.last_success_ts);
      if (c.last_success_duration_s !== null) g.lastDuration.set(l, c.last_success_duration_s);
      if (c.last_success_size_bytes !== null) g.lastSize.set(l, c.last_success_size_bytes);
      if (c.last_verify_ts !== null) g.lastVerify.set(l, c.last_verify_ts);
      if (c.last_verify_ok !== null) g.verifyOk.set(l, c.last_verify_ok);
      for (const h of ["ok", "overdue", "failing", "never"]) {
        g.health.set({ client: c.client, health: h }, c.health === h ? 1 : 0);
      }
    }
    for (const [kind, byStatus] of Object.entries(s.jobs.by_kind)) {
      for (const [status, n] of Object.entries(byStatus)) g.jobs.set({ kind, status }, n);
    }
    g.dlq.set(s.jobs.by_status.failed);
    g.queue.set(s.jobs.by_status.pending);
    g.running.set(s.jobs.by_status.running);
    for (const sc of s.schedules) {
      if (sc.next_run_ts === null) continue;
      g.nextRun.set(
        { schedule_id: String(sc.id), client: sc.client, label: sc.label },
        sc.next_run_ts,
      );
    }
    for (const [channel, counts] of Object.entries(s.deliveries)) {
      for (const status of ["pending", "delivered", "dead"] as const) {
        g.deliveries.set({ channel, status }, counts[status]);
      }
      g.failing.set({ channel }, counts.failing);
    }
    for (const n of s.cluster?.nodes ?? []) {
      for (const state of ["live", "stale", "stopped"] as const) {
        g.nodeState.set({ node: n.name, state }, n.state === state ? 1 : 0);
      }
      g.nodeHeartbeat.set({ node: n.name }, Date.parse(n.last_heartbeat_at) / 1000);
      g.nodeRunning.set({ node: n.name }, n.running_jobs);
    }
    for (const u of s.cluster?.unrunnable ?? []) {
      g.unrunnable.set({ client: u.client }, u.pending_jobs);
    }
    return await this.registry.metrics();
  }
}
