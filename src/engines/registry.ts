import type { ClientConfig } from "../config/schema.ts";
import { CairnError } from "../errors.ts";
import { directoryEngine } from "./directory/engine.ts";
import type { Engine } from "./engine.ts";
import { postgresEngine } from "./postgres/engine.ts";
import { redisEngine } from "./redis/engine.ts";
import { s3MirrorEngine } from "./s3mirror/engine.ts";
import { sqliteEngine } from "./sqlite/engine.ts";

const ENGINES: Partial<Record<ClientConfig["kind"], Engine<any>>> = {
  directory: directoryEngine,
  postgres: postgresEngine,
  redis: redisEngine,
  s3: s3MirrorEngine,
  sqlite: sqliteEngine,
};

export function engineFor(client: ClientConfig, clientName: string): Engine<any> {
  const engine = ENGINES[client.kind];
  if (!engine) {
    throw new CairnError(
      "VALIDATION_FAILED",
      `Client ${clientName} is of kind ${client.kind}, which this build of cairn cannot back up yet`,
    );
  }
  return engine;
}
