import type { ClientConfig } from "../config/schema.ts";
import { CairnError } from "../errors.ts";
import type { Engine } from "./engine.ts";

/**
 * Engines load with their first job: a Redis snapshot need not load the PostgreSQL
 * driver, nor a directory backup the AWS SDK. Literal specifiers keep them in a
 * compiled binary.
 */
const ENGINES: Partial<Record<ClientConfig["kind"], () => Promise<Engine<any>>>> = {
  directory: async () => (await import("./directory/engine.ts")).directoryEngine,
  postgres: async () => (await import("./postgres/engine.ts")).postgresEngine,
  redis: async () => (await import("./redis/engine.ts")).redisEngine,
  s3: async () => (await import("./s3mirror/engine.ts")).s3MirrorEngine,
  sqlite: async () => (await import("./sqlite/engine.ts")).sqliteEngine,
};

export async function engineFor(client: ClientConfig, clientName: string): Promise<Engine<any>> {
  const load = ENGINES[client.kind];
  if (!load) {
    throw new CairnError(
      "VALIDATION_FAILED",
      `Client ${clientName} is of kind ${client.kind}, which this build of cairn cannot back up yet`,
    );
  }
  return await load();
}
