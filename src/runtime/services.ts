import { type ClientConfig, type Config, scratchRoot } from "../config/schema.ts";
import { formatOwner, initProcessId } from "../io/process_id.ts";
import { Scratch } from "../io/scratch.ts";
import { CairnError } from "../errors.ts";
import { openRepository } from "../repository/open.ts";
import type { Repository } from "../repository/repository.ts";
import type { BaseOptions } from "../store/base.ts";
import { openStore } from "../store/open.ts";
import type { JobStore } from "../store/store.ts";

/** Everything a job needs, built once from the config. */
export interface Services {
  config: Config;
  store: JobStore;
  repository: Repository;
  /**
   * Identifies this process as a lease owner: host, pid and start time (see
   * io/process_id.ts), so that a restart on the same host can tell it is gone.
   */
  owner: string;
  /** The scratch root every scratch file goes under. */
  scratch: Scratch;
}

export async function openServices(config: Config, options: BaseOptions = {}): Promise<Services> {
  const repository = await openRepository(config.repository);
  const store = await openStore(config.store, options);
  const owner = formatOwner(await initProcessId(), crypto.randomUUID().slice(0, 8));
  return { config, store, repository, owner, scratch: new Scratch(scratchRoot(config)) };
}

export function leaseMs(config: Config): number {
  return Math.round(config.backup.worker_lease_ttl_minutes * 60_000);
}

/**
 * The configured client called `name`. Looked up as an own key, never as a property:
 * "constructor", "toString" or "__proto__" are names like any other, and unknown ones
 * are UNKNOWN_CLIENT (400), not whatever Object.prototype holds under them.
 */
export function requireClient(config: Config, name: string | null | undefined): ClientConfig {
  const client = typeof name === "string" && name !== "" && Object.hasOwn(config.clients, name)
    ? config.clients[name]
    : undefined;
  if (!client) {
    const known = Object.keys(config.clients);
    const message = `Unknown client ${JSON.stringify(name ?? "")}` +
      (known.length
        ? `: configured clients are ${known.join(", ")}`
        : ": no clients are configured");
    // The same shape on every route: the field that named it, as VALIDATION_FAILED has.
    throw new CairnError("UNKNOWN_CLIENT", message, {
      details: [{ path: "client_name", message }],
    });
  }
  return client;
}
