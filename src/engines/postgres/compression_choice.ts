/**
 * Who compresses a dump: pg_dump itself, on one core, or cairn on worker threads
 * (archive_recompress.ts). Parallel compression wins when zlib is the bottleneck,
 * which it is for data that compresses poorly (zlib slows to ~50 MB/s on text
 * that halves, against the server's ~250 MB/s of COPY output). For data that
 * compresses very well zlib keeps pace with the server, and piping the whole
 * uncompressed dump through cairn only costs CPU: pg_dump does it better.
 */

export type Compressor = "cairn" | "pg_dump";

/** CAIRN_PG_COMPRESSION: an operator's (or a test's) override of the choice. */
export type CompressionSetting = "auto" | Compressor;

export interface CompressionInputs {
  setting: CompressionSetting;
  /** pg_dump's major version: only archive layouts up to 1.14 (pg_dump 15) are rewritten. */
  dumpMajor: number;
  cores: number;
  databaseBytes: number;
  /** How many times a sample of the data shrank under zlib; null when not sampled. */
  sampleRatio: number | null;
}

export interface CompressionChoice {
  by: Compressor;
  why: string;
}

export const RECOMPRESS_UP_TO_MAJOR = 15;
/** Below this the choice saves well under a second either way; the sample is not taken. */
export const SAMPLE_ABOVE_BYTES = 256 * 1024 * 1024;
/** Data that shrinks more than this compresses faster than the server produces it. */
export const FAST_ZLIB_RATIO = 8;

export function parseCompressionSetting(value: string | undefined): CompressionSetting {
  if (value === undefined || value === "" || value === "auto") return "auto";
  if (value === "cairn" || value === "pg_dump") return value;
  throw new Error(
    `CAIRN_PG_COMPRESSION must be auto, cairn or pg_dump, not ${JSON.stringify(value)}`,
  );
}

/**
 * Whether the choice depends on a sample, so one is worth taking: the same rules
 * chooseCompression applies before it looks at the ratio.
 */
export function wantsSample(inputs: Omit<CompressionInputs, "sampleRatio">): boolean {
  return inputs.setting === "auto" && inputs.dumpMajor <= RECOMPRESS_UP_TO_MAJOR &&
    inputs.cores >= 2 && inputs.databaseBytes >= SAMPLE_ABOVE_BYTES;
}

export function chooseCompression(inputs: CompressionInputs): CompressionChoice {
  if (inputs.setting === "pg_dump") {
    return { by: "pg_dump", why: "CAIRN_PG_COMPRESSION=pg_dump" };
  }
  if (inputs.dumpMajor > RECOMPRESS_UP_TO_MAJOR) {
    return {
      by: "pg_dump",
      why: `pg_dump ${inputs.dumpMajor} writes an archive layout cairn does not rewrite`,
    };
  }
  if (inputs.setting === "cairn") return { by: "cairn", why: "CAIRN_PG_COMPRESSION=cairn" };
  if (inputs.cores < 2) return { by: "pg_dump", why: "one core: no second one to compress on" };
  if (inputs.databaseBytes < SAMPLE_ABOVE_BYTES) return { by: "pg_dump", why: "small database" };
  if (inputs.sampleRatio === null) return { by: "pg_dump", why: "no rows to sample" };
  const ratio = `sampled rows compress ${inputs.sampleRatio.toFixed(1)}x`;
  return inputs.sampleRatio >= FAST_ZLIB_RATIO
    ? { by: "pg_dump", why: `${ratio}: pg_dump keeps pace with the server` }
    : { by: "cairn", why: `${ratio}: zlib is the bottleneck` };
}
