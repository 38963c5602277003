/**
 * S3 prefix mirroring against rclone, in one run, on a real S3 server (s3rver):
 * 5,000 objects of mixed sizes (1 KiB to 8 MiB, mostly small).
 * - first cairn mirror      vs  rclone sync of the same prefix to a local directory (target <= 1.0)
 * - unchanged second run    as a fraction of the first                            (target <= 0.1)
 * - cairn's peak RSS                                                               (target < 200 MB)
 * Needs Debian's rclone (apt-get install rclone).
 *
 * Rounds alternate rclone and cairn; the median round's ratios are the result.
 *
 *   deno task bench:mirror [--objects 5000] [--rounds 3]
 */
import { join } from "node:path";
import { parseArgs } from "node:util";
import { PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { forEachConcurrently } from "../../src/io/pool.ts";
import { CAIRN, settleDisk, startS3Server, type Timed, timed, writeConfig } from "./common.ts";

const { values } = parseArgs({
  options: {
    objects: { type: "string", default: "5000" },
    rounds: { type: "string", default: "3" },
  },
});
const N = Number(values.objects);
const ROUNDS = Number(values.rounds);
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
  // Rounds alternate rclone and cairn, each into a fresh destination, and the
  // median round is reported: this machine's noise moves a single pair by +-20%.
  const rounds: Array<{ rclone: Timed; first: Timed; second: Timed; copied: number }> = [];
  for (let round = 1; round <= ROUNDS; round++) {
    await settleDisk();
    const rclone = await timed([
      "rclone",
      "sync",
      "src:bench-src/data",
      join(dir, `rclone-dst-${round}`),
      "--transfers",
      "8",
      "--checkers",
      "8",
    ], { env: rcloneEnv });
    const config = await writeConfig(dir, `cairn-${round}`, {
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
    await settleDisk();
    const first = await timed([...CAIRN, "backup", "assets", "--json", "--config", config]);
    const copied = JSON.parse(first.stdout).result.objects_copied;
    if (copied !== N) throw new Error(`the first mirror copied ${copied} of ${N} objects`);
    const second = await timed([...CAIRN, "backup", "assets", "--json", "--config", config]);
    const again = JSON.parse(second.stdout).result.objects_copied;
    if (again !== 0) throw new Error(`the unchanged run copied ${again} objects`);
    rounds.push({ rclone, first, second, copied });
    console.log(
      `  round ${round}: rclone ${rclone.seconds.toFixed(1)} s (CPU ${
        rclone.cpuSeconds.toFixed(1)
      } s), cairn ${first.seconds.toFixed(1)} s (CPU ${first.cpuSeconds.toFixed(1)} s, RSS ${
        first.rssMiB.toFixed(0)
      } MiB) -> ${(first.seconds / rclone.seconds).toFixed(2)}; unchanged ${
        second.seconds.toFixed(2)
      } s -> ${(second.seconds / first.seconds).toFixed(2)}`,
    );
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  console.log(
    `  first mirror vs rclone sync: median ratio ${
      median(rounds.map((r) => r.first.seconds / r.rclone.seconds)).toFixed(2)
    } over ${ROUNDS} rounds (target <= 1.0)`,
  );
  console.log(
    `  unchanged second run: median ${
      median(rounds.map((r) => r.second.seconds / r.first.seconds)).toFixed(2)
    } of the first (target <= 0.1); copied 0`,
  );
  console.log(
    `  cairn peak RSS: ${
      Math.max(...rounds.map((r) => Math.max(r.first.rssMiB, r.second.rssMiB))).toFixed(0)
    } MiB at most (target < 200 MB)`,
  );
} finally {
  await server.stop();
  await Deno.remove(dir, { recursive: true });
}
