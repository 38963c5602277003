/**
 * One contract every engine kind meets, after the store and repository suites: a
 * kind gives an adapter (how to fill its source, make a restore target, compare and
 * inspect), and engineConformance() registers the same tests for it.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { generateIdentity, identityToRecipient } from "age-encryption";
import type { Services } from "../../src/runtime/services.ts";
import { run, testServices } from "../helpers/services.ts";
import { withTempDir } from "../helpers/tmp.ts";

export interface KindAdapter {
  kind: string;
  /**
   * Fills the source in `dir`; returns the client config and a cleanup. `large`: about
   * 40 MiB of incompressible data, so that a backup at gzip -9 runs for seconds.
   */
  source(
    dir: string,
    large?: boolean,
  ): Promise<{ client: Record<string, unknown>; close: () => Promise<void> }>;
  /** A fresh, empty restore target (the restore's `target` param) and its cleanup. */
  target(dir: string, n: number): Promise<{ target: string; close: () => Promise<void> }>;
  /** A digest of the data at a target (or of the source, with `null`): equal means equal. */
  digest(dir: string, target: string | null): Promise<string>;
  /** Whether a target holds nothing (nothing was written). */
  isEmpty(dir: string, target: string): Promise<boolean>;
  /**
   * For a kind that stores bytes beside its artifact (the s3 mirror's objects): fails
   * unless they are stored as the combination says (encrypted or not).
   */
  checkStored?(dir: string, encrypted: boolean): Promise<void>;
}

const COMBINATIONS: Array<{ compression: string; encrypted: boolean; suffix: RegExp }> = [
  { compression: "none", encrypted: false, suffix: /\.(dump|rdb|sqlite|tar|mirror\.json)$/ },
  { compression: "zstd", encrypted: false, suffix: /\.zst$/ },
  { compression: "gzip", encrypted: false, suffix: /\.gz$/ },
  {
    compression: "none",
    encrypted: true,
    suffix: /\.(dump|rdb|sqlite|tar|mirror\.json)\.age$/,
  },
  { compression: "zstd", encrypted: true, suffix: /\.zst\.age$/ },
  { compression: "gzip", encrypted: true, suffix: /\.gz\.age$/ },
];

async function withKind(
  a: KindAdapter,
  options: { compression: string; encrypted: boolean; level?: number; large?: boolean },
  fn: (ctx: { dir: string; services: Services }) => Promise<void>,
): Promise<void> {
  await withTempDir(async (dir) => {
    const identity = await generateIdentity();
    await Deno.writeTextFile(join(dir, "key.txt"), identity + "\n");
    const src = await a.source(dir, options.large);
    const services = await testServices(dir, { c: src.client }, {}, {
      kind: "fs",
      path: join(dir, "repo"),
      compression: options.compression,
      ...(options.level ? { compression_level: options.level } : {}),
      ...(options.encrypted
        ? {
          encryption: {
            recipients: [await identityToRecipient(identity)],
            identity_file: join(dir, "key.txt"),
          },
        }
        : {}),
    });
    try {
      await fn({ dir, services });
    } finally {
      await services.store.close();
      await src.close();
    }
  });
}

async function backup(services: Services): Promise<string> {
  const b = await run(services, { kind: "backup", client_name: "c" });
  assert.equal(b.status, "completed", b.error ?? "");
  return String(b.result!.key);
}

function restore(services: Services, key: string, target: string, replace = false) {
  return run(services, {
    kind: "restore",
    client_name: "c",
    key,
    params: { target, ...(replace ? { replace: true, flush: true } : {}) },
  });
}

