import type { Config } from "../config/schema.ts";
import { CairnError } from "../errors.ts";
import type { Job, Schedule } from "../jobs/types.ts";
import type { Delivery } from "../notify/delivery.ts";
import { redactUrl, registerSecret } from "../redact.ts";
import { openStore } from "./open.ts";
import { PostgresStore } from "./postgres.ts";
import type { JobStore } from "./store.ts";
import { openInUse, type StoreUseLock, storeUser } from "./use_lock.ts";

/** A node whose heartbeat is younger than this is taken to be running (nodes beat every ≤ 10 s). */
export const LIVE_NODE_MS = 30_000;

/**
 * What `--from`/`--to` name: a store URL (`postgres://…`, `postgresql://…`,
 * `sqlite:<path>`, `jsonl:<path>`), else a config file whose `store` is meant.
 * Returns the store config, or `{ config: path }` to be loaded. The password of a
 * postgres URL is registered as a secret.
 */
export function parseStoreRef(text: string): Config["store"] | { config: string } {
  const m = /^(postgres|postgresql|sqlite|jsonl):(.*)$/s.exec(text);
  if (!m) return { config: text };
  const scheme = m[1];
  if (scheme === "sqlite" || scheme === "jsonl") {
    const path = m[2].replace(/^\/\/(?=\/)/, "");
    if (path === "") {
      throw new CairnError(
        "VALIDATION_FAILED",
        `${scheme}: needs a path, for example ${scheme}:data/cairn.db`,
      );
    }
    return { kind: scheme, path };
  }
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new CairnError("VALIDATION_FAILED", `Not a valid PostgreSQL URL: ${redactUrl(text)}`);
  }
  registerSecret(decodeURIComponent(url.password));
  return { kind: "postgres", path: "data/node", url: text };
}

export function describeStore(store: Config["store"]): string {
  return store.kind === "postgres" ? redactUrl(store.url!) : `${store.kind}:${store.path}`;
}

export interface CopyReport {
  jobs: number;
  schedules: number;
  /** Notification outbox records (their dedupe keys stop a resend after the move). */
  deliveries: number;
}

async function everyJob(store: JobStore): Promise<Job[]> {
  const out: Job[] = [];
  let cursor: string | null = null;
  do {
    const page = await store.list({}, { limit: 1000, cursor });
    out.push(...page.jobs);
    cursor = page.next_cursor;
  } while (cursor);
  return out.reverse(); // oldest first
}

async function everyDelivery(store: JobStore): Promise<Delivery[]> {
  const out: Delivery[] = [];
  for (;;) {
    const before_id = out.length ? out[out.length - 1].id : undefined;
    const page = await store.listDeliveries(before_id === undefined ? {} : { before_id }, 1000);
    out.push(...page);
    if (page.length < 1000) break;
  }
  return out.reverse(); // oldest first
}

/** Refuses a postgres source that a live node uses: it could claim or finish jobs mid-copy. */
async function refuseLiveNodes(store: JobStore, label: string): Promise<void> {
  if (!(store instanceof PostgresStore)) return;
  const now = store.now();
  const live = (await store.nodes()).filter((n) =>
    n.stopped_at === null && now - n.heartbeat_at < LIVE_NODE_MS
  );
  if (live.length > 0) {
    throw new CairnError(
      "STORE_LOCKED",
      `A cairn daemon is running on the job store ${label} (node ${
        live.map((n) => n.name).join(", ")
      }, last heartbeat ${
        Math.round((now - live[0].heartbeat_at) / 1000)
      } s ago): stop it before copying the store`,
    );
  }
}

/**
 * STORE_LOCKED when the copy's lock on a postgres store was lost (its session ended):
 * a daemon or job could have started on the store meanwhile, so what was read is not
 * trusted and nothing is written.
 */
async function assertHeld(lock: StoreUseLock, label: string): Promise<void> {
  if (!lock.held || await lock.held()) return;
  throw new CairnError(
    "STORE_LOCKED",
    `The copy lost its lock on the job store ${label} (its connection to the server was cut), so a daemon or job may have used the store meanwhile: nothing was written; run the copy again`,
  );
}

/** Opens a store for the copy under its use lock, held exclusively (store/use_lock.ts). */
function openForCopy(store: Config["store"], label: string) {
  return openInUse(store, label, storeUser("copy", "store copy"), () => openStore(store), {
    store: (s) => s,
    close: (s) => s.close(),
  });
}

/**
 * Copies every job (history included), schedule and notification delivery from one
 * store into an empty one, ids kept, so that an operator can move from sqlite or jsonl to
 * postgres and back. Both stores' use locks are held exclusively for the whole copy
 * (store/use_lock.ts): STORE_LOCKED, naming who holds it, while a daemon or a one-off CLI
 * job command works on either, and any of them that starts meanwhile refuses to. Also
 * STORE_LOCKED while a node of a postgres source beats (a daemon of a cairn that predates
 * the lock), and STORE_NOT_EMPTY when the target holds anything.
 */
export async function copyStore(from: Config["store"], to: Config["store"]): Promise<CopyReport> {
  const fromLabel = describeStore(from), toLabel = describeStore(to);
  if (fromLabel === toLabel) {
    throw new CairnError("VALIDATION_FAILED", `--from and --to are the same store (${fromLabel})`);
  }
  const { value: source, lock } = await openForCopy(from, fromLabel);
  try {
    await refuseLiveNodes(source, fromLabel);
    const jobs = await everyJob(source);
    const schedules: Schedule[] = await source.listSchedules();
    const deliveries = await everyDelivery(source);
    await assertHeld(lock, fromLabel);
    const { value: target, lock: targetLock } = await openForCopy(to, toLabel);
    try {
      const [n, s] = [await target.count({}), (await target.listSchedules()).length];
      const d = (await target.listDeliveries({}, 1)).length;
      if (n > 0 || s > 0 || d > 0) {
        throw new CairnError(
          "STORE_NOT_EMPTY",
          `The target store ${toLabel} already holds ${n} job(s)${
            d > 0 ? `, ${s} schedule(s) and notification deliveries` : ` and ${s} schedule(s)`
          }: copy into an empty store`,
        );
      }
      await assertHeld(targetLock, toLabel);
      await target.importRecords({ jobs, schedules, deliveries });
    } finally {
      await targetLock.release();
      await target.close();
    }
    return { jobs: jobs.length, schedules: schedules.length, deliveries: deliveries.length };
  } finally {
    await lock.release();
    await source.close();
  }
}
