import assert from "node:assert/strict";
import { startRedis } from "./helpers/redis.ts";

Deno.test("test helpers: a redis-server that exits at start fails at once with its own output", async () => {
  const started = Date.now();
  await assert.rejects(
    () => startRedis(["--no-such-option", "x"]),
    (e: Error) => /exited with 1/.test(e.message) && /no-such-option/i.test(e.message),
  );
  assert.ok(Date.now() - started < 5000, "no wait for a timeout");
});
