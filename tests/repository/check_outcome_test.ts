import assert from "node:assert/strict";
import type { CheckReport, Problem } from "../../src/repository/check.ts";
import { checkFailureMessage } from "../../src/repository/check_outcome.ts";

function report(problems: Problem[]): CheckReport {
  return {
    clean: problems.length === 0,
    problems,
    manifests: 0,
    artifacts: 0,
    bytes_read: 0,
    read_data: false,
    duration_ms: 1,
  };
}

Deno.test("check outcome: one problem, named with its kind", () => {
  assert.equal(
    checkFailureMessage(
      report([{ kind: "temp_leftover", key: ".tmp/x", message: ".tmp/x is a leftover" }]),
      "/repo",
    ),
    "The repository check of /repo found 1 problem (1 temp_leftover): .tmp/x is a leftover",
  );
});

Deno.test("check outcome: counts by kind sorted, the first five named, the rest counted", () => {
  const problems: Problem[] = [];
  for (let i = 0; i < 4; i++) {
    problems.push({ kind: "temp_leftover", key: `t${i}`, message: `t${i}` });
  }
  for (let i = 0; i < 3; i++) {
    problems.push({ kind: "artifact_missing", key: `a${i}`, message: `a${i}` });
  }
  assert.equal(
    checkFailureMessage(report(problems), "s3://b/p/"),
    "The repository check of s3://b/p/ found 7 problems (3 artifact_missing, 4 temp_leftover): " +
      "t0; t1; t2; t3; a0; and 2 more (the job's result lists every one)",
  );
});
