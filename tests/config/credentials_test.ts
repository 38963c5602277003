import assert from "node:assert/strict";
import { join } from "node:path";
import { ConfigError, parseConfig } from "../../src/config/load.ts";
import { redactConfig } from "../../src/config/redacted.ts";
import { userinfoSpan } from "../../src/config/interpolate.ts";
import { redact } from "../../src/redact.ts";
import { startRedis } from "../helpers/redis.ts";
import { cairn, withTempDir, writeConfig } from "../helpers/tmp.ts";

const env = (vars: Record<string, string>) => (name: string) => vars[name];
/** Every character that ends or splits a URL's userinfo, and the escape character. */
const NASTY = "p@ss/w#rd:%41?x";

Deno.test("userinfoSpan finds a URL template's userinfo, ignoring @ and / inside ${...}", () => {
  const t = "postgres://app:${PW}@db:5432/app";
  assert.deepEqual(userinfoSpan(t), { start: 11, end: t.indexOf("@db") });
  assert.equal(userinfoSpan("postgres://db:5432/app"), null, "no userinfo");
  assert.equal(userinfoSpan("/var/lib/${X}@y"), null, "not a URL");
  assert.equal(userinfoSpan("http://host/path@x"), null, "an @ in the path is not userinfo");
  const nested = "redis://:${A:-x@y/z}@h:6379";
  assert.equal(nested.slice(userinfoSpan(nested)!.end), "@h:6379");
});

Deno.test("a ${VAR} password with @ / # : % inside a URL is percent-encoded, so the URL keeps its host", () => {
  const c = parseConfig(
    `clients: {db: {kind: postgres, url: "postgres://app:\${APP_DB_PASSWORD}@127.0.0.1:5432/app"}}`,
    { env: env({ APP_DB_PASSWORD: NASTY }) },
  );
  const client = c.clients.db as { url: string };
  const url = new URL(client.url);
  assert.equal(url.hostname, "127.0.0.1");
  assert.equal(url.port, "5432");
  assert.equal(decodeURIComponent(url.password), NASTY);
  const shown = JSON.stringify(redactConfig(c));
  for (const piece of ["w#rd", "rd:%41", "%41?x", "ss/w"]) {
    assert.ok(!shown.includes(piece), `${piece} shown: ${shown}`);
  }
  assert.equal(
    redact(`failed with ${NASTY} and ${encodeURIComponent(NASTY)}`),
    "failed with *** and ***",
  );
});

Deno.test("password beside the url: any characters, put into the url; both at once is an error", () => {
  const c = parseConfig(
    `clients:
  db: {kind: postgres, url: "postgres://app@127.0.0.1:5432/app", password: "\${PW}"}
  cache: {kind: redis, url: "redis://127.0.0.1:6390/2", password: "\${PW}"}`,
    { env: env({ PW: NASTY }) },
  );
  const db = new URL((c.clients.db as { url: string }).url);
  assert.equal(db.username, "app");
  assert.equal(decodeURIComponent(db.password), NASTY);
  const cache = new URL((c.clients.cache as { url: string }).url);
  assert.equal(cache.username, "");
  assert.equal(decodeURIComponent(cache.password), NASTY);
  assert.equal(cache.pathname, "/2");
  const shown = redactConfig(c).clients as Record<string, Record<string, string>>;
  assert.equal(shown.db.password, "***");
  assert.equal(shown.db.url, "postgres://app:***@127.0.0.1:5432/app");
  try {
    parseConfig(`clients: {db: {kind: postgres, url: "postgres://a:b@h/d", password: x}}`, {
      env: env({}),
    });
    assert.fail("expected a problem");
  } catch (error) {
    assert.ok(error instanceof ConfigError);
    assert.deepEqual(error.problems.map((p) => `${p.path}: ${p.message}`), [
      "clients.db.password: the url already holds a password: give it in one place only",
    ]);
  }
});

