import type { ClientConfig } from "../config/schema.ts";
import { CairnError } from "../errors.ts";
import { unseen } from "../lazy.ts";
import type { Engine } from "./engine.ts";

/**
 * Engines load with their first job: a Redis snapshot need not load the PostgreSQL
 * driver, nor a directory backup the AWS SDK (see unseen() for why not literals).
 */
const ENGINES: Partial<Record<ClientConfig["kind"], () => Promise<Engine<any>>>> = {
  directory: async () =>
    (await import(unseen("./directory/engine.ts")) as typeof import("./directory/engine.ts"))
      .directoryEngine,
  postgres: async () =>
    (await import(unseen("./postgres/engine.ts")) as typeof import("./postgres/engine.ts"))
      .postgresEngine,
  redis: async () =>
    (await import(unseen("./redis/engine.ts")) as typeof import("./redis/engine.ts")).redisEngine,
  s3: async () =>
    (await import(unseen("./s3mirror/engine.ts")) as typeof import("./s3mirror/engine.ts"))
      .s3MirrorEngine,
  sqlite: async () =>
    (await import(unseen("./sqlite/engine.ts")) as typeof import("./sqlite/engine.ts"))
      .sqliteEngine,
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
