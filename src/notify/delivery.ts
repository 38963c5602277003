/**
 * The notification outbox's record and its pure state machine. A delivery is one
 * event for one channel; the store keeps it until it is delivered or given up.
 *
 *   pending --claim--> pending (next_attempt_at pushed out by the claim lease)
 *   pending --settle ok--> delivered
 *   pending --settle error, attempts < max--> pending (next_attempt_at = now + backoff)
 *   pending --settle error, attempts >= max--> dead
 */

export const DELIVERY_STATUSES = ["pending", "delivered", "dead"] as const;
export type DeliveryStatus = typeof DELIVERY_STATUSES[number];

/** What a caller hands the outbox. Never holds a secret: channel targets live in the config. */
export interface NewDelivery {
  /** The configured channel's name (notifications[].name). */
  channel: string;
  /** The event's type, for example "job_failed". */
  event: string;
  /**
   * Unique per channel: a second enqueue with the same (channel, dedupe_key) is a no-op,
   * which makes event detection idempotent (a restart re-detects, never re-sends).
   */
  dedupe_key: string;
  /** The event as JSON; rendered per channel kind at send time. */
  payload: Record<string, unknown>;
  /** Attempts before the delivery is given up (status dead). */
  max_attempts: number;
}

/** A delivery as the stores keep it; times are epoch milliseconds. */
export interface Delivery extends NewDelivery {
  id: number;
  status: DeliveryStatus;
  /** Send attempts finished so far (a claim does not count until it is settled). */
  attempts: number;
  /** Earliest time the delivery may be claimed again. */
  next_attempt_at: number;
  last_error: string | null;
  created_at: number;
  updated_at: number;
  delivered_at: number | null;
}

export function newDelivery(id: number, input: NewDelivery, now: number): Delivery {
  return {
    ...input,
    id,
    status: "pending",
    attempts: 0,
    next_attempt_at: now,
    last_error: null,
    created_at: now,
    updated_at: now,
    delivered_at: null,
  };
}

/** A claimed delivery cannot be claimed again for `leaseMs` (a sender that died frees it then). */
export function claimDelivery(d: Delivery, now: number, leaseMs: number): Delivery {
  return { ...d, next_attempt_at: now + leaseMs, updated_at: now };
}

/**
 * Records one send attempt. `retryDelayMs` is used only when another attempt remains.
 * A delivery that is no longer pending is returned unchanged (a late settle after a
 * second sender already finished it).
 */
export function settleDelivery(
  d: Delivery,
  now: number,
  outcome: { ok: true } | { ok: false; error: string; retryDelayMs: number },
): Delivery {
  if (d.status !== "pending") return d;
  const attempts = d.attempts + 1;
  if (outcome.ok) {
    return { ...d, attempts, status: "delivered", delivered_at: now, updated_at: now };
  }
  const dead = attempts >= d.max_attempts;
  return {
    ...d,
    attempts,
    status: dead ? "dead" : "pending",
    last_error: outcome.error.slice(0, 2000),
    next_attempt_at: dead ? d.next_attempt_at : now + outcome.retryDelayMs,
    updated_at: now,
  };
}

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

/** A delivery as the API returns it (times as ISO 8601). */
export function deliveryRecord(d: Delivery) {
  return {
    id: d.id,
    channel: d.channel,
    event: d.event,
    status: d.status,
    attempts: d.attempts,
    max_attempts: d.max_attempts,
    last_error: d.last_error,
    next_attempt_at: d.status === "pending" ? iso(d.next_attempt_at) : null,
    created_at: iso(d.created_at),
    updated_at: iso(d.updated_at),
    delivered_at: iso(d.delivered_at),
    dedupe_key: d.dedupe_key,
    payload: d.payload,
  };
}
