import assert from "node:assert/strict";
import {
  parseList,
  parseScript,
  parseTableName,
  referencedRoles,
  selectTables,
} from "../../src/engines/postgres/toc.ts";
import { compareCounts, manifestTables } from "../../src/engines/postgres/catalog.ts";
import { restoreDestination } from "../../src/engines/postgres/conn.ts";
import { sideName } from "../../src/engines/postgres/databases.ts";

Deno.test("table names: schema.table with SQL quoting, unambiguous for dots, quotes and spaces", () => {
  assert.deepEqual(parseTableName("public.users"), { schema: "public", table: "users" });
  assert.deepEqual(parseTableName('public."a.b"'), { schema: "public", table: "a.b" });
  assert.deepEqual(parseTableName("a.b"), { schema: "a", table: "b" });
  assert.deepEqual(parseTableName('"Audit Log"."MixedCase Table"'), {
    schema: "Audit Log",
    table: "MixedCase Table",
  });
  assert.deepEqual(parseTableName('s."say ""hi"""'), { schema: "s", table: 'say "hi"' });
  assert.deepEqual(parseTableName("Sales.Orders"), { schema: "Sales", table: "Orders" });
  for (const bad of ["users", "a.b.c", '"unterminated.t', "a. b", ".t", "s.", 'a"b.c']) {
    assert.throws(() => parseTableName(bad), /is not schema\.table/, bad);
  }
});

// What `pg_restore --verbose --schema-only --file=-` prints (PostgreSQL 15), cut down.
const SCRIPT = `--
-- PostgreSQL database dump
--
SET statement_timeout = 0;

--
-- TOC entry 6 (class 2615 OID 16682)
-- Name: a; Type: SCHEMA; Schema: -; Owner: postgres
-- Data Pos: 0
--

CREATE SCHEMA a;


ALTER SCHEMA a OWNER TO "Schema Owner";

--
-- TOC entry 216 (class 1259 OID 16683)
-- Dependencies: 6
-- Name: b; Type: TABLE; Schema: a; Owner: app_t
-- Data Pos: 0
--

CREATE TABLE a.b (
    x integer
);


ALTER TABLE a.b OWNER TO app_t;

--
-- TOC entry 215 (class 1259 OID 16674)
-- Name: a.b; Type: TABLE; Schema: public; Owner: postgres
-- Data Pos: 0
--

CREATE TABLE public."a.b" (
    id integer NOT NULL
);


ALTER TABLE public."a.b" OWNER TO postgres;

--
-- TOC entry 217 (class 1259 OID 16686)
-- Dependencies: 216
-- Name: vv; Type: VIEW; Schema: public; Owner: postgres
-- Data Pos: 0
--

CREATE VIEW public.vv AS
 SELECT b.x
   FROM a.b;

--
-- TOC entry 3207 (class 1259 OID 16681)
-- Dependencies: 215
-- Name: a.b_v_idx; Type: INDEX; Schema: public; Owner: postgres
-- Data Pos: 0
--

CREATE INDEX "a.b_v_idx" ON public."a.b" USING btree (id);

--
-- TOC entry 3221 (class 2606 OID 16704)
-- Dependencies: 216 215 3207
-- Name: b b_fkey; Type: FK CONSTRAINT; Schema: a; Owner: postgres
-- Data Pos: 0
--

ALTER TABLE ONLY a.b
    ADD CONSTRAINT b_fkey FOREIGN KEY (x) REFERENCES public."a.b"(id);

--
-- TOC entry 3379 (class 0 OID 0)
-- Dependencies: 216
-- Name: TABLE b; Type: ACL; Schema: a; Owner: app_t
-- Data Pos: 0
--

SET SESSION AUTHORIZATION grantor_role;
GRANT SELECT ON TABLE a.b TO "Reader X", PUBLIC WITH GRANT OPTION;
RESET SESSION AUTHORIZATION;
REVOKE ALL ON TABLE a.b FROM old_reader;

--
-- TOC entry 3380 (class 0 OID 0)
-- Name: DEFAULT PRIVILEGES FOR TABLES; Type: DEFAULT ACL; Schema: -; Owner: postgres
-- Data Pos: 0
--

ALTER DEFAULT PRIVILEGES FOR ROLE definer IN SCHEMA a GRANT SELECT ON TABLES TO later_reader;

--
-- TOC entry 3381 (class 2618 OID 16710)
-- Dependencies: 216
-- Name: b p; Type: POLICY; Schema: a; Owner: postgres
-- Data Pos: 0
--

CREATE POLICY p ON a.b TO policy_role, CURRENT_USER USING ((x > 0));


-- Completed on 2026-11-30 09:48:08 UTC

--
-- PostgreSQL database dump complete
--
`;

