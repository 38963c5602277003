import { z } from "zod";
import { CairnError } from "../../errors.ts";
import type { Repository } from "../../repository/repository.ts";
import { TransformSchema } from "../../pipeline/transforms.ts";
import { stateKey } from "./keys.ts";

export const MirrorEntrySchema = z.object({
  key: z.string(),
  stored_key: z.string(),
  size: z.number().int().nonnegative(),
  etag: z.string(),
  sha256: z.string(),
  last_modified: z.string().nullable(),
  source_deleted: z.boolean().optional(),
  /**
   * How this run's copy was stored, when not as the plain bytes (age with its
   * recipients: stored_copy.ts); `size` and `sha256` stay the object's own, the
   * identity that verify, restore and dedup go by.
   */
  transforms: z.array(TransformSchema).optional(),
  /** The stored copy's size and sha256, when transformed (the plain ones otherwise). */
  stored_size: z.number().int().nonnegative().optional(),
  stored_sha256: z.string().optional(),
});
export type MirrorEntry = z.infer<typeof MirrorEntrySchema>;

export const ListingSchema = z.object({
  format_version: z.literal(1),
  client: z.string(),
  bucket: z.string(),
  prefixes: z.array(z.string()),
  created_at: z.string(),
  objects: z.array(MirrorEntrySchema),
  refused: z.array(z.object({ key: z.string(), reason: z.string() })),
});
export type Listing = z.infer<typeof ListingSchema>;

/**
 * The mirror's running index: every object known to be copied, with size, etag and
 * sha256. Written during a run too, so a run that dies part way still records what
 * it copied, and the next run does not copy it again.
 */
export async function readState(
  repo: Repository,
  client: string,
): Promise<Map<string, MirrorEntry>> {
  const key = stateKey(client);
  if (!(await repo.stat(key))) return new Map();
  const parsed = z.array(MirrorEntrySchema).safeParse(
    JSON.parse(await new Response(await repo.get(key)).text()),
  );
  if (!parsed.success) {
    throw new CairnError(
      "VERIFY_FAILED",
      `The mirror state ${key} is malformed; move it aside to start a full mirror`,
    );
  }
  return new Map(parsed.data.map((e) => [e.key, e]));
}

export async function writeState(
  repo: Repository,
  client: string,
  state: Map<string, MirrorEntry>,
): Promise<void> {
  const bytes = new TextEncoder().encode(JSON.stringify([...state.values()]));
  await repo.put(stateKey(client), ReadableStream.from([bytes]));
}

/** The listing as JSON, generated in slices so a 100,000-object listing is never one string. */
export function listingStream(
  head: Omit<Listing, "objects">,
  objects: MirrorEntry[],
): ReadableStream<Uint8Array> {
  const enc = new TextEncoder();
  return ReadableStream.from((function* () {
    const { refused, ...rest } = head;
    yield enc.encode(JSON.stringify({ ...rest, refused }).slice(0, -1) + ',"objects":[');
    for (let i = 0; i < objects.length; i += 1000) {
      const slice = objects.slice(i, i + 1000).map((o) => JSON.stringify(o)).join(",");
      yield enc.encode((i > 0 ? "," : "") + slice);
    }
    yield enc.encode("]}\n");
  })());
}

export async function parseListing(
  stream: ReadableStream<Uint8Array>,
  key: string,
): Promise<Listing> {
  let value: unknown;
  try {
    value = JSON.parse(await new Response(stream).text());
  } catch (error) {
    if (error instanceof CairnError) throw error;
    throw new CairnError("VERIFY_FAILED", `The mirror listing ${key} is not valid JSON`);
  }
  const parsed = ListingSchema.safeParse(value);
  if (!parsed.success) {
    throw new CairnError("VERIFY_FAILED", `The mirror listing ${key} is malformed`);
  }
  return parsed.data;
}
