import assert from "node:assert/strict";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { generateIdentity, identityToRecipient } from "age-encryption";
import { listBackups, readManifest } from "../../src/repository/manifest.ts";
import { run, testServices } from "../helpers/services.ts";
import { cairn, withTempDir, writeConfig } from "../helpers/tmp.ts";
import { createApp } from "../../src/api/app.ts";

function seed(path: string, rows: number): void {
  const db = new DatabaseSync(path);
  db.exec("CREATE TABLE IF NOT EXISTS secret_table (id INTEGER PRIMARY KEY, v TEXT)");
  for (let i = 0; i < rows; i++) db.prepare("INSERT INTO secret_table (v) VALUES (?)").run("x");
  db.close();
}

function count(path: string): number {
  const db = new DatabaseSync(path, { readOnly: true });
  const n = (db.prepare("SELECT count(*) AS n FROM secret_table").get() as { n: number }).n;
  db.close();
  return n;
}

async function key(): Promise<{ identity: string; recipient: string }> {
  const identity = await generateIdentity();
  return { identity, recipient: await identityToRecipient(identity) };
}

Deno.test("a write-only host backs up, checks stored bytes and lists; restore fails up front naming the identity file", async () => {
  await withTempDir(async (dir) => {
    const live = join(dir, "live.db");
    seed(live, 120);
    const a = await key();
    const repo = {
      kind: "fs",
      path: join(dir, "repo"),
      encryption: { recipients: [a.recipient] },
    };
    const services = await testServices(
      dir,
      { lite: { kind: "sqlite", path: live } },
      { worker_max_attempts: 3 },
      repo,
    );
    try {
      const b = await run(services, { kind: "backup", client_name: "lite" });
      assert.equal(b.status, "completed", b.error ?? "");
      const k = String(b.result!.key);
      assert.match(k, /\.sqlite\.zst\.age$/);
      const m = await readManifest(services.repository, k);
      assert.deepEqual(m.transforms, [
        { name: "zstd", level: 3 },
        { name: "age", recipients: [a.recipient] },
      ]);
      assert.deepEqual(m.facts, {}, "facts are sealed");
      assert.ok(m.sealed_facts && !m.sealed_facts.includes("secret_table"));
      const raw = await Deno.readTextFile(join(dir, "repo", k + ".manifest.json"));
      assert.ok(!raw.includes("secret_table"), "no table name readable in the manifest");
      const stored = await Deno.readFile(join(dir, "repo", k));
      assert.equal(
        new TextDecoder().decode(stored.subarray(0, 21)),
        "age-encryption.org/v1",
      );

      const v = await run(services, { kind: "verify", client_name: "lite", key: k });
      assert.equal(v.status, "completed", v.error ?? "");
      assert.equal(v.result!.sha256_ok, true);
      assert.match(
        String((v.result!.checks as { content: string }).content),
        /not checked: .*no age identity/,
      );
      assert.equal((await listBackups(services.repository)).backups.length, 1);

      // A rehearsal (a verify schedule's job names no key) promises the content
      // restores: here it fails up front instead of passing on the stored bytes alone.
      const rehearsal = await run(services, { kind: "verify", client_name: "lite", key: null });
      assert.equal(rehearsal.status, "failed");
      assert.equal(rehearsal.key, k, "the newest backup was the one rehearsed");
      assert.match(
        rehearsal.error!,
        /encrypted \(age, for age1[a-z0-9]+\): restoring or rehearsing it needs the matching age identity/,
      );
      assert.equal(rehearsal.attempts, 1, "no retry: another attempt cannot find a key");

      const r = await run(services, {
        kind: "restore",
        client_name: "lite",
        key: k,
        params: { target: join(dir, "out.db") },
      });
      assert.equal(r.status, "failed");
      assert.match(
        r.error!,
        /encrypted \(age, for age1[a-z0-9]+\): restoring or rehearsing it needs the matching age identity, looked for in repository\.encryption\.identity_file \(not set on this host\)/,
      );
      assert.equal(r.attempts, 1, "no retry: another attempt cannot find a key");
      await assert.rejects(Deno.stat(join(dir, "out.db")));

      // One flipped stored byte: the write-only check finds it.
      stored[stored.length >> 1] ^= 1;
      await Deno.writeFile(join(dir, "repo", k), stored);
      const bad = await run(services, { kind: "verify", client_name: "lite", key: k });
      assert.equal(bad.status, "failed");
      assert.match(bad.error!, /is damaged: sha256/);
    } finally {
      await services.store.close();
    }
  });
});

