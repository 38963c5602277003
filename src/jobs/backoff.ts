/**
 * Delay before retry number `attempt` (1 = the first retry): base doubled each time,
 * capped, with +/-20% jitter so that jobs failing together do not retry together.
 * `random` is injected so the result is testable.
 */
export function retryDelayMs(
  attempt: number,
  options: { baseMs: number; maxMs?: number; random?: () => number },
): number {
  const maxMs = options.maxMs ?? 60 * 60 * 1000;
  const random = options.random ?? Math.random;
  const exponent = Math.max(0, Math.min(attempt - 1, 30));
  const raw = Math.min(options.baseMs * 2 ** exponent, maxMs);
  const jitter = 0.8 + random() * 0.4;
  return Math.max(0, Math.round(Math.min(raw * jitter, maxMs)));
}
