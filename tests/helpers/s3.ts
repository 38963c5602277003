/** Starts a real S3 server (s3rver) for a test; default credentials S3RVER / S3RVER. */
export interface S3Server {
  endpoint: string;
  /** s3rver's directory (its store: see s3_uploads.ts for unfinished uploads). */
  dir: string;
  accessKeyId: string;
  secretAccessKey: string;
  stop(): Promise<void>;
}

const SERVER = new URL("./s3_server.ts", import.meta.url).pathname;
const TEST_LOCK = new URL("../../deno.test.lock", import.meta.url).pathname;

/**
 * `direct`: s3rver as it is, without the front (which URL-encodes listings asked for
 * so, and answers ListMultipartUploads / AbortMultipartUpload: see s3_server.ts).
 */
export async function startS3(
  buckets: string[],
  options: { direct?: boolean } = {},
): Promise<S3Server> {
  if (Deno.env.get("CAIRN_TEST_SKIP_SERVICES") === "1") {
    throw new Error("CAIRN_TEST_SKIP_SERVICES=1");
  }
  const dir = await Deno.makeTempDir({ prefix: "cairn-s3-" });
  const child = new Deno.Command(Deno.execPath(), {
    // The test-only lock: s3rver never enters the daemon's deno.lock.
    args: [
      "run",
      "--allow-all",
      `--lock=${TEST_LOCK}`,
      SERVER,
      dir,
      buckets.join(","),
      ...(options.direct ? ["direct"] : []),
    ],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
  while (!text.includes("\n")) {
    const { done, value } = await reader.read();
    if (done) {
      clearTimeout(timer);
      throw new Error(
        "The S3 test server (s3rver) did not start: is the npm package installed (deno install)?",
      );
    }
    text += value;
  }
  clearTimeout(timer);
  reader.releaseLock();
  child.stdout.cancel().catch(() => {});
  const { port } = JSON.parse(text.trim());
  return {
    endpoint: `http://127.0.0.1:${port}`,
    dir,
    accessKeyId: "S3RVER",
    secretAccessKey: "S3RVER",
    async stop() {
      try {
        child.kill("SIGTERM");
      } catch { /* gone */ }
      await child.status;
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}

/** The config of a repository in a bucket of this server. */
export function s3Repository(s3: S3Server, bucket: string, prefix?: string) {
  return {
    kind: "s3",
    endpoint: s3.endpoint,
    bucket,
    ...(prefix === undefined ? {} : { prefix }),
    access_key_id: s3.accessKeyId,
    secret_access_key: s3.secretAccessKey,
  };
}
