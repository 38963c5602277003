import type { Manifest } from "../repository/manifest.ts";

/** Whether a backup is encrypted and whether this host holds a key that opens it. */
export interface Decryptability {
  encrypted: boolean;
  /** null when not encrypted. */
  canDecrypt: boolean | null;
  note: string;
}

/**
 * The hook for encrypted backups (another branch adds them): today no manifest is
 * encrypted. When encryption lands, read its manifest field and the configured keys here;
 * the client and backup pages already show what this returns.
 */
export function decryptability(_manifest: Pick<Manifest, "facts">): Decryptability {
  return { encrypted: false, canDecrypt: null, note: "not encrypted" };
}
