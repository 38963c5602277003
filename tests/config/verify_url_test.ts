import assert from "node:assert/strict";
import { parseConfig } from "../../src/config/load.ts";
import { redactConfig } from "../../src/config/redacted.ts";
import { redact } from "../../src/redact.ts";

Deno.test("config: a postgres client's verify_url is checked like url and its password shown as ***", () => {
  const config = parseConfig(
    JSON.stringify({
      clients: {
        app: {
          kind: "postgres",
          url: "postgres://app:app-pw-1@127.0.0.1:5432/app",
          verify_url: "postgres://verifier:verify-pw-7731@127.0.0.1:5432/postgres",
        },
      },
    }),
    { env: () => undefined },
  );
  const shown = JSON.stringify(redactConfig(config));
  assert.ok(!shown.includes("verify-pw-7731"), shown);
  assert.match(shown, /"verify_url":"postgres:\/\/verifier:\*\*\*@127\.0\.0\.1:5432\/postgres"/);
  assert.equal(redact("failed with verify-pw-7731"), "failed with ***", "registered as a secret");
  assert.throws(
    () =>
      parseConfig(
        JSON.stringify({
          clients: { app: { kind: "postgres", url: "postgres://a@h/db", verify_url: "mysql://x" } },
        }),
        { env: () => undefined },
      ),
    /clients\.app\.verify_url: must be a URL starting with postgres:\/\/ or postgresql:\/\//,
  );
});
