import { CairnError } from "../../errors.ts";
import { runCommand } from "../process.ts";

/**
 * GNU tar as cairn runs it: which version is accepted, the arguments, and what its
 * stderr means. Pure functions, apart from `checkGnuTar`, which runs `tar --version`.
 *
 * Facts from the GNU tar manual (gnu.org/software/tar/manual), sections "Exit status",
 * "Formats", "Extracting symlinks", "Overwrite Old Files"; see NOTES.md
 * "Directory archives with GNU tar".
 */

/** The oldest GNU tar accepted: 1.30 (Debian buster; bookworm ships 1.34). */
export const MIN_GNU_TAR: readonly [number, number] = [1, 30];

/** Names cairn gives its scratch directories inside a restore target (never archived). */
export const STAGING_PREFIX = ".cairn-restore-";
export const OLD_PREFIX = ".cairn-old-";
/** The staging directory once every old entry is out: its entries are moving in. */
export const INCOMING_PREFIX = ".cairn-incoming-";
/** The old entries once every new one is in: the restore is done, they are removed. */
export const DONE_PREFIX = ".cairn-done-";

export interface TarVersion {
  major: number;
  minor: number;
  text: string;
}

/**
 * The version from the first line of `tar --version`, e.g. "tar (GNU tar) 1.34" gives
 * {major: 1, minor: 34}; null when the line is not GNU tar's (busybox, bsdtar).
 */
export function parseGnuTarVersion(output: string): TarVersion | null {
  const first = output.split("\n", 1)[0].trim();
  const m = /^tar \(GNU tar\) (\d+)\.(\d+)(?:\.\d+)*\s*$/.exec(first);
  if (!m) return null;
  return { major: Number(m[1]), minor: Number(m[2]), text: `${m[1]}.${m[2]}` };
}

/** Whether a version is at least MIN_GNU_TAR. */
export function isRecentEnough(v: TarVersion): boolean {
  const [maj, min] = MIN_GNU_TAR;
  return v.major > maj || (v.major === maj && v.minor >= min);
}

const checked = new Map<string, Promise<TarVersion>>();

/**
 * Runs `<bin> --version` once per binary and returns its version. Errors: TOOL_MISSING
 * when the binary cannot be run, TOOL_INCOMPATIBLE when it is not GNU tar or is older
 * than MIN_GNU_TAR.
 */
export function checkGnuTar(bin: string): Promise<TarVersion> {
  let p = checked.get(bin);
  if (!p) {
    p = probe(bin);
    checked.set(bin, p);
    p.catch(() => checked.delete(bin)); // a fixed installation is seen on the next job
  }
  return p;
}

const SETTING = "tools.tar in the config (or CAIRN_TAR_PATH)";

async function probe(bin: string): Promise<TarVersion> {
  let out: Deno.CommandOutput;
  try {
    out = await runCommand(bin, ["--version"], { env: { LC_ALL: "C" } });
  } catch (error) {
    throw new CairnError(
      "TOOL_MISSING",
      `${bin} could not be run (${(error as Error).message}): directory backups need GNU tar ${
        MIN_GNU_TAR.join(".")
      } or later; install it (Debian: apt-get install tar) or point ${SETTING} at it`,
      { cause: error },
    );
  }
  const text = new TextDecoder().decode(out.stdout);
  const version = parseGnuTarVersion(text);
  const first = JSON.stringify(text.split("\n", 1)[0].trim());
  if (!version) {
    throw new CairnError(
      "TOOL_INCOMPATIBLE",
      `${bin} is not GNU tar (its --version says ${first}): directory backups need GNU tar ${
        MIN_GNU_TAR.join(".")
      } or later; point ${SETTING} at it`,
    );
  }
  if (!isRecentEnough(version)) {
    throw new CairnError(
      "TOOL_INCOMPATIBLE",
      `${bin} is GNU tar ${version.text}, older than the ${
        MIN_GNU_TAR.join(".")
      } directory backups need; upgrade it or point ${SETTING} at a newer one`,
    );
  }
  return version;
}

/**
 * `tar --create` arguments for a pax archive of `root` on stdout. The root is archived
 * as `.`, so its own mode, owner and mtime are the first entry (`./`). Owners are
 * numeric (a restore on another host keeps ids, not names); xattrs and sparse files kept.
 * Excludes come before the operand, as GNU tar requires.
 */
