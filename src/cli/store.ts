import { loadConfig } from "../config/load.ts";
import type { Config } from "../config/schema.ts";
import { copyStore, describeStore, parseStoreRef } from "../store/copy.ts";
import { parseFlags, UsageError } from "./args.ts";
import { out } from "./output.ts";

async function resolve(flag: string, value: unknown): Promise<Config["store"]> {
  if (typeof value !== "string" || value === "") {
    throw new UsageError(`Missing --${flag}: a config file or a store URL`);
  }
  const ref = parseStoreRef(value);
  return "config" in ref ? (await loadConfig(ref.config)).store : ref;
}

/** `cairn store copy --from <config or url> --to <config or url>` */
export async function storeCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub !== "copy") {
    throw new UsageError(
      `Unknown command: store ${sub ?? ""}`.trim() + " (did you mean: cairn store copy?)",
    );
  }
  const { values } = parseFlags(rest, {
    from: { type: "string" },
    to: { type: "string" },
    json: { type: "boolean" },
  }, { min: 0, max: 0, names: [] });
  const from = await resolve("from", values.from);
  const to = await resolve("to", values.to);
  const report = await copyStore(from, to);
  if (values.json) {
    out(JSON.stringify({ from: describeStore(from), to: describeStore(to), ...report }));
  } else {
    out(
      `Copied ${report.jobs} job(s), ${report.schedules} schedule(s) and ${report.deliveries} notification delivery record(s) from ${
        describeStore(from)
      } to ${describeStore(to)}`,
    );
  }
  return 0;
}
