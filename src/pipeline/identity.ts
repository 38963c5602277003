import { identityToRecipient } from "age-encryption";
import { CairnError } from "../errors.ts";

/** What the encryption settings resolve to for one job. */
export interface Keys {
  /** X25519 recipients (`age1…`) new backups are encrypted for; empty: no encryption. */
  recipients: string[];
  /** Identities (`AGE-SECRET-KEY-1…`) restores and rehearsals decrypt with; may be empty. */
  identities: string[];
  /** Where identities are looked for, for the error a write-only host gives. */
  identityFile: string | null;
}

export interface EncryptionSettings {
  recipients?: string[];
  recipients_file?: string;
  identity_file?: string;
}

/**
 * Lines of an age key file: blank lines and `#` comments skipped (the format
 * age-keygen writes and `age -R`/`age -i` read, age-encryption.org/v1).
 */
export function keyLines(text: string): string[] {
  return text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l !== "" && !l.startsWith("#"));
}

const RECIPIENT = /^age1[02-9ac-hj-np-z]{58}$/;
const IDENTITY = /^AGE-SECRET-KEY-1[02-9AC-HJ-NP-Z]{58}$/;

async function readKeyFile(path: string, what: string): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch (error) {
    throw new CairnError(
      "CONFIG_INVALID",
      `The age ${what} file ${path} cannot be read: ${(error as Error).message}`,
      { cause: error },
    );
  }
}

/**
 * Resolves the settings: recipients from the config and recipients_file, and the
 * identities of identity_file (only read where it is set: a write-only host has
 * none). CONFIG_INVALID naming the file and line for anything that is not a key.
 */
export async function loadKeys(settings: EncryptionSettings | undefined): Promise<Keys> {
  if (!settings) return { recipients: [], identities: [], identityFile: null };
  const recipients = [...(settings.recipients ?? [])];
  if (settings.recipients_file) {
    recipients.push(...keyLines(await readKeyFile(settings.recipients_file, "recipients")));
  }
  for (const r of recipients) {
    if (/^AGE-SECRET-KEY-/i.test(r)) {
      // Never repeated: this message reaches logs, job records and notifications.
      throw new CairnError(
        "CONFIG_INVALID",
        `An age identity (secret key) is listed as a recipient${
          settings.recipients_file ? ` (repository.encryption or ${settings.recipients_file})` : ""
        }: list its public key (age-keygen -y) instead`,
      );
    }
    if (!RECIPIENT.test(r)) {
      throw new CairnError(
        "CONFIG_INVALID",
        `Not an age X25519 recipient: ${
          JSON.stringify(r.slice(0, 80))
        } (expected age1 then 58 characters)`,
      );
    }
  }
  const identities: string[] = [];
  if (settings.identity_file) {
    for (const line of keyLines(await readKeyFile(settings.identity_file, "identity"))) {
      if (!IDENTITY.test(line)) {
        throw new CairnError(
          "CONFIG_INVALID",
          `The identity file ${settings.identity_file} holds a line that is not an age X25519 identity (AGE-SECRET-KEY-1…)`,
        );
      }
      identities.push(line);
    }
  }
  return {
    recipients: [...new Set(recipients)],
    identities,
    identityFile: settings.identity_file ?? null,
  };
}

/** The recipients the identities open, to say which backups a host can restore. */
export async function recipientsOf(identities: string[]): Promise<string[]> {
  return await Promise.all(identities.map((i) => identityToRecipient(i)));
}

/**
 * Fails up front when an encrypted backup cannot be opened here: no identity, or none
 * matching its recorded recipients. The message says where identities are looked for.
 */
export async function requireIdentityFor(recorded: string[], keys: Keys): Promise<void> {
  const where = keys.identityFile
    ? `the identity file ${keys.identityFile}`
    : "repository.encryption.identity_file (not set on this host)";
  if (keys.identities.length === 0) {
    throw new CairnError(
      "IDENTITY_MISSING",
      `This backup is encrypted (age, for ${
        recorded.join(", ")
      }): restoring or rehearsing it needs the matching age identity, looked for in ${where}`,
    );
  }
  const mine = new Set(await recipientsOf(keys.identities));
  if (!recorded.some((r) => mine.has(r))) {
    throw new CairnError(
      "IDENTITY_MISSING",
      `This backup is encrypted for ${
        recorded.join(", ")
      }; no identity in ${where} matches (it opens ${[...mine].join(", ")})`,
    );
  }
}