Deno.test({
  name: "a Redis password with @ / # : % works through ${VAR} in the url and through password:",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const redis = await startRedis([], { password: NASTY });
    try {
      await redis.cmd("SET", "k", "v");
      await withTempDir(async (dir) => {
        for (
          const client of [
            { kind: "redis", url: `redis://:\${REDIS_PASSWORD}@127.0.0.1:${redis.port}` },
            {
              kind: "redis",
              url: `redis://127.0.0.1:${redis.port}`,
              password: "${REDIS_PASSWORD}",
            },
          ]
        ) {
          const config = await writeConfig(join(dir), { clients: { cache: client } });
          const run = { env: { REDIS_PASSWORD: NASTY } };
          const backup = await cairn(["backup", "cache", "--json", "--config", config], run);
          assert.equal(backup.code, 0, backup.stderr);
          assert.equal(JSON.parse(backup.stdout).status, "completed");
          const check = await cairn(["config", "check", "--config", config], run);
          assert.equal(check.code, 0, check.stderr);
          for (const piece of ["w#rd", "%41?x", "ss/w"]) {
            assert.ok(!check.stdout.includes(piece), `${piece} in: ${check.stdout}`);
          }
        }
      });
    } finally {
      await redis.stop();
    }
  },
});

Deno.test("a URL whose password is written unencoded is refused, without repeating any of it", () => {
  for (
    const url of [
      "postgres://app:p@ss/w#rd:%x@127.0.0.1:5432/app",
      "postgres://app:s3cr@t@127.0.0.1:5432/app",
      "redis://:pa/ss@127.0.0.1:6379",
      "redis://:100%sure@127.0.0.1:6379",
    ]
  ) {
    try {
      parseConfig(`clients: {db: {kind: ${url.split(":")[0]}, url: "${url}"}}`, { env: env({}) });
      assert.fail(`accepted ${url}`);
    } catch (error) {
      assert.ok(error instanceof ConfigError, String(error));
      const text = error.problems.map((p) => `${p.path}: ${p.message}`).join("\n");
      assert.match(text, /^clients\.db\.url: .*percent-encode the user and password/, text);
      for (const piece of ["ss/w", "w#rd", "s3cr", "pa/ss", "100%sure"]) {
        assert.ok(!text.includes(piece), `${piece} in: ${text}`);
      }
    }
  }
  // Encoded, the same passwords are fine.
  parseConfig(
    `clients: {db: {kind: postgres, url: "postgres://app:${
      encodeURIComponent("p@ss/w#rd:%x")
    }@127.0.0.1:5432/app"}}`,
    { env: env({}) },
  );
});

Deno.test({
  name:
    "a restore target URL with an unencoded password is refused before a job exists, and none of it is stored",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await withTempDir(async (dir) => {
      const config = await writeConfig(dir, {
        clients: { db: { kind: "postgres", url: "postgres://postgres@127.0.0.1:5432/postgres" } },
      });
      // A manifest is needed to get as far as the target: write a minimal backup.
      const key = "backups/db/20261121T020000000Z-manual.dump";
      await Deno.mkdir(join(dir, "repo/backups/db"), { recursive: true });
      await Deno.writeFile(join(dir, "repo", key), new Uint8Array([1, 2, 3]));
      await Deno.writeTextFile(
        join(dir, "repo", `${key}.manifest.json`),
        JSON.stringify({
          format_version: 1,
          key,
          client_name: "db",
          kind: "postgres",
          label: "manual",
          created_at: "2026-11-21T02:00:00.000Z",
          size_bytes: 3,
          sha256: "039058c6f2c0cb492c533b0a4d14ef77cc0f78abccced5287d84a1a2011cfb81",
          job_id: 1,
          schedule_id: null,
          tool_versions: {},
          facts: {},
        }),
      );
      const target = "postgres://qa_owner:p@ss/w#rd:%x@127.0.0.1:5432/qa_url2";
      const r = await cairn(["restore", key, "--target", target, "--yes", "--config", config]);
      assert.equal(r.code, 2, r.stdout + r.stderr);
      assert.match(r.stderr, /Invalid --target: the target URL cannot be read as written/);
      const jobs = await cairn(["jobs", "--json", "--config", config]);
      assert.deepEqual(JSON.parse(jobs.stdout).jobs, []);
      const store = await Deno.readFile(join(dir, "cairn.db"));
      const text = new TextDecoder().decode(store) + r.stderr + r.stdout;
      for (const piece of ["ss/w", "w#rd", "rd:%x"]) assert.ok(!text.includes(piece), piece);
    });
  },
});
