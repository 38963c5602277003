import { CairnError } from "../errors.ts";

/**
 * Any key the repository stores (artifacts, manifests, mirrored objects) must stay
 * inside it: relative, '/'-separated, no '.' or '..' segment, no NUL or backslash.
 */
export function assertSafeKey(key: string): void {
  const problem = typeof key !== "string" || key === ""
    ? "empty"
    : key.includes("\0")
    ? "contains a NUL byte"
    : key.startsWith("/")
    ? "starts with '/'"
    : key.includes("\\")
    ? "contains a backslash"
    : key.split("/").some((p) => p === "" || p === "." || p === "..")
    ? "has an empty, '.' or '..' segment"
    : null;
  if (problem) {
    throw new CairnError("INVALID_KEY", `Invalid repository key: it ${problem}`);
  }
}
