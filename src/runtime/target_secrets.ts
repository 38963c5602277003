import { CairnError } from "../errors.ts";
import { redactUrl, registerSecret } from "../redact.ts";

/**
 * Restore targets that carry a credential (`postgres://user:pw@host/db`,
 * `redis://:pw@host:6379/3`). The job store never holds one: a job records the
 * target with its password as *** and a random `target_ref`, and the real target
 * stays in this map, in the memory of the process that enqueued the job (the CLI
 * runs its jobs in-process; the daemon's API enqueues into the daemon that runs
 * them). A job that runs where the map does not have it (after a restart, or on
 * another daemon) fails with an error that says to submit the restore again.
 */
const held = new Map<string, string>();

/** The job params for a target: as given when it holds no password, else redacted plus a reference. */
export function sealTarget(target: string | undefined): { target?: string; target_ref?: string } {
  if (target === undefined) return {};
  let password = "";
  try {
    password = new URL(target).password;
  } catch {
    return { target }; // not a URL: a database name, a path
  }
  if (!password) return { target };
  let plain = password;
  try {
    plain = decodeURIComponent(password);
  } catch { /* kept as written */ }
  // Masked wherever it might still surface: logs, errors from drivers, outputs.
  registerSecret(plain);
  registerSecret(password);
  const ref = crypto.randomUUID();
  held.set(ref, target);
  return { target: redactUrl(target), target_ref: ref };
}

/**
 * The real target of a job: `params.target` itself, or the one held for its
 * `target_ref`. Throws VALIDATION_FAILED (a permanent failure) when this process
 * does not hold it.
 */
export function unsealTarget(params: { target?: string; target_ref?: string }): string | null {
  if (params.target_ref === undefined) return params.target ?? null;
  const target = held.get(params.target_ref);
  if (target === undefined) {
    throw new CairnError(
      "VALIDATION_FAILED",
      `The credential of restore target ${
        params.target ?? ""
      } was kept only in the memory of the process that queued this job, and that process has restarted (or another one took the job): submit the restore again`,
    );
  }
  return target;
}

/** Drops a held target once its job is over for good. */
export function forgetTarget(params: { target_ref?: string }): void {
  if (params.target_ref !== undefined) held.delete(params.target_ref);
}
