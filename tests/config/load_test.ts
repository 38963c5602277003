import assert from "node:assert/strict";
import { parse as parseYaml } from "yaml";
import { clampWarnings, ConfigError, parseConfig } from "../../src/config/load.ts";
import { redactConfig } from "../../src/config/redacted.ts";
import { interpolate } from "../../src/config/interpolate.ts";
import { redact } from "../../src/redact.ts";

const env = (vars: Record<string, string>) => (name: string) => vars[name];

function problems(text: string, vars: Record<string, string> = {}): string[] {
  try {
    parseConfig(text, { env: env(vars) });
  } catch (error) {
    if (error instanceof ConfigError) return error.problems.map((p) => `${p.path}: ${p.message}`);
    throw error;
  }
  return [];
}

Deno.test("an empty file gives the embedded defaults", () => {
  const c = parseConfig("", { env: env({}) });
  assert.equal(c.server.listen, "127.0.0.1:4052");
  assert.equal(c.server.max_body_bytes, 1048576);
  assert.deepEqual(c.store, { kind: "sqlite", path: "data/cairn.db" });
  assert.deepEqual(c.repository, { kind: "fs", path: "data/backups" });
  assert.equal(c.backup.worker_concurrency, 2);
  assert.equal(c.backup.worker_max_attempts, 3);
  assert.equal(c.tools.pg_dump, "pg_dump");
  assert.equal(parseConfig("store: {kind: jsonl}", { env: env({}) }).store.path, "data/jobs.jsonl");
});

Deno.test("poll intervals are clamped to their floors", () => {
  const c = parseConfig("backup: {execution_worker_poll_ms: 10, schedule_worker_poll_ms: 20}", {
    env: env({}),
  });
  assert.equal(c.backup.execution_worker_poll_ms, 250);
  assert.equal(c.backup.schedule_worker_poll_ms, 1000);
});

Deno.test("${VAR} and ${VAR:-default} are replaced before validation, numbers stay numbers", () => {
  const c = parseConfig(
    `backup: {worker_concurrency: "\${WORKERS:-4}"}
clients:
  db:
    kind: postgres
    url: "postgres://app:\${PW}@127.0.0.1:5432/app"`,
    { env: env({ PW: "s3cr3t-pw" }) },
  );
  assert.equal(c.backup.worker_concurrency, 4);
  assert.equal(
    (c.clients.db as { url: string }).url,
    "postgres://app:s3cr3t-pw@127.0.0.1:5432/app",
  );
  assert.equal(
    redact("connect to s3cr3t-pw failed"),
    "connect to *** failed",
    "the password is known as a secret",
  );
});

Deno.test("every problem is reported at once, each with its path", () => {
  const found = problems(`
server: {listen: "nope", max_body_bytes: "big"}
backup: {worker_concurrency: "two", surprise: 1}
clients:
  main_db: {kind: postgres, url: "mysql://x"}
  BadName: {kind: directory, path: /x}
  dir: {kind: directory}
  weird: {kind: ftp, path: /x}
unknown_top: 1
`);
  const text = found.join("\n");
  for (
    const path of [
      "server.listen",
      "server.max_body_bytes",
      "backup.worker_concurrency",
      "backup.surprise",
      "clients.main_db.url",
      "clients.BadName",
      "clients.dir.path",
      "clients.weird.kind",
      "unknown_top",
    ]
  ) {
    assert.ok(
      found.some((p) => p.startsWith(path + ":")),
      `expected a problem at ${path} in:\n${text}`,
    );
  }
  assert.match(text, /backup\.surprise: unknown key/);
  assert.match(text, /unknown_top: unknown key/);
});

Deno.test("a missing ${VAR} is an error naming the variable and the path", () => {
  const found = problems(
    `clients:\n  db: {kind: postgres, url: "postgres://u:\${DB_PASSWORD}@h:5432/d"}`,
  );
  assert.ok(
    found.some((p) => p.startsWith("clients.db.url: environment variable DB_PASSWORD is not set")),
    found.join("\n"),
  );
});

Deno.test("a non-loopback listen address needs an admin key", () => {
  assert.ok(
    problems(`server: {listen: "0.0.0.0:4052"}`).some((p) => p.startsWith("server.admin_key:")),
  );
  assert.deepEqual(problems(`server: {listen: "0.0.0.0:4052", admin_key: k3y-value}`), []);
  assert.deepEqual(problems(`server: {listen: "[::1]:4052"}`), []);
  assert.deepEqual(problems(`server: {listen: "localhost:4052"}`), []);
});

Deno.test("malformed YAML is one clear problem", () => {
  assert.match(problems("server: [unclosed")[0], /not valid YAML/);
  assert.match(problems("- a list")[0], /must be a YAML mapping/);
});

Deno.test("the printed config hides every secret", () => {
  const c = parseConfig(
    `server: {admin_key: "adm1n-key"}
clients:
  db: {kind: postgres, url: "postgres://app:pg-pass-123@127.0.0.1:5432/app"}
  cache: {kind: redis, url: "redis://:redis-pass-9@127.0.0.1:6379"}
  assets: {kind: s3, endpoint: "http://127.0.0.1:9000", bucket: b1x, access_key_id: AKIAXXXX, secret_access_key: "s3-secret-key"}`,
    { env: env({}) },
  );
  const shown = JSON.stringify(redactConfig(c));
  for (const secret of ["adm1n-key", "pg-pass-123", "redis-pass-9", "s3-secret-key", "AKIAXXXX"]) {
    assert.ok(!shown.includes(secret), `${secret} leaked: ${shown}`);
  }
  assert.match(shown, /postgres:\/\/app:\*\*\*@127\.0\.0\.1:5432\/app/);
});

