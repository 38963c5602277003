/**
 * cairn's directory backup against `tar -czf` of the same tree, in one run:
 * 20,000 small files plus one 1 GiB file. Prints cairn time / tar time and
 * cairn's peak RSS; then the peak RSS again with a 5 GiB file (memory must not
 * grow with size).
 *
 *   deno task bench:directory [--small 20000 --big-mib 1024 --huge-mib 5120 --rounds 1]
 */
import { join } from "node:path";
import { parseArgs } from "node:util";
import { CAIRN, timed, writeConfig } from "./common.ts";

const { values } = parseArgs({
  options: {
    small: { type: "string", default: "20000" },
    "big-mib": { type: "string", default: "1024" },
    "huge-mib": { type: "string", default: "5120" },
    rounds: { type: "string", default: "1" },
  },
});
const root = await Deno.makeTempDir({ prefix: "cairn-bench-dir-" });
const tree = join(root, "tree");

/** Text-like data with a random quarter: compressible, but not trivially. */
function block(): Uint8Array {
  const b = new Uint8Array(1 << 20);
  const words = new TextEncoder().encode(
    "backup restore verify prune lease worker manifest sha256 ",
  );
  for (let i = 0; i < b.length; i++) b[i] = words[i % words.length];
  for (let i = 0; i < b.length; i += 4096) crypto.getRandomValues(b.subarray(i, i + 1024));
  return b;
}

async function writeBig(path: string, mib: number): Promise<void> {
  const f = await Deno.open(path, { write: true, create: true, truncate: true });
  for (let i = 0; i < mib; i++) await f.write(block());
  f.close();
}

async function makeTree(): Promise<void> {
  const n = Number(values.small);
  const text = new TextEncoder().encode("lorem ipsum dolor sit amet ".repeat(400));
  for (let i = 0; i < n; i++) {
    const dir = join(tree, `d${i % 200}`);
    if (i < 200) await Deno.mkdir(dir, { recursive: true });
    await Deno.writeFile(join(dir, `f${i}.txt`), text.subarray(0, 100 + ((i * 7919) % 8000)));
  }
  await writeBig(join(tree, "big.bin"), Number(values["big-mib"]));
}

async function cairnBackup(tag: string): Promise<{ seconds: number; rssMiB: number }> {
  const dir = join(root, `cairn-${tag}`);
  await Deno.mkdir(dir, { recursive: true });
  const config = await writeConfig(dir, "cairn", {
    clients: { tree: { kind: "directory", path: tree } },
  });
  // The same V8 flag the compile and start tasks bake in (a small young generation
  // frees streamed buffers sooner).
  const r = await timed([...CAIRN, "backup", "tree", "--config", config]);
  await Deno.remove(dir, { recursive: true });
  return r;
}

async function tarBackup(): Promise<{ seconds: number; rssMiB: number }> {
  const out = join(root, "tar.tar.gz");
  const r = await timed(["tar", "-czf", out, "-C", tree, "."]);
  await Deno.remove(out);
  return r;
}

try {
  console.log(`directory backup: ${values.small} small files + one ${values["big-mib"]} MiB file`);
  await makeTree();
  await new Deno.Command("sh", { args: ["-c", `cat ${tree}/big.bin > /dev/null`] }).output(); // warm the page cache for both
  const rounds = Number(values.rounds);
  let bestCairn = Infinity, bestTar = Infinity, rss = 0;
  for (let i = 0; i < rounds; i++) {
    const t = await tarBackup();
    const c = await cairnBackup(`r${i}`);
    bestTar = Math.min(bestTar, t.seconds);
    bestCairn = Math.min(bestCairn, c.seconds);
    rss = Math.max(rss, c.rssMiB);
    console.log(
      `  round ${i + 1}: tar -czf ${t.seconds.toFixed(1)} s, cairn ${c.seconds.toFixed(1)} s`,
    );
  }
  console.log(`  cairn / tar time ratio: ${(bestCairn / bestTar).toFixed(2)} (target <= 1.30)`);
  console.log(`  cairn peak RSS: ${rss.toFixed(0)} MiB (target < 150)`);

  const hugeMiB = Number(values["huge-mib"]);
  if (hugeMiB > 0) {
    await Deno.remove(join(tree, "big.bin"));
    await writeBig(join(tree, "big.bin"), hugeMiB);
    const c = await cairnBackup("huge");
    console.log(
      `  with a ${hugeMiB} MiB file: cairn ${c.seconds.toFixed(1)} s, peak RSS ${
        c.rssMiB.toFixed(0)
      } MiB (target < 150, flat in size: ${(c.rssMiB / rss).toFixed(2)}x the 1 GiB run)`,
    );
  }
} finally {
  await Deno.remove(root, { recursive: true });
}
