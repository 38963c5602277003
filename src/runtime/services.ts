import type { ClientConfig, Config } from "../config/schema.ts";
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
  /** Identifies this process as a lease owner. */
  owner: string;
}

export async function openServices(config: Config, options: BaseOptions = {}): Promise<Services> {
  const repository = await openRepository(config.repository);
  const store = await openStore(config.store, options);
  const owner = `${Deno.hostname()}:${Deno.pid}:${crypto.randomUUID().slice(0, 8)}`;
  return { config, store, repository, owner };
}

export function leaseMs(config: Config): number {
  return Math.round(config.backup.worker_lease_ttl_minutes * 60_000);
}

export function requireClient(config: Config, name: string | null | undefined): ClientConfig {
  const client = name ? config.clients[name] : undefined;
  if (!client) {
    const known = Object.keys(config.clients);
    throw new CairnError(
      "UNKNOWN_CLIENT",
      `Unknown client ${JSON.stringify(name ?? "")}` +
        (known.length
          ? `: configured clients are ${known.join(", ")}`
          : ": no clients are configured"),
    );
  }
  return client;
}
