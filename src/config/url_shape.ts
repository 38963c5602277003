/**
 * Why a URL that carries credentials cannot be read as written, or null when it can.
 * A password with `@ / # ?` or a bare `%`, written unencoded, makes the WHATWG parser
 * split it at the wrong place (`postgres://u:p@ss/w#rd@host/db` has host "ss"), so the
 * connection goes elsewhere and the password's tail shows up as a host or a path.
 * RFC 3986 section 3.2.1: such characters must be percent-encoded in the userinfo.
 * The message never repeats any part of the URL.
 */
export function credentialUrlProblem(url: string): string | null {
  const scheme = /^[a-z][a-z0-9+.-]*:\/\//i.exec(url);
  if (!scheme) return null;
  const rest = url.slice(scheme[0].length);
  const at = rest.lastIndexOf("@");
  const encodeHint =
    "percent-encode the user and password (@ as %40, / as %2F, # as %23, ? as %3F, % as %25), " +
    "or give the password apart from the URL";
  if ((rest.match(/@/g) ?? []).length > 1) {
    return `it holds more than one "@": ${encodeHint}`;
  }
  if (at !== -1) {
    const userinfo = rest.slice(0, at);
    if (/[/#?]/.test(userinfo)) return `its user or password holds "/", "#" or "?": ${encodeHint}`;
    if (/%(?![0-9a-f]{2})/i.test(userinfo)) {
      return `its user or password holds a "%" that is not an escape: ${encodeHint}`;
    }
  }
  if (url.includes("#")) return `a connection URL has no "#" part: ${encodeHint}`;
  return null;
}
