/**
 * A real S3-compatible server for tests (s3rver), in its own process so its work
 * does not share the test's event loop. Prints {"port":N} once listening.
 *   deno run -A tests/helpers/s3_server.ts DIR BUCKET[,BUCKET...]
 */
// Test-only: imported by version here, not in deno.json, so the daemon never installs it.
// deno-lint-ignore no-import-prefix -- test-only on purpose: kept out of deno.json and deno.lock
import S3rver from "npm:s3rver@3.7.1";

const [dir, buckets] = Deno.args;
const server = new S3rver({
  address: "127.0.0.1",
  port: 0,
  silent: true,
  directory: dir,
  configureBuckets: (buckets ?? "").split(",").filter(Boolean).map((name) => ({
    name,
    configs: [],
  })),
});
const { port } = await server.run();
console.log(JSON.stringify({ port }));
Deno.addSignalListener("SIGTERM", async () => {
  await server.close();
  Deno.exit(0);
});
