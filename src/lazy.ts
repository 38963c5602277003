/**
 * The specifier of a module loaded on first use, hidden from Deno's module graph:
 * with a literal `import("./x.ts")`, every start resolves and prepares all that x.ts
 * reaches (the AWS SDK, hono, the PostgreSQL driver), 30-40 ms on each CLI command
 * (`cairn backup` with a bad client name: 110-120 ms against 80 ms). The price: `deno
 * compile` must be told about each such module (`--include` in deno.json's compile
 * task), and tests/packaging_test.ts checks that list against the call sites.
 * Call sites keep their types with `as typeof import("...")`, which Deno does not
 * load at run time.
 */
export function unseen(specifier: string): string {
  return specifier;
}
