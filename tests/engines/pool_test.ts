import assert from "node:assert/strict";
import { forEachConcurrently } from "../../src/io/pool.ts";

const tick = (ms = 1) => new Promise((r) => setTimeout(r, ms));

Deno.test("pool: every item is worked once, never more than `concurrency` at once", async () => {
  let running = 0, peak = 0;
  const seen: number[] = [];
  await forEachConcurrently(Array.from({ length: 40 }, (_, i) => i), 3, async (i) => {
    running++;
    peak = Math.max(peak, running);
    await tick(i % 4);
    seen.push(i);
    running--;
  });
  assert.deepEqual(seen.sort((a, b) => a - b), Array.from({ length: 40 }, (_, i) => i));
  assert.equal(peak, 3);
});

Deno.test("pool: an async iterable is consumed while work runs, not read whole first", async () => {
  const log: string[] = [];
  async function* items() {
    for (let i = 0; i < 4; i++) {
      log.push(`yield ${i}`);
      yield i;
      await tick();
    }
  }
  await forEachConcurrently(items(), 1, async (i) => {
    log.push(`work ${i}`);
    await tick();
  });
  assert.deepEqual(log.slice(0, 3), ["yield 0", "work 0", "yield 1"]);
});

Deno.test("pool: the first failure stops further pulls and is the one thrown", async () => {
  const worked: number[] = [];
  await assert.rejects(
    forEachConcurrently(Array.from({ length: 100 }, (_, i) => i), 2, async (i) => {
      await tick();
      if (i === 3) throw new Error("item 3 failed");
      if (i === 4) throw new Error("item 4 failed too");
      worked.push(i);
    }),
    /item 3 failed/,
  );
  assert.ok(worked.length < 10, `stopped early (${worked.length} worked)`);
});

Deno.test("pool: when the items' iterator fails, the pool waits for work already started", async () => {
  let finished = 0;
  async function* items() {
    yield 1;
    yield 2;
    throw new Error("listing page 2 failed");
  }
  await assert.rejects(
    forEachConcurrently(items(), 4, async () => {
      await tick(20);
      finished++;
    }),
    /listing page 2 failed/,
  );
  assert.equal(finished, 2, "both started items settled before the pool rejected");
});

Deno.test("pool: an iterator abandoned after a failure is closed", async () => {
  let closed = false;
  async function* items() {
    try {
      for (let i = 0;; i++) yield i;
    } finally {
      closed = true;
    }
  }
  await assert.rejects(
    forEachConcurrently(items(), 2, async (i) => {
      await tick();
      if (i === 5) throw new Error("stop");
    }),
    /stop/,
  );
  assert.ok(closed);
});

Deno.test("pool: an abort stops further pulls, lets started work settle and rejects with its reason", async () => {
  const controller = new AbortController();
  let started = 0, finished = 0;
  const pool = forEachConcurrently(Array.from({ length: 50 }, (_, i) => i), 2, async () => {
    started++;
    await tick(10);
    finished++;
  }, controller.signal);
  await tick(15);
  controller.abort(new Error("cancelled by the operator"));
  await assert.rejects(pool, /cancelled by the operator/);
  assert.equal(finished, started);
  assert.ok(started < 50);
});
