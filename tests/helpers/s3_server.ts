/**
 * A real S3-compatible server for tests (s3rver), in its own process so its work
 * does not share the test's event loop. Prints {"port":N} once listening.
 *   deno run -A tests/helpers/s3_server.ts DIR BUCKET[,BUCKET...]
 */
import S3rver from "s3rver";

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
