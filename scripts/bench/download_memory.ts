/**
 * Downloads a large artifact through GET /admin/backups/{key}/download and reports
 * the daemon's peak RSS (VmHWM) before and after, against curl writing the same
 * bytes from the repository file directly. Memory must not grow with the artifact.
 *
 *   deno task bench:download [--mib 1024]
 */
import { join } from "node:path";
import { parseArgs } from "node:util";
import { CAIRN, writeConfig } from "./common.ts";

const { values } = parseArgs({ options: { mib: { type: "string", default: "1024" } } });
const KEY = "bench-key";
const dir = await Deno.makeTempDir({ prefix: "cairn-bench-dl-" });
const port = 20000 + Math.floor(Math.random() * 20000);

function hwmMiB(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  return Number(/VmHWM:\s+(\d+) kB/.exec(status)![1]) / 1024;
}

try {
  const src = join(dir, "src");
  await Deno.mkdir(src);
  const f = await Deno.open(join(src, "big.bin"), { write: true, create: true });
  const chunk = new Uint8Array(1 << 20);
  for (let i = 0; i < Number(values.mib); i++) {
    for (let o = 0; o < chunk.length; o += 65536) {
      crypto.getRandomValues(chunk.subarray(o, o + 65536));
    }
    await f.write(chunk);
  }
  f.close();
  const config = await writeConfig(dir, "cairn", {
    server: { listen: `127.0.0.1:${port}`, admin_key: KEY },
    clients: { big: { kind: "directory", path: src } },
  });
  const backup = await new Deno.Command(Deno.execPath(), {
    args: [...CAIRN.slice(1), "backup", "big", "--json", "--config", config],
    stdout: "piped",
  }).output();
  const job = JSON.parse(new TextDecoder().decode(backup.stdout));
  const key: string = job.result.key;
  const sizeMiB = job.result.size_bytes / 1048576;

  const daemon = new Deno.Command(Deno.execPath(), {
    args: [...CAIRN.slice(1), "daemon", "--config", config],
    stdout: "null",
    stderr: "null",
  }).spawn();
  try {
    for (;;) {
      try {
        if (
          (await fetch(`http://127.0.0.1:${port}/admin/health`).then((r) =>
            r.arrayBuffer().then(() => r.ok)
          ))
        ) break;
      } catch { /* starting */ }
      await new Promise((r) => setTimeout(r, 20));
    }
    const idle = hwmMiB(daemon.pid);
    const url = `http://127.0.0.1:${port}/admin/backups/${encodeURIComponent(key)}/download`;
    const t = performance.now();
    const curl = await new Deno.Command("curl", {
      args: [
        "-sS",
        "-o",
        "/dev/null",
        "-w",
        "%{size_download}",
        "-H",
        `authorization: Bearer ${KEY}`,
        url,
      ],
      stdout: "piped",
    }).output();
    const seconds = (performance.now() - t) / 1000;
    const bytes = Number(new TextDecoder().decode(curl.stdout));
    const t2 = performance.now();
    await new Deno.Command("sh", {
      args: ["-c", `cat '${join(dir, "cairn-repo", key)}' > /dev/null`],
    })
      .output();
    const catSeconds = (performance.now() - t2) / 1000;
    const peak = hwmMiB(daemon.pid);
    console.log(
      `download of a ${sizeMiB.toFixed(0)} MiB artifact: ${
        bytes === job.result.size_bytes ? "all bytes" : `SHORT (${bytes})`
      } in ${seconds.toFixed(1)} s (${(sizeMiB / seconds).toFixed(0)} MiB/s; cat of the file: ${
        catSeconds.toFixed(1)
      } s)`,
    );
    console.log(
      `  daemon peak RSS: ${idle.toFixed(0)} MiB idle, ${
        peak.toFixed(0)
      } MiB after the download (+${(peak - idle).toFixed(0)} MiB for ${
        sizeMiB.toFixed(0)
      } MiB streamed)`,
    );
  } finally {
    daemon.kill("SIGTERM");
    await daemon.status;
  }
} finally {
  await Deno.remove(dir, { recursive: true });
}
