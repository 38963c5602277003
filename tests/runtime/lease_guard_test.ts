import assert from "node:assert/strict";
import { LeaseGuard, leaseMarginMs } from "../../src/runtime/attempt.ts";

Deno.test("lease guard: the margin is a fifth of the TTL, within 1 s to 30 s", () => {
  assert.deepEqual([3000, 6000, 60_000, 15 * 60_000].map(leaseMarginMs), [
    1000,
    1200,
    12_000,
    30_000,
  ]);
});

Deno.test("lease guard: with no renewal, the job stops TTL - margin after the claim; a renewal moves that on", async () => {
  const t0 = performance.now();
  let fired = 0;
  const guard = new LeaseGuard(2000, () => (fired = performance.now() - t0), t0);
  await new Promise((r) => setTimeout(r, 400));
  guard.renewed(t0 + 300); // sent at 300 ms: valid until 2300, stop at 1300
  guard.renewed(t0 + 100); // an older renewal finishing late changes nothing
  await new Promise((r) => setTimeout(r, 1300));
  guard.stop();
  assert.ok(fired >= 1290 && fired < 1600, `stopped at ${fired} ms`);
});

Deno.test("lease guard: stopped, it never fires", async () => {
  let fired = false;
  const guard = new LeaseGuard(1100, () => (fired = true)); // stop due at 100 ms
  guard.stop();
  await new Promise((r) => setTimeout(r, 250));
  assert.equal(fired, false);
});