const LIST = `;
; Archive created at 2026-11-30 09:48:08 UTC
;
6; 2615 16682 SCHEMA - a postgres
216; 1259 16683 TABLE a b app_t
215; 1259 16674 TABLE public a.b postgres
217; 1259 16686 VIEW public vv postgres
3367; 0 16683 TABLE DATA a b app_t
3366; 0 16674 TABLE DATA public a.b postgres
3207; 1259 16681 INDEX public a.b_v_idx postgres
3221; 2606 16704 FK CONSTRAINT a b b_fkey postgres
3379; 0 0 ACL a TABLE b app_t
3380; 0 0 DEFAULT ACL - DEFAULT PRIVILEGES FOR TABLES postgres
3381; 2618 16710 POLICY a b p postgres
`;

Deno.test("TOC script: entries with dependencies, and every role owners, grants, policies and default privileges need", () => {
  const entries = parseScript(SCRIPT);
  assert.deepEqual(entries.map((e) => [e.dumpId, e.type, e.dependencies]), [
    [6, "SCHEMA", []],
    [216, "TABLE", [6]],
    [215, "TABLE", []],
    [217, "VIEW", [216]],
    [3207, "INDEX", [215]],
    [3221, "FK CONSTRAINT", [216, 215, 3207]],
    [3379, "ACL", [216]],
    [3380, "DEFAULT ACL", []],
    [3381, "POLICY", [216]],
  ]);
  assert.match(entries[8].sql, /^CREATE POLICY p ON a\.b .*;$/);
  assert.deepEqual(referencedRoles(entries), [
    "Reader X",
    "Schema Owner",
    "app_t",
    "definer",
    "grantor_role",
    "later_reader",
    "old_reader",
    "policy_role",
    "postgres",
  ]);
});

Deno.test('TOC selection: public."a.b" and a.b are different tables, each with what belongs to it', () => {
  const entries = parseScript(SCRIPT);
  const list = parseList(LIST);
  const dotted = selectTables(entries, list, [{ schema: "public", table: "a.b" }], {
    existing: () => false,
    missingSchemas: new Set(),
  });
  // The FK on a.b references it, but a.b is neither selected nor in the target: left out.
  assert.deepEqual(dotted.list.map((l) => Number(l.split(";")[0])), [215, 3366, 3207]);
  const withTarget = selectTables(entries, list, [{ schema: "public", table: "a.b" }], {
    existing: (s, t) => s === "a" && t === "b",
    missingSchemas: new Set(),
  });
  assert.deepEqual(withTarget.list.map((l) => Number(l.split(";")[0])), [215, 3366, 3207, 3221]);
  const plain = selectTables(entries, list, [{ schema: "a", table: "b" }], {
    existing: () => false,
    missingSchemas: new Set(["a"]),
  });
  assert.deepEqual(plain.list.map((l) => Number(l.split(";")[0])), [6, 216, 3367, 3379, 3381]);
  assert.deepEqual(plain.skipped, ["b b_fkey"], 'its foreign key needs public."a.b"');
  const unknown = selectTables(entries, list, [{ schema: "public", table: "vv" }], {
    existing: () => false,
    missingSchemas: new Set(),
  });
  assert.deepEqual(unknown.unknown, [{ schema: "public", table: "vv" }], "a view is not a table");
});

