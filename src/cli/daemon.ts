import { loadConfig } from "../config/load.ts";
import { captureConsole, configureLog } from "../log.ts";
import { createApp } from "../api/app.ts";
import { startDaemon } from "../runtime/daemon.ts";
import { parseFlags } from "./args.ts";

export async function daemonCommand(argv: string[]): Promise<number> {
  const { values } = parseFlags(argv, {}, { min: 0, max: 0, names: [] });
  configureLog({ to: "stdout" });
  captureConsole();
  const config = await loadConfig(values.config as string | undefined);
  const daemon = await startDaemon(config, createApp);
  await daemon.finished;
  return 0;
}
