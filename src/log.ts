import { redact } from "./redact.ts";

export type LogLevel = "debug" | "info" | "warn" | "error";
export type LogFields = Record<string, unknown>;

const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

type Sink = (line: string) => void;

const encoder = new TextEncoder();
function stdoutSink(line: string): void {
  Deno.stdout.writeSync(encoder.encode(line + "\n"));
}
function stderrSink(line: string): void {
  Deno.stderr.writeSync(encoder.encode(line + "\n"));
}

let sink: Sink = stdoutSink;
let minLevel: LogLevel = (Deno.env.get("CAIRN_LOG_LEVEL") as LogLevel | undefined) ?? "info";

/**
 * The daemon logs JSON lines to stdout; one-off CLI commands log to stderr so that
 * `--json` leaves stdout to the job record alone.
 */
export function configureLog(options: { to?: "stdout" | "stderr" | Sink; level?: LogLevel }): void {
  if (options.to === "stdout") sink = stdoutSink;
  else if (options.to === "stderr") sink = stderrSink;
  else if (typeof options.to === "function") sink = options.to;
  if (options.level) minLevel = options.level;
}

export function log(level: LogLevel, msg: string, fields: LogFields = {}): void {
  if (ORDER[level] < ORDER[minLevel in ORDER ? minLevel : "info"]) return;
  const record = { ts: new Date().toISOString(), level, msg, ...fields };
  let line: string;
  try {
    line = JSON.stringify(
      record,
      (_k, v) => v instanceof Error ? { message: v.message, stack: v.stack } : v,
    );
  } catch {
    line = JSON.stringify({ ts: record.ts, level, msg });
  }
  sink(redact(line));
}

export const logger = {
  debug: (msg: string, fields?: LogFields) => log("debug", msg, fields),
  info: (msg: string, fields?: LogFields) => log("info", msg, fields),
  warn: (msg: string, fields?: LogFields) => log("warn", msg, fields),
  error: (msg: string, fields?: LogFields) => log("error", msg, fields),
};

/**
 * Sends whatever the runtime or a library prints through console.* (for example
 * Deno.serve's one-time "request.signal" warning) into the JSON log, so that the
 * daemon's output stays one JSON object per line.
 */
export function captureConsole(): void {
  const levels: [keyof Console, LogLevel][] = [
    ["debug", "debug"],
    ["log", "info"],
    ["info", "info"],
    ["warn", "warn"],
    ["error", "error"],
  ];
  for (const [method, level] of levels) {
    (console as unknown as Record<string, unknown>)[method] = (...args: unknown[]) => {
      const text = args.map((a) => typeof a === "string" ? a : Deno.inspect(a)).join(" ");
      log(level, text, { source: "console" });
    };
  }
}
