import { toError } from "../errors.ts";
import { retryDelayMs } from "../jobs/backoff.ts";
import type { Job } from "../jobs/types.ts";
import { logger } from "../log.ts";
import type { Services } from "../runtime/services.ts";
import { type ChannelConfig, channelEvents, type NotifyEvent } from "./config.ts";
import type { Delivery } from "./delivery.ts";
import {
  type DetectedEvent,
  type EventPayload,
  jobEvent,
  overdueEvent,
  recoveredEvent,
  startedEvent,
  testEvent,
} from "./events.ts";
import { isOverdue, maxAgeFor } from "./overdue.ts";
import { sendDelivery } from "./send.ts";

export interface NotifierOptions {
  /** How often the outbox is looked at for due retries (an enqueue wakes it at once). */
  pollMs?: number;
  /** How often finished jobs and overdue clients are looked for (crash-safe detection). */
  scanMs?: number;
  /** When watching began: a client that never backed up is measured from here. */
  startedAt: number;
  /** Replaces the real sender (benchmarks). */
  send?: typeof sendDelivery;
}

/** Finished jobs older than this are not re-detected at start (their deliveries may be pruned). */
const RESCAN_WINDOW_MS = 24 * 3_600_000;
/** Delivered and dead deliveries are kept this long for GET /admin/notifications. */
const KEEP_MS = 7 * 24 * 3_600_000;
const BATCH = 8;

/**
 * Turns what happens to jobs and clients into outbox deliveries, and sends them.
 *
 * Detection is idempotent: each event has a dedupe key, so the in-process hooks (a job
 * settled here) and the periodic scan (jobs settled anywhere, including by a crashed
 * predecessor or the sweep) may both see an event and it is still enqueued once per
 * channel. Sending is at-least-once with the same X-Cairn-Delivery id on every retry;
 * a failure to notify is logged and counted, and never touches the job.
 */
export class Notifier {
  readonly #services: Services;
  readonly #options: Required<Omit<NotifierOptions, "send">> & { send: typeof sendDelivery };
  readonly #channels: Map<string, ChannelConfig>;
  #timer: ReturnType<typeof setTimeout> | null = null;
  #scanTimer: ReturnType<typeof setInterval> | null = null;
  #tick: Promise<unknown> = Promise.resolve();
  #scanning: Promise<unknown> = Promise.resolve();
  #stopped = false;
  #running = false;
  #again = false;

