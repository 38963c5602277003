/**
 * S3 prefix mirroring against rclone, in one run, on a real S3 server (s3rver):
 * 5,000 objects of mixed sizes (1 KiB to 8 MiB, mostly small).
 * - first cairn mirror      vs  rclone sync of the same prefix to a local directory (target <= 1.0)
 * - unchanged second run    as a fraction of the first                            (target <= 0.1)
 * - cairn's peak RSS                                                               (target < 200 MB)
 * Needs Debian's rclone (apt-get install rclone).
 *
 *   deno task bench:mirror [--objects 5000]
 */
import { join } from "node:path";
import { parseArgs } from "node:util";
import { PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { forEachConcurrently } from "../../src/engines/pool.ts";
import { CAIRN, startS3Server, timed, writeConfig } from "./common.ts";

const { values } = parseArgs({ options: { objects: { type: "string", default: "5000" } } });
const N = Number(values.objects);
const dir = await Deno.makeTempDir({ prefix: "cairn-bench-mirror-" });

/** Mostly small objects, some medium, a few large: 90% 1-64 KiB, 9% 64 KiB-1 MiB, 1% 1-8 MiB. */
function sizeOf(i: number): number {
  const r = (i * 2654435761) % 1000;
  if (r < 900) return 1024 + (i * 7919) % (63 * 1024);
  if (r < 990) return 64 * 1024 + (i * 104729) % (960 * 1024);
  return 1024 * 1024 + (i * 1299709) % (7 * 1024 * 1024);
}

const server = await startS3Server(join(dir, "s3"), ["bench-src"]);
try {
  const endpoint = server.endpoint;
  const client = new S3Client({
    endpoint,
    region: "us-east-1",
    forcePathStyle: true,
    credentials: { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" },
  });
  const block = new Uint8Array(8 * 1024 * 1024);
  for (let o = 0; o < block.length; o += 65536) {
    crypto.getRandomValues(block.subarray(o, o + 65536));
  }
  let total = 0;
  await forEachConcurrently(Array.from({ length: N }, (_, i) => i), 16, async (i) => {
    const size = sizeOf(i);
    total += size;
    await client.send(
      new PutObjectCommand({
        Bucket: "bench-src",
        Key: `data/${i % 50}/object-${i}.bin`,
        Body: block.subarray(i % 4096, (i % 4096) + size),
      }),
    );
  });
  console.log(`s3 mirror benchmark: ${N} objects, ${(total / 2 ** 20).toFixed(0)} MiB`);

  const rcloneEnv = {
    RCLONE_CONFIG_SRC_TYPE: "s3",
    RCLONE_CONFIG_SRC_PROVIDER: "Other",
    RCLONE_CONFIG_SRC_ENDPOINT: endpoint,
    RCLONE_CONFIG_SRC_ACCESS_KEY_ID: "S3RVER",
    RCLONE_CONFIG_SRC_SECRET_ACCESS_KEY: "S3RVER",
    RCLONE_CONFIG_SRC_FORCE_PATH_STYLE: "true",
    RCLONE_CONFIG_SRC_LIST_VERSION: "1",
    PATH: Deno.env.get("PATH") ?? "",
    HOME: Deno.env.get("HOME") ?? "/root",
  };
  const rclone = await timed([
    "rclone",
    "sync",
    "src:bench-src/data",
    join(dir, "rclone-dst"),
    "--transfers",
    "8",
    "--checkers",
    "8",
  ], { env: rcloneEnv });

  const config = await writeConfig(dir, "cairn", {
    clients: {
      assets: {
        kind: "s3",
        endpoint,
        bucket: "bench-src",
        prefixes: ["data/"],
        access_key_id: "S3RVER",
        secret_access_key: "S3RVER",
        concurrency: 8,
      },
    },
  });
  const first = await timed([...CAIRN, "backup", "assets", "--json", "--config", config]);
  const firstJob = JSON.parse(first.stdout);
  const second = await timed([...CAIRN, "backup", "assets", "--json", "--config", config]);
  const secondJob = JSON.parse(second.stdout);
  console.log(
    `  first mirror: rclone sync ${rclone.seconds.toFixed(1)} s, cairn ${
      first.seconds.toFixed(1)
    } s -> ratio ${
      (first.seconds / rclone.seconds).toFixed(2)
    } (target <= 1.0); copied ${firstJob.result.objects_copied}; cairn peak RSS ${
      first.rssMiB.toFixed(0)
    } MiB (rclone ${rclone.rssMiB.toFixed(0)} MiB); CPU cairn ${
      first.cpuSeconds.toFixed(1)
    } s, rclone ${rclone.cpuSeconds.toFixed(1)} s`,
  );
  console.log(
    `  unchanged second run: ${second.seconds.toFixed(1)} s = ${
      (second.seconds / first.seconds).toFixed(2)
    } of the first (target <= 0.1); copied ${secondJob.result.objects_copied}; peak RSS ${
      second.rssMiB.toFixed(0)
    } MiB`,
  );
} finally {
  await server.stop();
  await Deno.remove(dir, { recursive: true });
}