export function createArgs(
  root: string,
  options: { exclude?: string[]; oneFileSystem?: boolean } = {},
): string[] {
  return [
    "--create",
    "--file=-",
    "--format=posix",
    "--numeric-owner",
    "--xattrs",
    "--xattrs-include=*",
    "--sparse",
    ...(options.oneFileSystem ? ["--one-file-system"] : []),
    // cairn's own scratch directories of an interrupted in-place restore are not data.
    `--exclude=./${STAGING_PREFIX}*`,
    `--exclude=./${OLD_PREFIX}*`,
    `--exclude=./${INCOMING_PREFIX}*`,
    `--exclude=./${DONE_PREFIX}*`,
    ...(options.exclude ?? []).map((p) => `--exclude=${p}`),
    `--directory=${root}`,
    ".",
  ];
}

/**
 * `tar --extract` arguments reading an uncompressed archive from stdin into `dir`, which
 * must be a fresh empty directory: GNU tar strips leading `/`, refuses members with `..`,
 * and creates symlinks that point outside (absolute or with `..`) only at the end, as
 * placeholders first, so no later member writes through them. `--absolute-names` and
 * `--keep-directory-symlink` are deliberately not given. As root, owners, setuid bits
 * and xattrs come back as archived; otherwise files belong to the restoring user (a
 * chown would fail and fail the restore).
 */
export function extractArgs(dir: string, options: { asRoot: boolean }): string[] {
  return [
    "--extract",
    "--file=-",
    `--directory=${dir}`,
    options.asRoot ? "--same-owner" : "--no-same-owner",
    "--same-permissions",
    "--numeric-owner",
    "--xattrs",
    "--xattrs-include=*",
    "--delay-directory-restore",
  ];
}

/** What tar's stderr said while creating an archive. */
export interface TarReport {
  /** Unix sockets tar left out ("socket ignored"). */
  sockets_skipped: number;
  /** Files that changed while tar read them (exit status 1). */
  changed_while_reading: number;
  /** Every warning, with `./` names made absolute under the archived root. */
  warnings: string[];
  /** Lines that are errors (anything that is not a known warning). */
  errors: string[];
}

const WARNINGS = [
  /: socket ignored$/,
  /: file changed as we read it$/,
  /: file is unchanged; not dumped$/,
  /: file removed before we read it$/,
  /: File removed before we read it$/,
  /: directory is on a different filesystem; not dumped$/,
  /: file is on a different filesystem; not dumped$/,
];

/**
 * A tar message without tar's own name, with the member name made absolute under
 * `root`: "/usr/bin/tar: ./a/b: x" gives "/root/a/b: x". tar prefixes its argv[0].
 */
export function absolutize(line: string, root: string): string {
  const member = /^(?:\S+: )?(\.(?:\/|:).*)$/.exec(line);
  const body = member ? member[1] : line.replace(/^\S+: /, "");
  if (body.startsWith("./")) return `${root.replace(/\/+$/, "")}/${body.slice(2)}`;
  if (body.startsWith(".:")) return `${root}${body.slice(1)}`;
  return body;
}

/** Sorts the stderr of `tar --create` into counted warnings and errors. */
export function classifyCreateStderr(stderr: string, root: string): TarReport {
  const report: TarReport = {
    sockets_skipped: 0,
    changed_while_reading: 0,
    warnings: [],
    errors: [],
  };
  for (const raw of stderr.split("\n")) {
    const line = raw.trim();
    if (!line) continue;
    if (/Exiting with failure status due to previous errors$/.test(line)) continue;
    if (WARNINGS.some((w) => w.test(line))) {
      if (/: socket ignored$/.test(line)) report.sockets_skipped++;
      if (/: file changed as we read it$/.test(line)) report.changed_while_reading++;
      report.warnings.push(absolutize(line, root));
    } else report.errors.push(absolutize(line, root));
  }
  return report;
}

/**
 * The outcome of `tar --create` from its exit status (0 ok, 1 "some files differ", a
 * warning; 2 fatal) and its stderr: the report, or an error naming the files tar could
 * not read (SOURCE_REFUSED when every one was "Permission denied", else SOURCE_UNAVAILABLE).
 */
export function createOutcome(
  code: number,
  stderr: string,
  root: string,
  clientName: string,
): TarReport {
  const report = classifyCreateStderr(stderr, root);
  if (code === 0 || (code === 1 && report.errors.length === 0)) return report;
  const lines = report.errors.length ? report.errors : report.warnings;
  const why = lines.length
    ? lines.slice(0, 10).join("; ") +
      (lines.length > 10 ? ` (and ${lines.length - 10} more)` : "")
    : `tar exited with status ${code}`;
  // A file tar may not read stays unreadable on the next attempt (SOURCE_REFUSED, not
  // retried); anything else (an I/O error, a vanished mount) may be passing.
  const refused = lines.length > 0 && lines.every((l) => /Permission denied/.test(l));
  throw new CairnError(
    refused ? "SOURCE_REFUSED" : "SOURCE_UNAVAILABLE",
    `Cannot back up ${root} of client ${clientName}: ${why}`,
  );
}
