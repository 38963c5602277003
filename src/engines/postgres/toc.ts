/**
 * What cairn reads from a pg_dump archive's table of contents, from two outputs of
 * pg_restore (PostgreSQL 15, pg_backup_archiver.c):
 *
 * - `pg_restore --list`: one line per entry,
 *   `<dumpId>; <tableoid> <oid> <desc> <namespace> <tag> <owner>`. Names are not
 *   quoted there, so a name with a space is ambiguous: cairn uses the list only
 *   to pass lines back with `--use-list`, matched by dump id or catalog oid.
 * - `pg_restore --verbose --schema-only --file=-`: the SQL script, each entry after
 *   a header `-- TOC entry <dumpId> (class <tableoid> OID <oid>)`, then
 *   `-- Dependencies: <dumpId> ...` (when it has any) and
 *   `-- Name: <tag>; Type: <desc>; Schema: <namespace>; Owner: <owner>`. The SQL
 *   quotes identifiers (fmtId), which makes table names and roles unambiguous.
 */

export interface TocEntry {
  dumpId: number;
  /** The catalog oid in the source database (0 for entries without one). */
  oid: number;
  /** pg_dump's object type: TABLE, INDEX, FK CONSTRAINT, ACL, ... */
  type: string;
  /** The unquoted namespace and tag from the header (display only: may be ambiguous). */
  schema: string;
  name: string;
  dependencies: number[];
  /** The SQL the entry restores. */
  sql: string;
}

/** One `--list` line, with the fields cairn matches on. */
export interface ListLine {
  line: string;
  dumpId: number;
  oid: number;
  /** The text after the two oids: `<desc> <namespace> <tag> <owner>`. */
  rest: string;
}

const HEADER = /^-- TOC entry (\d+) \(class (\d+) OID (\d+)\)$/;
const DEPENDENCIES = /^-- Dependencies: ([\d ]+)$/;
const NAME = /^-- Name: (.*); Type: (.*); Schema: (.*); Owner: (.*)$/;

/** Splits pg_restore's verbose script into its TOC entries, in order. */
export function parseScript(script: string): TocEntry[] {
  const entries: TocEntry[] = [];
  let current: TocEntry | null = null;
  let body: string[] = [];
  const finish = () => {
    if (current) {
      current.sql = body.join("\n").trim();
      entries.push(current);
    }
  };
  const lines = script.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const m = HEADER.exec(lines[i]);
    if (m) {
      finish();
      current = {
        dumpId: Number(m[1]),
        oid: Number(m[3]),
        type: "",
        schema: "",
        name: "",
        dependencies: [],
        sql: "",
      };
      body = [];
      // The header runs to the line "--".
      for (i++; i < lines.length && lines[i] !== "--"; i++) {
        const deps = DEPENDENCIES.exec(lines[i]);
        if (deps) current.dependencies = deps[1].trim().split(/\s+/).map(Number);
        const name = NAME.exec(lines[i]);
        if (name) {
          current.name = name[1];
          current.type = name[2];
          current.schema = name[3];
        }
      }
      continue;
    }
    if (current) {
      // The script's trailer is not part of the last entry.
      if (/^-- (Completed on|PostgreSQL database dump complete)/.test(lines[i])) {
        finish();
        current = null;
        continue;
      }
      body.push(lines[i]);
    }
  }
  finish();
  return entries;
}

/** Parses `pg_restore --list` output; comment lines (`;`) are skipped. */
export function parseList(text: string): ListLine[] {
  const out: ListLine[] = [];
  for (const line of text.split("\n")) {
    const m = /^(\d+); (\d+) (\d+) (.*)$/.exec(line);
    if (m) out.push({ line, dumpId: Number(m[1]), oid: Number(m[3]), rest: m[4] });
  }
  return out;
}

// --- Identifiers -----------------------------------------------------------------

/** A SQL identifier as pg_dump writes it: quoted ("" escapes a quote) or plain. */
const IDENT = String.raw`(?:"(?:[^"]|"")*"|[A-Za-z_][A-Za-z0-9_$]*)`;

/** The name an identifier denotes: quotes removed, or as written (pg_dump quotes upper case). */
export function unquoteIdent(ident: string): string {
  return ident.startsWith('"') ? ident.slice(1, -1).replaceAll('""', '"') : ident;
}

/** Splits `a, "b c"` into identifiers. */
function identList(text: string): string[] {
  return [...text.matchAll(new RegExp(IDENT, "g"))].map((m) => m[0]);
}

