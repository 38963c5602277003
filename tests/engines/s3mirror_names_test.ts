/**
 * Issue 17, section 3: every S3 key is stored under a name that cannot clash, the
 * listing keeps the original key, restore writes it back, and one object that cannot
 * be stored never blocks the others. Against the real S3 test server (s3rver).
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join, relative } from "node:path";
import {
  DeleteObjectCommand,
  GetObjectCommand,
  ListObjectsCommand,
  PutObjectCommand,
  S3Client,
} from "@aws-sdk/client-s3";
import type { Job } from "../../src/jobs/types.ts";
import type { Services } from "../../src/runtime/services.ts";
import { MIRROR_V1_OBJECTS } from "../fixtures/mirror_v1_objects.ts";
import { s3Repository, type S3Server, startS3 } from "../helpers/s3.ts";
import { type S3Proxy, startS3Proxy } from "../helpers/s3_proxy.ts";
import { readListing, run, testServices } from "../helpers/services.ts";
import { withTempDir } from "../helpers/tmp.ts";

function s3client(s3: S3Server): S3Client {
  return new S3Client({
    endpoint: s3.endpoint,
    region: "us-east-1",
    forcePathStyle: true,
    credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
  });
}

async function put(c: S3Client, bucket: string, key: string, body: string) {
  await c.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }));
}

async function text(c: S3Client, bucket: string, key: string): Promise<string> {
  const out = await c.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return await out.Body!.transformToString();
}

async function keys(c: S3Client, bucket: string, prefix = ""): Promise<string[]> {
  const out = await c.send(new ListObjectsCommand({ Bucket: bucket, Prefix: prefix }));
  return (out.Contents ?? []).map((o) => o.Key!).sort();
}

function services(
  dir: string,
  endpoint: string,
  client: Record<string, unknown>,
  repository?: Record<string, unknown>,
): Promise<Services> {
  return testServices(
    dir,
    {
      assets: {
        kind: "s3",
        endpoint,
        bucket: "mirror-src",
        access_key_id: "S3RVER",
        secret_access_key: "S3RVER",
        ...client,
      },
    },
    {},
    repository,
  );
}

/** Every file under `root`, as a path relative to it, with its content. */
async function tree(root: string, versions = false): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (dir: string) => {
    for await (const e of Deno.readDir(dir)) {
      const path = join(dir, e.name);
      // The version store (kept displaced copies) is not part of the newest state.
      if (!versions && path === join(root, "%versions")) continue;
      if (e.isDirectory) await walk(path);
      else out[relative(root, path)] = await Deno.readTextFile(path);
    }
  };
  await walk(root);
  return out;
}

