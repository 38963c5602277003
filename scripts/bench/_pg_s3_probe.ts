import { CAIRN, startS3Server, timed } from "./common.ts";
const dir = await Deno.makeTempDir();
const s3 = await startS3Server(dir + "/s3", ["probe-repo"]);
await Deno.writeTextFile(
  dir + "/c.json",
  JSON.stringify({
    store: { kind: "sqlite", path: dir + "/s.db" },
    repository: {
      kind: "s3",
      endpoint: s3.endpoint,
      bucket: "probe-repo",
      access_key_id: "S3RVER",
      secret_access_key: "S3RVER",
    },
    backup: { worker_max_attempts: 1 },
    clients: {
      bench: {
        kind: "postgres",
        url: `postgres://postgres@127.0.0.1:5432/${Deno.args[0] ?? "cb"}`,
      },
    },
  }),
);
for (let i = 0; i < 2; i++) {
  const r = await timed([...CAIRN, "backup", "bench", "--json", "--config", dir + "/c.json"]);
  console.log(r.seconds.toFixed(2), "s", r.rssMiB.toFixed(0), "MiB");
}
await s3.stop();
await Deno.remove(dir, { recursive: true });
