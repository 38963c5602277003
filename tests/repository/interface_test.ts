import assert from "node:assert/strict";
import { FsRepository } from "../../src/repository/fs.ts";
import type {
  BatchedDurability,
  PartialWrites,
  Repository,
  RepositoryCapabilities,
} from "../../src/repository/repository.ts";
import { S3Repository } from "../../src/repository/s3.ts";

/** Compiles only when A and B are the same type (the usual conditional-type identity test). */
type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends (<T>() => T extends B ? 1 : 2) ? true
  : false;
const exact = <T extends true>(_: T) => {};

// Issue 20 §5: the repository holds the storage verbs and a statement of capabilities,
// nothing else. A method added to the interface fails this file's type check.
exact<Equal<keyof Repository, "kind" | "location" | "capabilities" | VerbName>>(true);
exact<
  Equal<keyof RepositoryCapabilities, "move" | "batch" | "partialWrites" | "link" | "putIfAbsent">
>(true);
exact<Equal<keyof BatchedDurability, "put" | "move" | "sync" | "link">>(true);
exact<Equal<keyof PartialWrites, "list" | "sweep" | "unfinishedUploads">>(true);

type VerbName = "put" | "get" | "stat" | "list" | "remove";
const VERBS: VerbName[] = ["put", "get", "stat", "list", "remove"];

/** The public methods an instance has (its class's prototype, getters excluded). */
function methodsOf(repo: object): string[] {
  const proto = Object.getPrototypeOf(repo);
  return Object.getOwnPropertyNames(proto).filter((name) => {
    const d = Object.getOwnPropertyDescriptor(proto, name)!;
    return name !== "constructor" && typeof d.value === "function";
  }).sort();
}

Deno.test("repository interface: each implementation has exactly the five storage verbs as methods", () => {
  const fs = new FsRepository("/nonexistent/cairn-interface-test");
  const s3 = new S3Repository({
    kind: "s3",
    endpoint: "http://127.0.0.1:1",
    region: "us-east-1",
    bucket: "b",
    prefix: "",
    access_key_id: "k",
    secret_access_key: "s",
    force_path_style: true,
  });
  for (const repo of [fs, s3]) {
    assert.deepEqual(methodsOf(repo), [...VERBS].sort(), repo.kind);
    // No other public field than the interface's (the fs root is its location).
    const own = Object.keys(repo).filter((k) => k !== "root" && k !== "location").sort();
    assert.deepEqual(own, ["capabilities", "kind"], repo.kind);
    assert.equal(typeof repo.location, "string");
  }
  assert.deepEqual(Object.keys(fs.capabilities).sort(), [
    "batch",
    "link",
    "move",
    "partialWrites",
    "putIfAbsent",
  ]);
  assert.deepEqual(Object.keys(fs.capabilities.batch!).sort(), ["link", "move", "put", "sync"]);
  assert.deepEqual(Object.keys(s3.capabilities).sort(), ["move", "partialWrites", "putIfAbsent"]);
});