Deno.test("key rotation: each backup opens with any identity matching its recorded recipient", async () => {
  await withTempDir(async (dir) => {
    const live = join(dir, "live.db");
    seed(live, 10);
    const a = await key();
    const b = await key();
    const both = join(dir, "both.txt");
    await Deno.writeTextFile(both, `# old\n${a.identity}\n# new\n${b.identity}\n`);
    const onlyB = join(dir, "b.txt");
    await Deno.writeTextFile(onlyB, `${b.identity}\n`);
    const repoWith = (recipient: string, identity_file: string) => ({
      kind: "fs",
      path: join(dir, "repo"),
      encryption: { recipients: [recipient], identity_file },
    });
    const clients = { lite: { kind: "sqlite", path: live } };
    let s = await testServices(dir, clients, {}, repoWith(a.recipient, both));
    const old = String((await run(s, { kind: "backup", client_name: "lite" })).result!.key);
    await s.store.close();
    seed(live, 5);
    s = await testServices(dir, clients, {}, repoWith(b.recipient, both));
    try {
      const fresh = String((await run(s, { kind: "backup", client_name: "lite" })).result!.key);
      assert.deepEqual((await readManifest(s.repository, fresh)).transforms?.[1], {
        name: "age",
        recipients: [b.recipient],
      });
      for (const [k, rows] of [[old, 10], [fresh, 15]] as const) {
        const target = join(dir, `out-${rows}.db`);
        const r = await run(s, {
          kind: "restore",
          client_name: "lite",
          key: k,
          params: { target },
        });
        assert.equal(r.status, "completed", r.error ?? "");
        assert.equal(count(target), rows);
        const v = await run(s, { kind: "verify", client_name: "lite", key: k });
        assert.equal(v.status, "completed", v.error ?? "");
        assert.equal(v.result!.plain_sha256_ok, true);
        assert.deepEqual((v.result!.checks as { tables: unknown }).tables, { secret_table: rows });
      }
    } finally {
      await s.store.close();
    }
    s = await testServices(dir, clients, {}, repoWith(b.recipient, onlyB));
    try {
      const r = await run(s, {
        kind: "restore",
        client_name: "lite",
        key: old,
        params: { target: join(dir, "never.db") },
      });
      assert.equal(r.status, "failed");
      assert.ok(r.error!.includes(a.recipient), r.error!);
      assert.match(r.error!, new RegExp(`no identity in the identity file ${onlyB} matches`));
    } finally {
      await s.store.close();
    }
  });
});

Deno.test("a write-only host refuses a restore before any job exists: API 409, CLI exit 2, both naming the identity", async () => {
  await withTempDir(async (dir) => {
    const live = join(dir, "live.db");
    seed(live, 3);
    const a = await key();
    const repository = { encryption: { recipients: [a.recipient] } };
    const clients = { lite: { kind: "sqlite", path: live } };
    const config = await writeConfig(dir, { clients, repository });
    const backup = await cairn(["backup", "lite", "--json", "--config", config]);
    assert.equal(backup.code, 0, backup.stderr);
    const k = JSON.parse(backup.stdout).key as string;
    const why =
      /This backup is encrypted \(age, for age1[a-z0-9]+\): restoring or rehearsing it needs the matching age identity, looked for in repository\.encryption\.identity_file \(not set on this host\)/;

    const cli = await cairn(["restore", k, "--target", join(dir, "out.db"), "--config", config]);
    assert.equal(cli.code, 2, cli.stderr);
    assert.match(cli.stderr, why);

    const services = await testServices(dir, clients, {}, {
      kind: "fs",
      path: join(dir, "repo"),
      ...repository,
    });
    try {
      const app = createApp({ services, pool: null, scheduler: null, startedAt: Date.now() });
      const res = await app.request(`/admin/backups/${encodeURIComponent(k)}/restore`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ target: join(dir, "out.db") }),
      });
      assert.equal(res.status, 409);
      const body = await res.json();
      assert.equal(body.code, "IDENTITY_MISSING");
      assert.match(body.message, why);
      const jobs = await services.store.list({}, { limit: 100 });
      assert.deepEqual(jobs.jobs.map((j) => j.kind), ["backup"], "no restore job was queued");
    } finally {
      await services.store.close();
    }
    await assert.rejects(Deno.stat(join(dir, "out.db")));
  });
});
