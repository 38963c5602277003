import { keyMatches } from "../api/auth.ts";

/** What a state-changing request carries that decides whether it came from our own pages. */
export interface CsrfInput {
  method: string;
  /** The origin the browser sees us at: scheme://host[:port] of the request URL. */
  ownOrigin: string;
  origin: string | undefined;
  secFetchSite: string | undefined;
  /** The token sent in the form field `_csrf` or the `x-csrf-token` header. */
  sentToken: string | undefined;
  /** The session's token; undefined for sign-in, which has no session yet. */
  sessionToken: string | undefined;
}

const SAFE = new Set(["GET", "HEAD", "OPTIONS"]);

/**
 * Why a request is refused as cross-site, or null when it may proceed. Two checks, each
 * enough on its own against a form posted from another site (OWASP CSRF cheat sheet):
 * the Fetch Metadata / Origin headers a browser sets on every POST, and the per-session
 * token only our pages know.
 */
export function csrfProblem(input: CsrfInput): string | null {
  if (SAFE.has(input.method.toUpperCase())) return null;
  const site = input.secFetchSite?.toLowerCase();
  if (site !== undefined && site !== "same-origin" && site !== "none") {
    return `cross-site request refused (Sec-Fetch-Site: ${site})`;
  }
  if (input.origin !== undefined && input.origin !== input.ownOrigin) {
    return `cross-site request refused (Origin ${input.origin} is not ${input.ownOrigin})`;
  }
  if (input.sessionToken === undefined) return null;
  if (!input.sentToken || !keyMatches(input.sentToken, input.sessionToken)) {
    return "missing or wrong CSRF token: reload the page and try again";
  }
  return null;
}