  constructor(services: Services, options: NotifierOptions) {
    this.#services = services;
    this.#options = {
      pollMs: options.pollMs ?? 1000,
      scanMs: options.scanMs ?? 30_000,
      startedAt: options.startedAt,
      send: options.send ?? sendDelivery,
    };
    this.#channels = new Map(services.config.notifications.map((c) => [c.name, c]));
  }

  get channels(): ChannelConfig[] {
    return [...this.#channels.values()];
  }

  /** Whether any channel hears `event` (detection that costs queries is skipped otherwise). */
  wants(event: NotifyEvent): boolean {
    return this.channels.some((c) => channelEvents(c).includes(event));
  }

  start(): void {
    if (this.#channels.size === 0) return;
    this.#scanning = this.scan();
    this.#scanTimer = setInterval(() => {
      this.#scanning = this.scan();
    }, this.#options.scanMs);
    this.#schedule(0);
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    if (this.#scanTimer) clearInterval(this.#scanTimer);
    await this.#scanning;
    await this.#tick;
  }

  /** Sends what is due now rather than at the next poll. */
  wake(): void {
    if (this.#stopped || this.#channels.size === 0) return;
    if (this.#running) {
      this.#again = true;
      return;
    }
    if (this.#timer) clearTimeout(this.#timer);
    this.#schedule(0);
  }

  #schedule(ms: number): void {
    this.#timer = setTimeout(() => {
      this.#running = true;
      this.#tick = this.deliverDue().finally(() => {
        this.#running = false;
        const again = this.#again;
        this.#again = false;
        if (!this.#stopped) this.#schedule(again ? 0 : this.#options.pollMs);
      });
    }, ms);
  }

  /** A job reached a final state in this process. Never throws. */
  async jobSettled(job: Job): Promise<void> {
    try {
      await this.#detectJob(job);
      this.wake();
    } catch (error) {
      logger.error("Could not queue a notification", {
        job_id: job.id,
        error: toError(error).message,
      });
    }
  }

  /** A job attempt started in this process (healthchecks' start ping). Never throws. */
  async jobStarted(job: Job): Promise<void> {
    if (!this.wants("job_started") || job.kind !== "backup") return;
    try {
      await this.#emit(startedEvent(job, Date.now()));
      this.wake();
    } catch (error) {
      logger.error("Could not queue a notification", {
        job_id: job.id,
        error: toError(error).message,
      });
    }
  }

  async #detectJob(job: Job): Promise<void> {
    const detected = jobEvent(job);
    if (detected) await this.#emit(detected);
    if (
      job.kind === "backup" && job.status === "completed" && job.client_name !== null &&
      this.wants("client_recovered")
    ) {
      const failed = await this.#lastFailedBackupBefore(job);
      if (failed) await this.#emit(recoveredEvent(job, failed));
    }
  }

  /**
   * The client's newest failed backup, when it failed after the success before `job`
   * (so `job` is the first success since that failure), else null.
   */
  async #lastFailedBackupBefore(job: Job): Promise<Job | null> {
    const { store } = this.#services;
    const client = job.client_name!;
    const [failed] = (await store.list(
      { client_name: client, kind: "backup", status: "failed" },
      { limit: 1 },
    )).jobs;
    if (!failed || failed.finished_at === null || failed.finished_at > job.finished_at!) {
      return null;
    }
    const successes = (await store.list(
      { client_name: client, kind: "backup", status: "completed" },
      { limit: 20 },
    )).jobs.filter((j) => j.id !== job.id && j.finished_at! <= job.finished_at!);
    const previous = successes.reduce<number | null>(
      (max, j) => (max === null || j.finished_at! > max ? j.finished_at! : max),
      null,
    );
    return previous === null || failed.finished_at > previous ? failed : null;
  }

  /**
   * Looks for events that in-process hooks may have missed: jobs that finished in the
   * last day (settled by a crashed predecessor, the sweep, or before a restart) and
   * overdue clients. Safe to run any number of times.
   */
  async scan(now = Date.now()): Promise<void> {
    if (this.#channels.size === 0) return;
    try {
      const { store } = this.#services;
      const statuses: Array<"failed" | "completed"> = ["failed"];
      if (this.wants("job_succeeded") || this.wants("client_recovered")) {
        statuses.push("completed");
      }
      for (const status of statuses) {
        const { jobs } = await store.list({ status }, { limit: 100 });
        // Oldest first, so a recovery is detected after the failure it follows.
        for (const job of jobs.reverse()) {
          if (job.finished_at !== null && now - job.finished_at <= RESCAN_WINDOW_MS) {
            await this.#detectJob(job);
          }
        }
      }
      if (this.wants("backup_overdue")) await this.#scanOverdue(now);
      await store.deleteDeliveriesBefore(now - KEEP_MS);
      this.wake();
    } catch (error) {
      logger.error("Notification scan failed", { error: toError(error).message });
    }
  }

  async #scanOverdue(now: number): Promise<void> {
    const { store, config } = this.#services;
    const schedules = await store.listSchedules();
    for (const [name, client] of Object.entries(config.clients)) {
      const own = schedules.filter((s) => s.client_name === name);
      const maxAge = maxAgeFor(client.max_age, own, now);
      if (maxAge === null) continue;
      const [last] = (await store.list(
        { client_name: name, kind: "backup", status: "completed" },
        { limit: 1 },
      )).jobs;
      const lastAt = last?.finished_at ?? null;
      const since = Math.min(this.#options.startedAt, ...own.map((s) => s.created_at));
      if (isOverdue(now, maxAge, lastAt, since)) {
        await this.#emit(
          overdueEvent(name, last ? { id: last.id, at: lastAt! } : null, maxAge, now),
        );
      }
    }
  }

  /** Enqueues `detected` for every channel that hears it (and this client). */
  async #emit(detected: DetectedEvent): Promise<Delivery[]> {
    const out: Delivery[] = [];
    for (const channel of this.#channels.values()) {
      if (!this.#hears(channel, detected.payload)) continue;
      const { delivery, created } = await this.#services.store.enqueueDelivery({
        channel: channel.name,
        event: detected.payload.event,
        dedupe_key: detected.dedupe_key,
        payload: detected.payload,
        max_attempts: channel.max_attempts,
      });
      if (created) {
        logger.info("Notification queued", {
          delivery_id: delivery.id,
          channel: channel.name,
          event: delivery.event,
        });
      }
      out.push(delivery);
    }
    return out;
  }

  #hears(channel: ChannelConfig, payload: EventPayload): boolean {
    if (!channelEvents(channel).includes(payload.event)) return false;
    if (payload.event === "test") return true;
    if (channel.clients && (payload.client === null || !channel.clients.includes(payload.client))) {
      return false;
    }
    if (channel.kind === "healthchecks") {
      // Pings are about a client's backups only.
      return payload.client !== null && Object.hasOwn(channel.urls, payload.client) &&
        payload.job?.kind === "backup";
    }
    return true;
  }

  /**
   * Sends a test event to one channel now and records it in the outbox like any other
   * delivery (a failed test is retried too). Returns the delivery after the attempt.
   */
  async test(channelName: string): Promise<Delivery> {
    const channel = this.#channels.get(channelName);
    if (!channel) throw new Error(`unknown channel ${channelName}`);
    const detected = testEvent(Date.now());
    const { delivery } = await this.#services.store.enqueueDelivery({
      channel: channel.name,
      event: "test",
      dedupe_key: detected.dedupe_key,
      payload: detected.payload,
      max_attempts: channel.max_attempts,
    });
    // The outbox sends it (one sender, so never twice); wait for the first attempt.
    this.wake();
    const deadline = Date.now() + channel.timeout_ms + 5_000;
    for (;;) {
      const [now] = (await this.#services.store.listDeliveries({ channel: channel.name }, 20))
        .filter((d) => d.id === delivery.id);
      if (!now || now.attempts > 0 || now.status !== "pending" || Date.now() > deadline) {
        return now ?? delivery;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Claims and sends every due delivery (in batches); returns how many were attempted. */
  async deliverDue(): Promise<number> {
    let attempted = 0;
    try {
      for (;;) {
        const lease = Math.max(...this.channels.map((c) => c.timeout_ms)) + 30_000;
        const batch = await this.#services.store.claimDeliveries(BATCH, lease);
        if (batch.length === 0) break;
        await Promise.all(batch.map((d) => this.#attempt(d)));
        attempted += batch.length;
        if (this.#stopped) break;
      }
    } catch (error) {
      logger.error("Notification delivery loop failed", { error: toError(error).message });
    }
    return attempted;
  }

  async #attempt(d: Delivery): Promise<Delivery> {
    const { store } = this.#services;
    const channel = this.#channels.get(d.channel);
    let outcome: { ok: true } | { ok: false; error: string; retryDelayMs: number };
    if (!channel) {
      outcome = {
        ok: false,
        error: `channel ${d.channel} is no longer configured`,
        retryDelayMs: 3_600_000,
      };
    } else {
      try {
        await this.#options.send(channel, d.id, d.payload as EventPayload);
        outcome = { ok: true };
      } catch (error) {
        outcome = {
          ok: false,
          error: toError(error).message,
          retryDelayMs: retryDelayMs(d.attempts + 1, { baseMs: channel.retry_backoff_ms }),
        };
      }
    }
    const settled = (await store.settleDelivery(d.id, outcome)) ?? d;
    const fields = {
      delivery_id: d.id,
      channel: d.channel,
      event: d.event,
      attempt: settled.attempts,
    };
    if (outcome.ok) logger.info("Notification delivered", fields);
    else if (settled.status === "dead") {
      logger.error("Notification given up", { ...fields, error: outcome.error });
    } else {
      logger.warn("Notification failed; retry scheduled", {
        ...fields,
        error: outcome.error,
        retry_in_ms: settled.next_attempt_at - Date.now(),
      });
    }
    return settled;
  }
}
