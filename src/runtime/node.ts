import type { Config } from "../config/schema.ts";
import { toError } from "../errors.ts";
import { logger } from "../log.ts";
import { PostgresStore } from "../store/postgres.ts";
import type { NodeRegistration } from "../store/store.ts";
import { leaseMs, type Services } from "./services.ts";

/** This node's name: config `node.name`, else the hostname. */
export function nodeName(config: Config): string {
  if (config.node.name) return config.node.name;
  try {
    return Deno.hostname();
  } catch {
    return "unknown";
  }
}

/** The clients this node can run: config `node.clients`, else every client it configures. */
export function nodeClients(config: Config): string[] {
  return config.node.clients ?? Object.keys(config.clients);
}

/** How often a node records its heartbeat (ms): a third of the lease TTL, at most 10 s. */
export function nodeHeartbeatMs(config: Config): number {
  return Math.max(500, Math.min(leaseMs(config) / 3, 10_000));
}

/**
 * A daemon's presence in a shared store: it registers itself (name, lease owner,
 * clients), beats every nodeHeartbeatMs, and wakes its worker pool when another node
 * enqueues (LISTEN/NOTIFY). A store of one host (sqlite, jsonl) has no nodes: this
 * does nothing there.
 */
export class NodePresence {
  readonly #services: Services;
  readonly #registration: NodeRegistration;
  #timer: ReturnType<typeof setInterval> | null = null;
  #unsubscribe: (() => void) | null = null;

  readonly #keepUse: () => Promise<void>;

  /** `keepUse`: run on each heartbeat, keeps the daemon's store use lock (use_lock.ts). */
  constructor(services: Services, keepUse: () => Promise<void> = () => Promise.resolve()) {
    this.#services = services;
    this.#keepUse = keepUse;
    this.#registration = {
      name: nodeName(services.config),
      owner: services.owner,
      clients: nodeClients(services.config),
    };
  }

  get registration(): NodeRegistration {
    return this.#registration;
  }

  /** Registers the node and subscribes `wake` to enqueues anywhere. */
  async start(wake: () => void): Promise<void> {
    const store = this.#services.store;
    if (!(store instanceof PostgresStore)) return;
    await store.registerNode(this.#registration);
    const clients = new Set(this.#registration.clients);
    this.#unsubscribe = await store.onJobPending((client) => {
      if (client === null || clients.has(client)) wake();
    });
    this.#timer = setInterval(() => {
      store.heartbeatNode(this.#registration).catch((error) =>
        logger.warn("Could not record the node heartbeat", { error: toError(error).message })
      );
      void this.#keepUse();
    }, nodeHeartbeatMs(this.#services.config));
  }

  async stop(): Promise<void> {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
    this.#unsubscribe?.();
    this.#unsubscribe = null;
    const store = this.#services.store;
    if (store instanceof PostgresStore) {
      await store.nodeStopped(this.#registration).catch(() => {});
    }
  }
}
