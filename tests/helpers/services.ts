import { join } from "node:path";
import { parseConfig } from "../../src/config/load.ts";
import type { Job, NewJob } from "../../src/jobs/types.ts";
import { configureLog } from "../../src/log.ts";
import { runHere } from "../../src/runtime/run_here.ts";
import { openServices, type Services } from "../../src/runtime/services.ts";
import { type Listing, parseListing } from "../../src/engines/s3mirror/listing.ts";
import { loadKeys } from "../../src/pipeline/identity.ts";
import { readArtifact } from "../../src/pipeline/read.ts";

/** Real services (sqlite store, fs repository) in a temp dir, for in-process job tests. */
export async function testServices(
  dir: string,
  clients: Record<string, unknown>,
  backup: Record<string, unknown> = {},
  repository: Record<string, unknown> = { kind: "fs", path: join(dir, "repo") },
): Promise<Services> {
  configureLog({ to: () => {} });
  const config = parseConfig(JSON.stringify({
    store: { kind: "sqlite", path: join(dir, "cairn.db") },
    repository,
    backup: { worker_max_attempts: 1, retry_backoff_ms: 10, ...backup },
    clients,
  }));
  return await openServices(config);
}

export function run(
  services: Services,
  job: Partial<NewJob> & Pick<NewJob, "kind">,
  signal?: AbortSignal,
): Promise<Job> {
  return runHere(services, {
    client_name: null,
    max_attempts: services.config.backup.worker_max_attempts,
    ...job,
  }, { signal });
}

/**
 * A mirror run's listing as JSON, read through the pipeline (it is compressed, and
 * encrypted when the repository is), with this host's identities.
 */
export async function readListing(services: Services, key: string): Promise<Listing> {
  const keys = await loadKeys(services.config.repository.encryption);
  return await parseListing(
    await readArtifact(services.repository, key, {
      identities: keys.identities,
      signal: new AbortController().signal,
    }),
    key,
  );
}
