/**
 * Failed sign-ins per remote address: after `maxFailures` wrong keys within `windowMs`
 * the address is locked out until the window of its first failure ends. A success
 * clears the address. Tracked addresses are capped so a flood cannot grow memory.
 */
export class SignInLimiter {
  #failures = new Map<string, { count: number; since: number }>();
  constructor(
    private readonly now: () => number = Date.now,
    readonly maxFailures = 5,
    readonly windowMs = 15 * 60_000,
    private readonly maxTracked = 10_000,
  ) {}

  /** Milliseconds until `address` may try again; 0 when it may try now. */
  retryAfterMs(address: string): number {
    const entry = this.#failures.get(address);
    if (!entry) return 0;
    const left = entry.since + this.windowMs - this.now();
    if (left <= 0) {
      this.#failures.delete(address);
      return 0;
    }
    return entry.count >= this.maxFailures ? left : 0;
  }

  fail(address: string): void {
    const at = this.now();
    const entry = this.#failures.get(address);
    if (!entry || at - entry.since >= this.windowMs) {
      if (this.#failures.size >= this.maxTracked) {
        // Oldest first (Map keeps insertion order): drop one to make room.
        this.#failures.delete(this.#failures.keys().next().value!);
      }
      this.#failures.set(address, { count: 1, since: at });
    } else {
      entry.count++;
    }
  }

  succeed(address: string): void {
    this.#failures.delete(address);
  }
}
