/**
 * S3 prefix mirroring against rclone, in one run, on a real S3 server (s3rver):
 * 5,000 objects of mixed sizes (1 KiB to 8 MiB, mostly small).
 * - first cairn mirror      vs  rclone sync of the same prefix to a local directory (target <= 1.0)
 * - unchanged second run    as a fraction of the first                            (target <= 0.1)
 * - changed run (5% of the objects rewritten, same sizes): its time, and the bytes the
 *   repository grew by (the displaced copies kept as versions) against a plain
 *   overwrite (which keeps nothing: it grows by the size difference, here 0)
 * - cairn's peak RSS                                                               (target < 200 MB)
 * Needs Debian's rclone (apt-get install rclone).
 *
 * Rounds alternate rclone and cairn; the median round's ratios are the result.
 *
 * With --previous REF (a git ref, e.g. main), the previous release (exported with
 * `git archive`) runs the same first, unchanged and 5%-changed runs in each round, into
 * its own repository: cairn's figures against it, and its changed run is the plain
 * overwrite (it keeps no version).
 *
 *   deno task bench:mirror [--objects 5000] [--rounds 3] [--previous main]
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
    previous: { type: "string" },
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

/** Bytes of the files under `root` (0 when it does not exist). */
async function bytesUnder(root: string): Promise<number> {
  let total = 0;
  const walk = async (d: string) => {
    for await (const e of Deno.readDir(d)) {
      const p = join(d, e.name);
      if (e.isDirectory) await walk(p);
      else if (e.isFile) total += (await Deno.stat(p)).size;
    }
  };
  await walk(root).catch(() => {});
  return total;
}