/**
 * Parses an operator's table name, `schema.table`, each part plain or in double
 * quotes (`"Audit Log"."MixedCase Table"`, `public."a.b"`; `""` is a quote inside
 * quotes). A plain part is taken as written, without case folding, and may not
 * contain a dot, quote or space. Throws an Error saying what is wrong.
 */
export function parseTableName(text: string): { schema: string; table: string } {
  const part = String.raw`("(?:[^"]|"")+"|[^".\s]+)`;
  const m = new RegExp(`^${part}\\.${part}$`).exec(text.trim());
  if (!m) {
    throw new Error(
      `${JSON.stringify(text)} is not schema.table: name the schema, and put a part ` +
        `holding a dot, quote or space in double quotes (public."a.b", "My Schema".t)`,
    );
  }
  return { schema: unquoteIdent(m[1]), table: unquoteIdent(m[2]) };
}

/** The table a TABLE entry creates, from its CREATE statement (quoted as pg_dump quotes). */
export function createdTable(entry: TocEntry): { schema: string; table: string } | null {
  const m = new RegExp(
    String.raw`^CREATE (?:UNLOGGED |FOREIGN )?TABLE (${IDENT})\.(${IDENT})[ \n(]`,
    "m",
  ).exec(entry.sql);
  return m ? { schema: unquoteIdent(m[1]), table: unquoteIdent(m[2]) } : null;
}

/** The table an `ALTER TABLE [ONLY] s.t ...` entry (constraints, defaults) changes. */
export function alteredTable(entry: TocEntry): { schema: string; table: string } | null {
  const m = new RegExp(String.raw`^ALTER TABLE (?:ONLY )?(${IDENT})\.(${IDENT})`, "m").exec(
    entry.sql,
  );
  return m ? { schema: unquoteIdent(m[1]), table: unquoteIdent(m[2]) } : null;
}

/** The table a FOREIGN KEY constraint references. */
export function referencedTable(entry: TocEntry): { schema: string; table: string } | null {
  const m = new RegExp(String.raw`REFERENCES (${IDENT})\.(${IDENT})\(`).exec(entry.sql);
  return m ? { schema: unquoteIdent(m[1]), table: unquoteIdent(m[2]) } : null;
}

/** Names that are keywords, not roles, where a grantee may stand. */
const NOT_ROLES = new Set(["PUBLIC", "CURRENT_USER", "SESSION_USER", "CURRENT_ROLE"]);

/**
 * Every role the script would need on the target server: owners (`OWNER TO`),
 * grantees and grantors (GRANT ... TO, REVOKE ... FROM, GRANTED BY, SET SESSION
 * AUTHORIZATION), default privileges (FOR ROLE) and policies (TO). Sorted.
 */
export function referencedRoles(entries: TocEntry[]): string[] {
  const roles = new Set<string>();
  const add = (idents: string[]) => {
    for (const ident of idents) {
      if (!ident.startsWith('"') && NOT_ROLES.has(ident.toUpperCase())) continue;
      roles.add(unquoteIdent(ident));
    }
  };
  const list = `(${IDENT}(?:\\s*,\\s*${IDENT})*)`;
  const patterns = [
    new RegExp(String.raw`\bOWNER TO (${IDENT});$`),
    new RegExp(
      String
        .raw`^(?:ALTER DEFAULT PRIVILEGES .*? )?GRANT [\s\S]* TO ${list}(?: WITH (?:GRANT|ADMIN) OPTION)?(?: GRANTED BY (${IDENT}))?;$`,
    ),
    new RegExp(
      String
        .raw`^(?:ALTER DEFAULT PRIVILEGES .*? )?REVOKE [\s\S]* FROM ${list}(?: GRANTED BY (${IDENT}))?(?: CASCADE| RESTRICT)?;$`,
    ),
    new RegExp(String.raw`^SET SESSION AUTHORIZATION (${IDENT});$`),
    new RegExp(String.raw`^ALTER DEFAULT PRIVILEGES FOR ROLE (${IDENT})`),
    new RegExp(String.raw`^CREATE POLICY [\s\S]*? TO ${list}(?: USING| WITH CHECK|;)`),
  ];
  for (const entry of entries) {
    for (const statement of statements(entry.sql)) {
      for (const pattern of patterns) {
        const m = pattern.exec(statement);
        if (!m) continue;
        for (const group of m.slice(1)) if (group) add(identList(group));
      }
    }
  }
  return [...roles].sort();
}

