import type { Delivery } from "../notify/delivery.ts";

/**
 * A delivery as the values of one row of the SQL stores' deliveries table, in its
 * column order (id, channel, event, dedupe_key, payload as JSON text, max_attempts,
 * status, attempts, next_attempt_at, last_error, created_at, updated_at,
 * delivered_at): the SQLite store's put and the PostgreSQL store's import both bind it.
 */
export function deliveryValues(d: Delivery): (string | number | null)[] {
  return [
    d.id,
    d.channel,
    d.event,
    d.dedupe_key,
    JSON.stringify(d.payload),
    d.max_attempts,
    d.status,
    d.attempts,
    d.next_attempt_at,
    d.last_error,
    d.created_at,
    d.updated_at,
    d.delivered_at,
  ];
}