/** The previous release as a command (its tree from `git archive`, sharing node_modules). */
async function previousRelease(ref: string): Promise<string[]> {
  const root = new URL("../../", import.meta.url).pathname;
  const tree = join(dir, "previous");
  await Deno.mkdir(tree);
  const archive = await new Deno.Command("sh", {
    args: ["-c", `git -C "$1" archive "$2" | tar -x -C "$3"`, "sh", root, ref, tree],
  }).output();
  if (!archive.success) {
    throw new Error(`git archive ${ref}: ${new TextDecoder().decode(archive.stderr)}`);
  }
  await Deno.symlink(join(root, "node_modules"), join(tree, "node_modules"));
  return [...CAIRN.slice(0, -1), join(tree, "main.ts")];
}
const PREVIOUS = values.previous ? await previousRelease(values.previous) : null;

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
  const rounds: Array<
    {
      rclone: Timed;
      first: Timed;
      second: Timed;
      changed: Timed;
      copied: number;
      changedBytes: number;
      grown: number;
      storedNew: number;
      prev: { first: Timed; second: Timed; changed?: Timed; grown?: number } | null;
    }
  > = [];
  /** The objects a changed run rewrites: every 20th, new bytes of the same size. */
  const changedIds = Array.from({ length: N }, (_, i) => i).filter((i) => i % 20 === 7);
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
    const configOf = (name: string) =>
      writeConfig(dir, name, {
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
    const config = await configOf(`cairn-${round}`);
    await settleDisk();
    const first = await timed([...CAIRN, "backup", "assets", "--json", "--config", config]);
    const copied = JSON.parse(first.stdout).result.objects_copied;
    if (copied !== N) throw new Error(`the first mirror copied ${copied} of ${N} objects`);
    const second = await timed([...CAIRN, "backup", "assets", "--json", "--config", config]);
    const again = JSON.parse(second.stdout).result.objects_copied;
    if (again !== 0) throw new Error(`the unchanged run copied ${again} objects`);
    // The previous release: first and unchanged runs into its own repository.
    const prevConfig = PREVIOUS ? await configOf(`previous-${round}`) : null;
    let prev: { first: Timed; second: Timed; changed?: Timed; grown?: number } | null = null;
    if (PREVIOUS && prevConfig) {
      await settleDisk();
      const pFirst = await timed([
        ...PREVIOUS,
        "backup",
        "assets",
        "--json",
        "--config",
        prevConfig,
      ]);
      const pSecond = await timed([
        ...PREVIOUS,
        "backup",
        "assets",
        "--json",
        "--config",
        prevConfig,
      ]);
      prev = { first: pFirst, second: pSecond };
    }
    // 5% changed: new bytes (another offset into the random block), the same sizes.
    let changedBytes = 0;
    await forEachConcurrently(changedIds, 16, async (i) => {
      const size = sizeOf(i);
      changedBytes += size;
      const at = (i * 31 + round * 977) % 4096 + 1;
      await client.send(
        new PutObjectCommand({
          Bucket: "bench-src",
          Key: `data/${i % 50}/object-${i}.bin`,
          Body: block.subarray(at, at + size),
        }),
      );
    });
    const repo = join(dir, `cairn-${round}-repo`, "mirrors");
    const before = await bytesUnder(repo);
    await settleDisk();
    const changed = await timed([...CAIRN, "backup", "assets", "--json", "--config", config]);
    const changedResult = JSON.parse(changed.stdout).result;
    if (changedResult.objects_copied !== changedIds.length) {
      throw new Error(
        `the changed run copied ${changedResult.objects_copied} of ${changedIds.length} objects`,
      );
    }
    const grown = (await bytesUnder(repo)) - before;
    if (PREVIOUS && prevConfig && prev) {
      const prevRepo = join(dir, `previous-${round}-repo`, "mirrors");
      const pBefore = await bytesUnder(prevRepo);
      await settleDisk();
      prev.changed = await timed([
        ...PREVIOUS,
        "backup",
        "assets",
        "--json",
        "--config",
        prevConfig,
      ]);
      prev.grown = (await bytesUnder(prevRepo)) - pBefore;
    }
    rounds.push({
      rclone,
      first,
      second,
      changed,
      copied,
      changedBytes,
      grown,
      storedNew: changedResult.bytes_stored_new,
      prev,
    });
    console.log(
      `  round ${round}: rclone ${rclone.seconds.toFixed(1)} s (CPU ${
        rclone.cpuSeconds.toFixed(1)
      } s), cairn ${first.seconds.toFixed(1)} s (CPU ${first.cpuSeconds.toFixed(1)} s, RSS ${
        first.rssMiB.toFixed(0)
      } MiB) -> ${(first.seconds / rclone.seconds).toFixed(2)}; unchanged ${
        second.seconds.toFixed(2)
      } s -> ${(second.seconds / first.seconds).toFixed(2)}; 5% changed ${
        changed.seconds.toFixed(2)
      } s, repository +${(grown / 2 ** 20).toFixed(1)} MiB (plain overwrite: +0)`,
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
  const mid = rounds[Math.floor(rounds.length / 2)];
  if (PREVIOUS) {
    const p = (f: (r: typeof rounds[number]) => number) => median(rounds.map(f)).toFixed(2);
    console.log(
      `  against the previous release (${values.previous}), median ratios: first run ${
        p((r) => r.first.seconds / r.prev!.first.seconds)
      }, unchanged run ${p((r) => r.second.seconds / r.prev!.second.seconds)}, 5% changed run ${
        p((r) => r.changed.seconds / r.prev!.changed!.seconds)
      } (the previous release overwrites: its repository grew ${mid.prev!.grown} bytes)`,
    );
  }
  console.log(
    `  5% changed run (${changedIds.length} objects, ${
      (mid.changedBytes / 2 ** 20).toFixed(1)
    } MiB): median ${median(rounds.map((r) => r.changed.seconds)).toFixed(2)} s, ${
      median(rounds.map((r) => r.changed.seconds / r.first.seconds)).toFixed(2)
    } of the first; bytes_copied ${mid.changedBytes}, bytes_stored_new ${mid.storedNew}, ` +
      `repository grew ${mid.grown} bytes (kept versions) where a plain overwrite grows 0`,
  );
  console.log(
    `  cairn peak RSS: ${
      Math.max(...rounds.map((r) => Math.max(r.first.rssMiB, r.second.rssMiB, r.changed.rssMiB)))
        .toFixed(0)
    } MiB at most (target < 200 MB)`,
  );
} finally {
  await server.stop();
  await Deno.remove(dir, { recursive: true });
}
