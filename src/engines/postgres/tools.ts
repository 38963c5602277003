import { CairnError } from "../../errors.ts";
import { runCommand, toolMissing } from "../process.ts";

export interface ToolVersion {
  bin: string;
  version: string;
  major: number;
}

/** Runs `<bin> --version` ("pg_dump (PostgreSQL) 15.20 ...") and reads the major version. */
export async function toolVersion(bin: string, setting: string): Promise<ToolVersion> {
  let out: Deno.CommandOutput;
  try {
    out = await runCommand(bin, ["--version"]);
  } catch (error) {
    throw toolMissing(bin, setting, error);
  }
  const text = new TextDecoder().decode(out.stdout).trim();
  const m = /\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?/.exec(text);
  if (!out.success || !m) {
    throw new CairnError(
      "TOOL_MISSING",
      `${bin} --version did not report a PostgreSQL version (${
        text || "no output"
      }); check ${setting}`,
    );
  }
  return { bin, version: m[2] ? `${m[1]}.${m[2]}` : m[1], major: Number(m[1]) };
}

export function serverMajor(versionNum: number): number {
  return versionNum >= 100000 ? Math.floor(versionNum / 10000) : Math.floor(versionNum / 100) / 100;
}

/** pg_dump refuses newer servers; say so before starting, with both versions and the fix. */
export function assertDumpCanRead(
  dump: ToolVersion,
  serverVersion: string,
  serverNum: number,
): void {
  const major = serverMajor(serverNum);
  if (dump.major < major) {
    throw new CairnError(
      "TOOL_INCOMPATIBLE",
      `pg_dump ${dump.version} (${dump.bin}) is older than the server (PostgreSQL ${serverVersion}) and cannot dump it: ` +
        `install pg_dump ${
          Math.floor(major)
        } or newer and point tools.pg_dump (or CAIRN_PG_DUMP_PATH) at it`,
    );
  }
}
