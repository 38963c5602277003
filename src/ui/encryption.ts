import { ageRecipients, type Transform } from "../pipeline/transforms.ts";

/**
 * What this host holds to open encrypted backups: the public keys (`age1…`) derived
 * from the identities in `repository.encryption.identity_file` (see HostIdentityCache).
 */
export interface HostIdentities {
  /** The configured identity file, or null when none is set (a write-only host). */
  identityFile: string | null;
  /** The recipients this host's identities open, in the file's order. */
  recipients: string[];
  /** Why the identity file could not be used (unreadable, not age keys); null when it could. */
  problem: string | null;
}

/** The four answers the dashboard gives, plus an identity file that cannot be read. */
export type DecryptState =
  | "plain"
  | "decryptable"
  | "no-identity"
  | "foreign"
  | "identity-unreadable";

/** Whether a backup is encrypted and whether this host holds a key that opens it. */
export interface Decryptability {
  state: DecryptState;
  encrypted: boolean;
  /** null when not encrypted. */
  canDecrypt: boolean | null;
  /** The short answer shown in a backup's row. */
  note: string;
  /** The recipients the backup was encrypted for (full `age1…` keys); empty when plain. */
  recipients: string[];
  /** The recipient whose identity this host holds, when it can decrypt. */
  matched: string | null;
  /** Why a restore cannot run here (for the disabled restore button); null when it can. */
  restoreBlocked: string | null;
}

/**
 * An age recipient shortened for a table cell: `age1` and the next 8 characters, an
 * ellipsis, the last 6 (62 characters in full, age-encryption.org/v1 Bech32).
 */
export function shortRecipient(recipient: string): string {
  return recipient.length <= 20 ? recipient : `${recipient.slice(0, 12)}…${recipient.slice(-6)}`;
}

/** Where this host looks for identities, for the messages that say none is there. */
export function identityWhere(host: Pick<HostIdentities, "identityFile">): string {
  return host.identityFile
    ? `the identity file ${host.identityFile}`
    : "repository.encryption.identity_file, which is not set on this host";
}

/**
 * Whether this host can decrypt a backup, from the transforms its manifest records
 * (format 2 manifests name each age recipient's public key; see artifactTransforms for
 * format 1) and the recipients this host's identities open. Pure.
 */
export function decryptability(transforms: Transform[], host: HostIdentities): Decryptability {
  const recipients = ageRecipients(transforms);
  if (!transforms.some((t) => t.name === "age")) {
    return {
      state: "plain",
      encrypted: false,
      canDecrypt: null,
      note: "not encrypted",
      recipients: [],
      matched: null,
      restoreBlocked: null,
    };
  }
  const base = { encrypted: true, recipients, matched: null } as const;
  if (host.problem !== null) {
    const why = `this host cannot read its identity file: ${host.problem}`;
    return {
      ...base,
      state: "identity-unreadable",
      canDecrypt: false,
      note: `encrypted; ${why}`,
      restoreBlocked: `The backup is encrypted and ${why}.`,
    };
  }
  if (host.recipients.length === 0) {
    const where = identityWhere(host);
    return {
      ...base,
      state: "no-identity",
      canDecrypt: false,
      note:
        `encrypted; this host has no identity (write-only host): restore impossible here; identities are looked for in ${where}`,
      restoreBlocked:
        `The backup is encrypted and this host holds no age identity: restore is impossible here. Identities are looked for in ${where}.`,
    };
  }
  const held = new Set(host.recipients);
  const matched = recipients.find((r) => held.has(r));
  if (matched !== undefined) {
    return {
      ...base,
      state: "decryptable",
      canDecrypt: true,
      matched,
      note: `encrypted; this host can decrypt it (as ${shortRecipient(matched)})`,
      restoreBlocked: null,
    };
  }
  const named = recipients.map(shortRecipient).join(", ");
  return {
    ...base,
    state: "foreign",
    canDecrypt: false,
    note: `encrypted for ${named}; this host holds none of them`,
    restoreBlocked: `The backup is encrypted for ${named}, and ${identityWhere(host)} opens only ${
      host.recipients.map(shortRecipient).join(", ")
    }: restore is impossible here.`,
  };
}
