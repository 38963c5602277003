import { Decrypter, Encrypter } from "age-encryption";
import { CairnError } from "../errors.ts";

/**
 * Manifest facts of an encrypted backup (database, table and key names, row counts)
 * say what the data is: they are sealed for the same recipients as the artifact, as
 * the base64 of an age file. What stays readable (key, client, kind, label, time,
 * sizes, sha256s, transforms with recipients' public keys, tool versions) is what
 * listing, pruning and the stored-bytes check need. See docs/pipeline.md.
 */
export async function sealFacts(
  facts: Record<string, unknown>,
  recipients: string[],
): Promise<string> {
  const e = new Encrypter();
  for (const r of recipients) e.addRecipient(r);
  const sealed = await e.encrypt(JSON.stringify(facts));
  return btoa(Array.from(sealed, (b) => String.fromCharCode(b)).join(""));
}

/** Opens sealed facts; IDENTITY_MISSING when no identity matches. */
export async function unsealFacts(
  sealed: string,
  identities: string[],
): Promise<Record<string, unknown>> {
  const d = new Decrypter();
  for (const i of identities) d.addIdentity(i);
  try {
    const bytes = Uint8Array.from(atob(sealed), (c) => c.charCodeAt(0));
    return JSON.parse(await d.decrypt(bytes, "text"));
  } catch (error) {
    throw new CairnError(
      "IDENTITY_MISSING",
      `The manifest's sealed facts cannot be opened with the configured identities: ${
        (error as Error).message
      }`,
      { cause: error },
    );
  }
}