Deno.test("interpolation leaves text without variables alone", () => {
  const r = interpolate({ a: "plain $ text", b: ["${X}"], c: 5 }, env({ X: "true" }));
  assert.deepEqual(r.value, { a: "plain $ text", b: [true], c: 5 });
  assert.deepEqual(r.problems, []);
});

Deno.test("the shipped example configs are valid", async () => {
  const env = (vars: Record<string, string>) => (name: string) => vars[name] ?? `value-of-${name}`;
  for (const file of ["config/cairn.yaml", "config/docker.yaml", "config/example-all-kinds.yaml"]) {
    const text = await Deno.readTextFile(new URL(`../../${file}`, import.meta.url));
    const config = parseConfig(text, {
      file,
      env: env({ CAIRN_LISTEN: "127.0.0.1:4052", CAIRN_DATA_DIR: "/data" }),
    });
    assert.ok(Object.keys(config.clients).length > 0, file);
  }
});

Deno.test("a repository or client without kind says the kind is missing; an unknown kind is named", () => {
  assert.deepEqual(problems(`repository: {path: x}`), [
    "repository.kind: missing: set kind to one of fs, s3",
  ]);
  assert.deepEqual(problems(`repository: {kind: ftp}`), [
    'repository.kind: unknown kind "ftp": one of fs, s3',
  ]);
  const client = problems(`clients: {app: {url: "postgres://x@h/db"}}`);
  assert.equal(client.length, 1);
  assert.match(client[0], /^clients\.app\.kind: missing: set kind to one of postgres, /);
});

Deno.test("ATHENA_PG_DUMP_PATH and ATHENA_PG_RESTORE_PATH are aliases; CAIRN_ wins when both are set", () => {
  const c = parseConfig("", {
    env: env({ ATHENA_PG_DUMP_PATH: "/opt/pg/bin/pg_dump", ATHENA_PG_RESTORE_PATH: "/opt/r" }),
  });
  assert.equal(c.tools.pg_dump, "/opt/pg/bin/pg_dump");
  assert.equal(c.tools.pg_restore, "/opt/r");
  const both = parseConfig("", {
    env: env({ ATHENA_PG_DUMP_PATH: "/athena", CAIRN_PG_DUMP_PATH: "/cairn" }),
  });
  assert.equal(both.tools.pg_dump, "/cairn");
});

Deno.test("a poll interval below its floor is clamped, with a warning naming the value", () => {
  const text = `backup: {execution_worker_poll_ms: 10, schedule_worker_poll_ms: 5000}`;
  const c = parseConfig(text, { env: env({}) });
  assert.equal(c.backup.execution_worker_poll_ms, 250);
  assert.deepEqual(clampWarnings(parseYaml(text), c), [
    "backup.execution_worker_poll_ms 10 is below the minimum 250: using 250",
  ]);
});

Deno.test("the README's configuration reference is a valid config naming every setting the schema has", async () => {
  const readme = await Deno.readTextFile(new URL("../../README.md", import.meta.url));
  const start = readme.indexOf("Every setting, with its default:\n\n```yaml\n");
  assert.ok(start > 0, "the reference block exists");
  const body = readme.slice(readme.indexOf("```yaml\n", start) + 8);
  const text = body.slice(0, body.indexOf("```"));
  const config = parseConfig(text, { env: (name) => `value-of-${name}` });
  assert.deepEqual(Object.keys(config.clients).sort(), [
    "app_db",
    "app_sqlite",
    "assets",
    "cache",
    "uploads",
  ]);
  // Every key of every section appears in the reference (commented or not).
  const defaults = parseConfig("", { env: () => undefined });
  for (const [section, value] of Object.entries(defaults)) {
    assert.ok(text.includes(`${section}:`), section);
    if (value && typeof value === "object" && section !== "clients") {
      for (const key of Object.keys(value)) {
        assert.ok(text.includes(`${key}:`), `${section}.${key}`);
      }
    }
  }
});

Deno.test("a Redis url's path is a database number", () => {
  assert.deepEqual(problems(`clients: {c: {kind: redis, url: "redis://h:6379/abc"}}`), [
    "clients.c.url: the path of a Redis url is a database number, such as /2",
  ]);
  assert.deepEqual(problems(`clients: {c: {kind: redis, url: "redis://h:6379/2"}}`), []);
  assert.deepEqual(problems(`clients: {c: {kind: redis, url: "not a url"}}`), [
    "clients.c.url: must be a URL starting with redis:// or rediss://",
  ]);
});

Deno.test("config: a postgres store needs a url, its password becomes a secret; node.clients must be clients", () => {
  const parse = parseConfig, mask = redact;
  assert.throws(
    () => parse("store:\n  kind: postgres\n"),
    (e: Error) => /store\.url/.test(e.message) && /postgres:\/\/cairn@db\.example/.test(e.message),
  );
  assert.throws(
    () => parse("store:\n  kind: sqlite\n  url: postgres://h/db\n"),
    (e: Error) => /store\.url/.test(e.message) && /kind: postgres/.test(e.message),
  );
  const config = parse(
    "store:\n  kind: postgres\n  url: postgres://cairn:st0re-pw-991@db.example:5432/cairn\n",
  );
  assert.equal(config.store.kind, "postgres");
  assert.equal(config.store.path, "data/node");
  assert.equal(mask("auth failed for st0re-pw-991"), "auth failed for ***");
  assert.equal(
    (redactConfig(config).store as { url: string }).url,
    "postgres://cairn:***@db.example:5432/cairn",
    "the printed config masks it",
  );
  assert.throws(
    () => parse("node:\n  clients: [nope]\nclients:\n  d:\n    kind: directory\n    path: /x\n"),
    (e: Error) => /node\.clients\.0/.test(e.message) && /"nope" is not a client/.test(e.message),
  );
});