/** Registers the conformance tests for one kind. */
export function engineConformance(a: KindAdapter): void {
  const opts = { sanitizeResources: false, sanitizeOps: false };
  for (const combo of COMBINATIONS) {
    const name = `${combo.compression}${combo.encrypted ? " + age" : ""}`;
    Deno.test({
      ...opts,
      name: `conformance ${a.kind} (${name}): backup -> verify -> restore gives back equal data`,
      fn: () =>
        withKind(a, combo, async ({ dir, services }) => {
          const key = await backup(services);
          assert.match(key, combo.suffix);
          await a.checkStored?.(dir, combo.encrypted);
          const v = await run(services, { kind: "verify", client_name: "c", key });
          assert.equal(v.status, "completed", v.error ?? "");
          assert.equal(v.result!.plain_sha256_ok, true);
          const t = await a.target(dir, 1);
          try {
            const r = await restore(services, key, t.target);
            assert.equal(r.status, "completed", r.error ?? "");
            assert.equal(await a.digest(dir, t.target), await a.digest(dir, null));
          } finally {
            await t.close();
          }
        }),
    });
  }
  // Large: about 40 MiB stored, decoded in a worker in one read (src/pipeline/offthread.ts);
  // small: decoded on the main thread after the stored-bytes check.
  for (const large of [false, true]) {
    Deno.test({
      ...opts,
      name: `conformance ${a.kind}${
        large ? " (large, decoded in a worker)" : ""
      }: one flipped stored byte fails verify and restore before anything is written`,
      fn: () =>
        withKind(a, { compression: "zstd", encrypted: true, large }, async ({ dir, services }) => {
          const key = await backup(services);
          const path = join(dir, "repo", key);
          const bytes = await Deno.readFile(path);
          bytes[Math.floor(bytes.length / 2)] ^= 0x04;
          await Deno.writeFile(path, bytes);
          const v = await run(services, { kind: "verify", client_name: "c", key });
          assert.equal(v.status, "failed");
          assert.match(v.error!, /is damaged: sha256/);
          const t = await a.target(dir, 2);
          try {
            const r = await restore(services, key, t.target);
            assert.equal(r.status, "failed");
            assert.match(r.error!, /is damaged: sha256/);
            assert.ok(await a.isEmpty(dir, t.target), "nothing was written to the target");
          } finally {
            await t.close();
          }
        }),
    });
  }
  Deno.test({
    ...opts,
    name:
      `conformance ${a.kind} (large, zstd, decoded in a worker): backup -> verify -> restore gives back equal data`,
    fn: () =>
      withKind(
        a,
        { compression: "zstd", encrypted: false, large: true },
        async ({ dir, services }) => {
          const key = await backup(services);
          const v = await run(services, { kind: "verify", client_name: "c", key });
          assert.equal(v.status, "completed", v.error ?? "");
          assert.equal(v.result!.plain_sha256_ok, true);
          const t = await a.target(dir, 4);
          try {
            const r = await restore(services, key, t.target);
            assert.equal(r.status, "completed", r.error ?? "");
            assert.equal(await a.digest(dir, t.target), await a.digest(dir, null));
          } finally {
            await t.close();
          }
        },
      ),
  });
  Deno.test({
    ...opts,
    name: `conformance ${a.kind}: a non-empty target needs replace`,
    fn: () =>
      withKind(a, { compression: "zstd", encrypted: false }, async ({ dir, services }) => {
        const key = await backup(services);
        const t = await a.target(dir, 3);
        try {
          assert.equal((await restore(services, key, t.target)).status, "completed");
          const again = await restore(services, key, t.target);
          assert.equal(again.status, "failed");
          assert.match(again.error!, /not empty/);
          const replaced = await restore(services, key, t.target, true);
          assert.equal(replaced.status, "completed", replaced.error ?? "");
          assert.equal(await a.digest(dir, t.target), await a.digest(dir, null));
        } finally {
          await t.close();
        }
      }),
  });
  Deno.test({
    ...opts,
    name: `conformance ${a.kind}: a cancelled backup leaves no artifact, manifest or partial file`,
    fn: () =>
      withKind(
        a,
        { compression: "gzip", level: 9, encrypted: true, large: true },
        async ({ dir, services }) => {
          const controller = new AbortController();
          const running = run(services, { kind: "backup", client_name: "c" }, controller.signal);
          const tmp = join(dir, "repo", ".tmp");
          const partial = () => {
            try {
              return [...Deno.readDirSync(tmp)].length > 0;
            } catch {
              return false;
            }
          };
          // Cancelled while bytes flow into the repository.
          for (let i = 0; i < 3000 && !partial(); i++) {
            await new Promise((r) => setTimeout(r, 2));
          }
          assert.ok(partial(), "the backup was storing");
          controller.abort();
          const job = await running;
          assert.equal(job.status, "cancelled", job.error ?? "");
          assert.deepEqual([...Deno.readDirSync(tmp)], [], "partial file removed");
          const left: string[] = [];
          for await (const o of services.repository.list("backups/")) left.push(o.key);
          assert.deepEqual(left, [], "no artifact and no manifest");
        },
      ),
  });
}