Deno.test("manifest tables: the split format compares per (schema, table); the old format by its strings", () => {
  const actual = {
    tables: [
      { schema: "a", table: "b", rows: 1 },
      { schema: "public", table: "a.b", rows: 2 },
    ],
    large_objects: 0,
  };
  const split = manifestTables({
    tables: [{ schema: "a", table: "b", rows: 1 }, { schema: "public", table: "a.b", rows: 2 }],
  });
  assert.deepEqual(compareCounts({ tables: split, large_objects: 0 }, actual).problems, []);
  const swapped = manifestTables({
    tables: [{ schema: "a", table: "b", rows: 2 }, { schema: "public", table: "a.b", rows: 1 }],
  });
  assert.deepEqual(compareCounts({ tables: swapped, large_objects: 0 }, actual).problems, [
    "a.b: 1 rows restored, 2 in the manifest",
    'public."a.b": 2 rows restored, 1 in the manifest',
  ]);
  const legacy = manifestTables({ tables: { "a.b": 1, "public.a.b": 2 } });
  assert.equal(legacy.format, "legacy");
  assert.deepEqual(compareCounts({ tables: legacy, large_objects: 0 }, actual).problems, []);
  const collide = {
    tables: [
      { schema: "a", table: "b.c", rows: 1 },
      { schema: "a.b", table: "c", rows: 5 },
    ],
    large_objects: 0,
  };
  // Two tables the old format cannot tell apart fail, rather than pass by luck.
  assert.deepEqual(
    compareCounts({ tables: manifestTables({ tables: { "a.b.c": 1 } }), large_objects: 0 }, collide)
      .problems,
    ['"a.b".c: 5 rows restored, absent in the manifest'],
  );
});

Deno.test("restore destinations: none, a database name, or a postgres:// URL naming its database; the password never in a message", () => {
  const client = "postgres://app:client-pw@db.internal:5433/appdb";
  const own = restoreDestination(client, null);
  assert.deepEqual([own.server.host, own.server.port, own.database, own.display], [
    "db.internal",
    5433,
    "appdb",
    "appdb",
  ]);
  const named = restoreDestination(client, "appdb_copy");
  assert.deepEqual([named.server.host, named.database, named.server.password], [
    "db.internal",
    "appdb_copy",
    "client-pw",
  ]);
  const url = restoreDestination(client, "postgres://dr:t%40rget%2Fpw@10.1.2.3:6432/restored");
  assert.deepEqual(
    [url.server.host, url.server.port, url.server.user, url.server.password, url.database],
    ["10.1.2.3", 6432, "dr", "t@rget/pw", "restored"],
  );
  assert.equal(url.display, "postgres://dr:***@10.1.2.3:6432/restored");
  const fail = (target: string, message: RegExp) =>
    assert.throws(() => restoreDestination(client, target), (e: Error) => {
      assert.match(e.message, message);
      assert.ok(!e.message.includes("s3cr3t"), e.message);
      return true;
    });
  fail(
    "postgres://dr:s3cr3t@10.1.2.3:6432",
    /postgres:\/\/dr:\*\*\*@10\.1\.2\.3:6432 names no database/,
  );
  fail("postgresql://dr:s3cr3t@10.1.2.3/bad;name", /Invalid restore target database "bad;name"/);
  fail(
    "redis://:s3cr3t@10.1.2.3:6379/0",
    /Invalid restore target redis:\/\/:\*\*\*@10\.1\.2\.3:6379\/0/,
  );
  fail("has space", /Invalid restore target "has space"/);
});

Deno.test("side names fit PostgreSQL's 63 bytes: the base is cut, the suffix kept", () => {
  assert.equal(sideName("app", "_pre_restore_20261130T101500"), "app_pre_restore_20261130T101500");
  const long = "d".repeat(63);
  const side = sideName(long, "_cairn_new_1234abcd");
  assert.equal(side.length, 63);
  assert.ok(side.endsWith("_cairn_new_1234abcd"));
});
