import { z } from "zod";

/**
 * The transforms between an engine's plain artifact and the bytes stored, in the
 * order they are applied when writing (compression first: encrypted bytes do not
 * compress). Reading applies them in reverse. Pure: no I/O here.
 */
export const TransformSchema = z.discriminatedUnion("name", [
  z.strictObject({ name: z.literal("zstd"), level: z.number().int() }),
  z.strictObject({ name: z.literal("gzip"), level: z.number().int() }),
  z.strictObject({
    name: z.literal("age"),
    /** The X25519 recipients (`age1…`) the file key was wrapped for, for key rotation. */
    recipients: z.array(z.string().startsWith("age1")).min(1),
  }),
]);
export type Transform = z.infer<typeof TransformSchema>;

export type CompressionName = "zstd" | "gzip" | "none";

/** The key suffix each transform adds (the standard tools' own: zstd, gzip, age). */
export const SUFFIX: Record<Transform["name"], string> = { zstd: "zst", gzip: "gz", age: "age" };

/**
 * Levels each algorithm accepts (zstd: 1-19 without --ultra, RFC 8878 implementations'
 * usual range; gzip: zlib's 1-9).
 */
export const LEVELS: Record<"zstd" | "gzip", { min: number; max: number; default: number }> = {
  // 3 is zstd's own default; measured in scripts/bench/compression.ts: see docs/pipeline.md.
  zstd: { min: 1, max: 19, default: 3 },
  gzip: { min: 1, max: 9, default: 6 },
};

/** The transforms a backup is written with, from its settings. */
export function plannedTransforms(settings: {
  compression: CompressionName;
  level?: number;
  recipients: string[];
}): Transform[] {
  const out: Transform[] = [];
  if (settings.compression !== "none") {
    out.push({
      name: settings.compression,
      level: settings.level ?? LEVELS[settings.compression].default,
    });
  }
  if (settings.recipients.length > 0) out.push({ name: "age", recipients: settings.recipients });
  return out;
}

/** The chained extension: base extension then one suffix per transform (`tar.zst.age`). */
export function chainedExtension(base: string, transforms: Transform[]): string {
  return [base, ...transforms.map((t) => SUFFIX[t.name])].join(".");
}

/**
 * The transforms of a manifest written before the pipeline (format 1): none, except
 * that the directory engine gzipped its tar itself (`.tar.gz`).
 */
export function legacyTransforms(ext: string): Transform[] {
  return ext === "tar.gz" ? [{ name: "gzip", level: 6 }] : [];
}

export function isEncrypted(transforms: Transform[]): boolean {
  return transforms.some((t) => t.name === "age");
}

/** The age recipients (`age1…` public keys) recorded in `transforms`; none when unencrypted. */
export function ageRecipients(transforms: Transform[]): string[] {
  return transforms.flatMap((t) => t.name === "age" ? t.recipients : []);
}