async function sha256Hex(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Every directory under `root` (relative paths). */
async function dirs(root: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (dir: string) => {
    for await (const e of Deno.readDir(dir)) {
      if (!e.isDirectory) continue;
      out.push(relative(root, join(dir, e.name)));
      await walk(join(dir, e.name));
    }
  };
  await walk(root);
  return out.sort();
}

function listingOf(svc: Services, job: Job) {
  return readListing(svc, String(job.result!.key));
}

function completed(job: Job): Job {
  assert.equal(job.status, "completed", job.error ?? "");
  return job;
}

const verify = (svc: Services, key: unknown) =>
  run(svc, { kind: "verify", client_name: "assets", key: String(key) });
const restore = (svc: Services, key: unknown, target: string) =>
  run(svc, { kind: "restore", client_name: "assets", key: String(key), params: { target } });

const PHOTOS = { "photos": "the object photos", "photos/1.jpg": "the first photo" };

Deno.test("s3 mirror names: a key that is also a prefix, both orders in one run, stored, listed, verified and restored", async () => {
  const s3 = await startS3(["mirror-src", "restore-dst"]);
  const c = s3client(s3);
  try {
    for (const [k, v] of Object.entries(PHOTOS)) await put(c, "mirror-src", k, v);
    await put(c, "mirror-src", "photos/", "a folder marker with bytes");
    // One object at a time, in listing order: prefix "photos/" lists photos/1.jpg
    // before prefix "photos" adds photos, so the reverse order is forced too.
    for (const prefixes of [["photos"], ["photos/", "photos"]]) {
      await withTempDir(async (dir) => {
        const svc = await services(dir, s3.endpoint, { prefixes, concurrency: 1 });
        try {
          const b = completed(await run(svc, { kind: "backup", client_name: "assets" }));
          assert.equal(b.result!.objects_copied, 3);
          assert.equal(b.result!.objects_failed, 0);
          assert.deepEqual(await tree(join(dir, "repo", "mirrors/assets")), {
            "photos": "the object photos",
            "photos%2F/1.jpg": "the first photo",
            "photos%2F/%empty": "a folder marker with bytes",
          });
          const listing = await listingOf(svc, b);
          assert.deepEqual(
            listing.objects.map((o: { key: string; stored_key: string }) => [o.key, o.stored_key]),
            [
              ["photos", "mirrors/assets/photos"],
              ["photos/", "mirrors/assets/photos%2F/%empty"],
              ["photos/1.jpg", "mirrors/assets/photos%2F/1.jpg"],
            ],
          );
          completed(await verify(svc, b.result!.key));
          const prefix = `order-${prefixes.length}/`;
          completed(await restore(svc, b.result!.key, `s3://restore-dst/${prefix}`));
          assert.deepEqual(await keys(c, "restore-dst", prefix), [
            `${prefix}photos`,
            `${prefix}photos/`,
            `${prefix}photos/1.jpg`,
          ]);
          assert.equal(await text(c, "restore-dst", `${prefix}photos`), "the object photos");
          assert.equal(await text(c, "restore-dst", `${prefix}photos/1.jpg`), "the first photo");
        } finally {
          await svc.store.close();
        }
      });
    }
  } finally {
    await s3.stop();
  }
});

Deno.test("s3 mirror names: a key that is also a prefix, across runs in both orders, and removal with remove: true", async () => {
  const s3 = await startS3(["mirror-src"]);
  const c = s3client(s3);
  try {
    for (const [first, second] of [["photos", "photos/1.jpg"], ["photos/1.jpg", "photos"]]) {
      await withTempDir(async (dir) => {
        const svc = await services(dir, s3.endpoint, { prefixes: ["photos"], remove: true });
        try {
          for (const k of Object.keys(PHOTOS)) {
            await c.send(new DeleteObjectCommand({ Bucket: "mirror-src", Key: k }));
          }
          await put(c, "mirror-src", first, PHOTOS[first as keyof typeof PHOTOS]);
          completed(await run(svc, { kind: "backup", client_name: "assets" }));
          await put(c, "mirror-src", second, PHOTOS[second as keyof typeof PHOTOS]);
          const b = completed(await run(svc, { kind: "backup", client_name: "assets" }));
          assert.equal(b.result!.objects_copied, 1, `${second} after ${first}`);
          assert.equal(b.result!.objects_unchanged, 1);
          assert.deepEqual(await tree(join(dir, "repo", "mirrors/assets")), {
            "photos": "the object photos",
            "photos%2F/1.jpg": "the first photo",
          });
          completed(await verify(svc, b.result!.key));

          // The prefix's last object goes: its directory goes with it.
          await c.send(new DeleteObjectCommand({ Bucket: "mirror-src", Key: "photos/1.jpg" }));
          const gone = completed(await run(svc, { kind: "backup", client_name: "assets" }));
          assert.equal(gone.result!.objects_removed, 1);
          assert.deepEqual(await tree(join(dir, "repo", "mirrors/assets")), {
            "photos": "the object photos",
          });
          // Removed from the newest state, kept for the runs that list it.
          const kept = await sha256Hex("the first photo");
          assert.deepEqual(await tree(join(dir, "repo", "mirrors/assets"), true), {
            "photos": "the object photos",
            [`%versions/${kept.slice(0, 2)}/${kept}`]: "the first photo",
          });
          assert.deepEqual(await dirs(join(dir, "repo", "mirrors/assets")), [
            "%versions",
            `%versions/${kept.slice(0, 2)}`,
          ]);
        } finally {
          await svc.store.close();
        }
      });
    }
  } finally {
    await s3.stop();
  }
});

const xml = (s: string) =>
  s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");

/**
 * s3rver cannot hold some valid keys: its store path.join()s the key (so `a//b` is
 * `a/b` and `a/../b` is `b`) and adds 15 bytes to each file name (so no segment over
 * 240 bytes). This proxy shows each such key (`shown`) in listings and answers
 * requests for it with the object s3rver holds under `held`, in every bucket. It
 * reads the key from the request path as it arrived (before any URL parser resolves
 * dot segments), records the keys written (PUT), and refuses reads of `refuse` as a
 * server refuses a key it cannot serve.
 */
function aliasingProxy(
  s3: S3Server,
  aliases: Record<string, string>, // shown -> held
  refuse: string[] = [],
): Promise<S3Proxy & { written: string[] }> {
  const written: string[] = [];
  const held = new Map(Object.entries(aliases));
  return startS3Proxy(s3.endpoint, async (request, url, forward) => {
    const rawPath = request.url.replace(/^https?:\/\/[^/]+/, "").replace(/\?.*$/, "");
    const [, bucket, ...rest] = rawPath.split("/");
    if (rest.length === 0) {
      if (request.method !== "GET") return null;
      const response = await forward();
      let body = await response.text();
      for (const [shown, alias] of held) {
        body = body.replaceAll(`<Key>${xml(alias)}</Key>`, `<Key>${xml(shown)}</Key>`);
      }
      const headers = new Headers(response.headers);
      headers.delete("content-length");
      return new Response(body, { status: response.status, headers });
    }
    const key = decodeURIComponent(rest.join("/"));
    if (request.method === "PUT") written.push(key);
    if (refuse.includes(key)) {
      return new Response(
        "<Error><Code>InvalidObjectName</Code><Message>Object name contains unsupported characters.</Message></Error>",
        { status: 400 },
      );
    }
    const alias = held.get(key);
    if (alias === undefined) return null;
    const path = `/${bucket}/${alias.split("/").map(encodeURIComponent).join("/")}`;
    return await forward(path + url.search);
  }).then((proxy) => Object.assign(proxy, { written }));
}

Deno.test("s3 mirror names: a//b, a leading /, segments over 255 bytes, . and .. segments; a key the source refuses is named and the rest go on", async () => {
  const s3 = await startS3(["mirror-src", "restore-dst"]);
  const c = s3client(s3);
  const long = `long/${"n".repeat(300)}.txt`;
  const aliases: Record<string, string> = {
    "a//b": "held/double-slash",
    "/lead": "held/leading-slash",
    "trail//": "held/trailing-slashes",
    [long]: "held/long-segment",
    "dots/./x": "held/dot",
    "dots/../y": "held/dot-dot",
    "..": "held/dot-dot-alone",
  };
  const proxy = await aliasingProxy(s3, aliases, ["refused by the source"]);
  try {
    for (const [shown, alias] of Object.entries(aliases)) {
      await put(c, "mirror-src", alias, `content of ${shown}`);
    }
    await put(c, "mirror-src", "plain.txt", "content of plain.txt");
    await put(c, "mirror-src", "refused by the source", "never read");
    await withTempDir(async (dir) => {
      const svc = await services(dir, proxy.endpoint, { prefixes: [] });
      try {
        const expected = [
          ["..", "mirrors/assets/%2E%2E"],
          ["/lead", "mirrors/assets/%2F/lead"],
          ["a//b", "mirrors/assets/a%2F/%2F/b"],
          ["dots/../y", "mirrors/assets/dots%2F/..%2F/y"],
          ["dots/./x", "mirrors/assets/dots%2F/.%2F/x"],
          [long, `mirrors/assets/long%2F/${"n".repeat(240)}%+/${"n".repeat(60)}.txt`],
          ["plain.txt", "mirrors/assets/plain.txt"],
          ["trail//", "mirrors/assets/trail%2F/%2F/%empty"],
        ];
        let last!: Job;
        for (let runNo = 1; runNo <= 2; runNo++) {
          last = completed(await run(svc, { kind: "backup", client_name: "assets" }));
          assert.equal(last.result!.objects_copied, runNo === 1 ? 8 : 0);
          assert.equal(last.result!.objects_failed, 1, `run ${runNo}`);
          assert.deepEqual(last.result!.failed, [{
            key: "refused by the source",
            reason:
              "the source refuses the key (InvalidObjectName): Object name contains unsupported characters.",
          }]);
          const listing = await listingOf(svc, last);
          assert.deepEqual(listing.refused, last.result!.failed);
          assert.deepEqual(
            listing.objects.map((o: { key: string; stored_key: string }) => [o.key, o.stored_key]),
            expected,
          );
        }
        const files = await tree(join(dir, "repo", "mirrors/assets"));
        for (const [key, stored] of expected) {
          assert.equal(files[stored.slice("mirrors/assets/".length)], `content of ${key}`, key);
        }
        assert.equal(Object.keys(files).length, 8);

        completed(await verify(svc, last.result!.key));
        proxy.written.length = 0;
        const r = completed(await restore(svc, last.result!.key, "s3://restore-dst"));
        assert.equal(r.result!.objects_restored, 8);
        assert.deepEqual(proxy.written.sort(), expected.map(([k]) => k).sort());
        for (const [shown, alias] of Object.entries(aliases)) {
          assert.equal(await text(c, "restore-dst", alias), `content of ${shown}`, shown);
        }
      } finally {
        await svc.store.close();
      }
    });
  } finally {
    await proxy.stop();
    await s3.stop();
  }
});

Deno.test("s3 mirror names: a key whose path would pass PATH_MAX is stored by its sha256, listed and restored by its key", async () => {
  const s3 = await startS3(["mirror-src", "restore-dst"]);
  const c = s3client(s3);
  const deep = "%/".repeat(500) + "x"; // 1,001 bytes; 3,501 once escaped
  try {
    await put(c, "mirror-src", deep, "deep object");
    await withTempDir(async (dir) => {
      const svc = await services(dir, s3.endpoint, { prefixes: [] });
      try {
        const b = completed(await run(svc, { kind: "backup", client_name: "assets" }));
        const sha = createHash("sha256").update(deep).digest("hex");
        assert.deepEqual(await tree(join(dir, "repo", "mirrors/assets")), {
          [`%long-keys/${sha}`]: "deep object",
        });
        const listing = await listingOf(svc, b);
        assert.equal(listing.objects[0].key, deep);
        completed(await verify(svc, b.result!.key));
        completed(await restore(svc, b.result!.key, "s3://restore-dst"));
        assert.equal(await text(c, "restore-dst", deep), "deep object");
      } finally {
        await svc.store.close();
      }
    });
  } finally {
    await s3.stop();
  }
});

Deno.test("s3 mirror names: an object the repository cannot hold is named in the result, and the others and later runs go on", async () => {
  const s3 = await startS3(["mirror-src"]);
  const c = s3client(s3);
  const deep = "a/".repeat(500) + "x"; // 2,501 bytes once escaped: within the budget
  try {
    await put(c, "mirror-src", deep, "deep object");
    for (let i = 0; i < 5; i++) await put(c, "mirror-src", `ok/${i}.txt`, `object ${i}`);
    await withTempDir(async (dir) => {
      // A repository whose own path is 1,700 bytes long: the deep key's path passes
      // PATH_MAX (4,096), the others' do not.
      const repo = join(dir, ...Array.from({ length: 7 }, (_, i) => `${i}`.repeat(240)));
      const svc = await services(dir, s3.endpoint, { prefixes: [] }, { kind: "fs", path: repo });
      try {
        for (let runNo = 1; runNo <= 2; runNo++) {
          const b = completed(await run(svc, { kind: "backup", client_name: "assets" }));
          assert.equal(b.result!.objects_copied, runNo === 1 ? 5 : 0);
          assert.equal(b.result!.objects_failed, 1);
          const [failed] = b.result!.failed as Array<{ key: string; reason: string }>;
          assert.equal(failed.key, deep);
          assert.match(
            failed.reason,
            /the repository cannot hold it: .*(name too long|os error 36)/i,
          );
          const listing = await readListing(svc, String(b.result!.key));
          assert.deepEqual(listing.refused, [failed]);
          assert.equal(listing.objects.length, 5);
          completed(await verify(svc, b.result!.key));
        }
      } finally {
        await svc.store.close();
      }
    });
  } finally {
    await s3.stop();
  }
});

Deno.test("s3 mirror names: a repository mirrored by cairn 0.1 stays verifiable and restorable, and its first run moves every object into the new names", async () => {
  const s3 = await startS3(["mirror-src", "restore-dst"]);
  const c = s3client(s3);
  const fixture = new URL("../fixtures/mirror_v1/repo", import.meta.url).pathname;
  const oldListing = "backups/assets/20261130T095118089Z-manual.mirror.json";
  try {
    for (const [k, v] of Object.entries(MIRROR_V1_OBJECTS)) await put(c, "mirror-src", k, v);
    await withTempDir(async (dir) => {
      const cp = await new Deno.Command("cp", { args: ["-a", fixture, join(dir, "repo")] })
        .output();
      assert.ok(cp.success);
      const svc = await services(dir, s3.endpoint, { prefixes: [] });
      try {
        completed(await verify(svc, oldListing));
        completed(await restore(svc, oldListing, "s3://restore-dst/before/"));
        for (const [k, v] of Object.entries(MIRROR_V1_OBJECTS)) {
          assert.equal(await text(c, "restore-dst", `before/${k}`), v, k);
        }

        // The key that 0.1 could never store next to photos/1.jpg.
        await put(c, "mirror-src", "photos", "the object photos");
        const b = completed(await run(svc, { kind: "backup", client_name: "assets" }));
        assert.equal(b.result!.objects_moved, 6, "all but top.txt changed name");
        assert.equal(b.result!.objects_copied, 1, "only photos is read from the source");
        assert.equal(b.result!.objects_unchanged, 7);
        const n210 = "n".repeat(210);
        assert.deepEqual(await tree(join(dir, "repo", "mirrors/assets")), {
          "top.txt": "top level object",
          "briefs%2F/a.txt": "alpha brief",
          "briefs%2F/sub%2F/b.txt": "bravo brief, one level down",
          "photos": "the object photos",
          "photos%2F/1.jpg": "not really a jpeg",
          "folder%2F/%empty": "",
          [`long%2F/${n210}.txt`]: "a segment the old scheme shortened (over 200 bytes)",
          "~tilde.txt": "a name the old scheme rewrote",
        }, "every object once, under its new name; nothing left under an old one");
        assert.deepEqual(await dirs(join(dir, "repo", "mirrors/assets")), [
          "briefs%2F",
          "briefs%2F/sub%2F",
          "folder%2F",
          "long%2F",
          "photos%2F",
        ]);

        // The old listing names the old places: it still verifies and restores.
        completed(await verify(svc, oldListing));
        completed(await restore(svc, oldListing, "s3://restore-dst/after/"));
        for (const [k, v] of Object.entries(MIRROR_V1_OBJECTS)) {
          assert.equal(await text(c, "restore-dst", `after/${k}`), v, k);
        }
        completed(await verify(svc, b.result!.key));
        const again = completed(await run(svc, { kind: "backup", client_name: "assets" }));
        assert.equal(again.result!.objects_moved, 0);
        assert.equal(again.result!.objects_copied, 0);
      } finally {
        await svc.store.close();
      }
    });
  } finally {
    await s3.stop();
  }
});

Deno.test("s3 mirror names: an S3 repository keeps keys as they are, and puts the ones no request can address under mirrors-escaped/", async () => {
  const s3 = await startS3(["mirror-src", "repo-bucket", "restore-dst"]);
  const c = s3client(s3);
  const proxy = await aliasingProxy(s3, { "a//b": "held/double-slash" });
  try {
    for (const [k, v] of Object.entries(PHOTOS)) await put(c, "mirror-src", k, v);
    await put(c, "mirror-src", "held/double-slash", "content of a//b");
    await withTempDir(async (dir) => {
      const svc = await services(
        dir,
        proxy.endpoint,
        { prefixes: [] },
        s3Repository(s3, "repo-bucket", "cairn"),
      );
      try {
        const b = completed(await run(svc, { kind: "backup", client_name: "assets" }));
        assert.equal(b.result!.objects_copied, 3);
        assert.deepEqual(await keys(c, "repo-bucket", "cairn/mirror"), [
          "cairn/mirrors-escaped/assets/a%2F/%2F/b",
          "cairn/mirrors/assets/photos",
          "cairn/mirrors/assets/photos/1.jpg",
        ]);
        completed(await verify(svc, b.result!.key));
        proxy.written.length = 0;
        const r = completed(await restore(svc, b.result!.key, "s3://restore-dst"));
        assert.equal(r.result!.objects_restored, 3);
        assert.deepEqual(proxy.written.sort(), ["a//b", "photos", "photos/1.jpg"]);
        assert.equal(await text(c, "restore-dst", "photos"), "the object photos");
        assert.equal(await text(c, "restore-dst", "held/double-slash"), "content of a//b");
      } finally {
        await svc.store.close();
      }
    });
  } finally {
    await proxy.stop();
    await s3.stop();
  }
});
