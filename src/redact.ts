/**
 * Secrets known to this process (from the config). Every string that leaves the
 * process through a log, a job record, an error or an API body passes redact(),
 * so a secret that slipped into a message from a library is still masked.
 */
const secrets = new Set<string>();

export const MASK = "***";

export function registerSecret(value: string | undefined | null): void {
  // Very short values would mask ordinary words; they are not worth a breach anyway.
  if (value && value.length >= 3) secrets.add(value);
  if (value) {
    const encoded = encodeURIComponent(value);
    if (encoded !== value && encoded.length >= 3) secrets.add(encoded);
  }
}

/** Passwords inside URLs (scheme://user:pass@host) are masked even when unregistered. */
const URL_PASSWORD = /([a-z][a-z0-9+.-]*:\/\/[^:/@\s]*:)([^@\s/]+)(@)/gi;

export function redact(text: string): string {
  let out = text.replace(URL_PASSWORD, `$1${MASK}$3`);
  // Longest first, so a secret containing another is masked whole.
  for (const secret of [...secrets].sort((a, b) => b.length - a.length)) {
    if (out.includes(secret)) out = out.split(secret).join(MASK);
  }
  return out;
}

/** A URL for display: the password replaced by ***, the rest kept. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = MASK;
    return parsed.toString().replace(encodeURIComponent(MASK), MASK);
  } catch {
    return redact(url);
  }
}