/** An entry's statements: pg_dump ends each with `;` at the end of a line. */
function statements(sql: string): string[] {
  return sql.split(/;\n/).map((s, i, all) => (i < all.length - 1 ? `${s};` : s).trim()).filter(
    (s) => s.length > 0,
  );
}

/** Entry types that belong to a table and are replaced with it. */
const BELONGS_TO_TABLE = new Set([
  "INDEX",
  "CONSTRAINT",
  "FK CONSTRAINT",
  "CHECK CONSTRAINT",
  "TRIGGER",
  "DEFAULT",
  "SEQUENCE",
  "SEQUENCE OWNED BY",
  "COMMENT",
  "ACL",
  "POLICY",
  "ROW SECURITY",
  "RULE",
  "STATISTICS",
  "INDEX ATTACH",
  "SECURITY LABEL",
]);

export interface TableSelection {
  /** `--list` lines to pass back with `--use-list`, in the archive's order. */
  list: string[];
  /** The tables selected, as found in the archive. */
  tables: Array<{ schema: string; table: string }>;
  /** The requested names that are not tables in the archive. */
  unknown: Array<{ schema: string; table: string }>;
  /** Foreign keys left out: a table they join is neither selected nor in the target. */
  skipped: string[];
}

/**
 * The TOC entries that restore `wanted` tables: each TABLE, its TABLE DATA (same
 * catalog oid), what belongs to it (indexes, constraints, triggers, defaults,
 * owned sequences with their SEQUENCE SET, comments, grants, policies, rules),
 * transitively, and the SCHEMA entries of `missingSchemas`. A foreign key is kept
 * only if both tables it joins are selected or in `existing` (the target has
 * them); else it could not be created, and is named in `skipped`.
 */
export function selectTables(
  entries: TocEntry[],
  list: ListLine[],
  wanted: Array<{ schema: string; table: string }>,
  options: {
    existing: (schema: string, table: string) => boolean;
    missingSchemas: Set<string>;
  },
): TableSelection {
  const key = (s: string, t: string) => JSON.stringify([s, t]);
  const tableEntries = new Map<string, TocEntry>();
  for (const entry of entries) {
    if (entry.type !== "TABLE") continue;
    const name = createdTable(entry);
    if (name) tableEntries.set(key(name.schema, name.table), entry);
  }
  const selected = new Set<number>();
  const tables: Array<{ schema: string; table: string }> = [];
  const unknown: Array<{ schema: string; table: string }> = [];
  const selectedNames = new Set<string>();
  for (const w of wanted) {
    const entry = tableEntries.get(key(w.schema, w.table));
    if (!entry) {
      unknown.push(w);
      continue;
    }
    if (!selected.has(entry.dumpId)) tables.push(w);
    selected.add(entry.dumpId);
    selectedNames.add(key(w.schema, w.table));
  }
  const skipped: string[] = [];
  const available = (t: { schema: string; table: string } | null) =>
    t !== null &&
    (selectedNames.has(key(t.schema, t.table)) || options.existing(t.schema, t.table));
  for (let grew = true; grew;) {
    grew = false;
    for (const entry of entries) {
      if (selected.has(entry.dumpId) || !BELONGS_TO_TABLE.has(entry.type)) continue;
      if (!entry.dependencies.some((d) => selected.has(d))) continue;
      if (
        entry.type === "FK CONSTRAINT" &&
        !(available(alteredTable(entry)) && available(referencedTable(entry)))
      ) {
        if (!skipped.includes(entry.name)) skipped.push(entry.name);
        continue;
      }
      selected.add(entry.dumpId);
      grew = true;
    }
  }
  const tableOids = new Set(
    entries.filter((e) => e.type === "TABLE" && selected.has(e.dumpId)).map((e) => e.oid),
  );
  const sequences = entries.filter((e) => e.type === "SEQUENCE" && selected.has(e.dumpId));
  for (const entry of entries) {
    if (entry.type === "SCHEMA" && options.missingSchemas.has(entry.name)) {
      selected.add(entry.dumpId);
    }
  }
  const out: string[] = [];
  for (const line of list) {
    const dataOfTable = line.rest.startsWith("TABLE DATA ") && tableOids.has(line.oid);
    const sequenceSet = line.rest.startsWith("SEQUENCE SET ") &&
      sequences.some((s) => line.rest.startsWith(`SEQUENCE SET ${s.schema} ${s.name} `));
    if (selected.has(line.dumpId) || dataOfTable || sequenceSet) out.push(line.line);
  }
  return { list: out, tables, unknown, skipped };
}
