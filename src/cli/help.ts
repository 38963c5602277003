/**
 * What `cairn <command> --help` prints: the usage line, what each argument means
 * and every flag the command takes. Kept beside the parsers' flag lists; a test
 * checks that every flag a command parses is named in its help.
 */
const CONFIG_FLAG = "  --config FILE   the config file (default: $CAIRN_CONFIG, else ./cairn.yaml)";

export const COMMAND_HELP: Record<string, string> = {
  daemon: `Usage: cairn daemon [--config FILE]

Runs the HTTP admin API and the job and schedule workers until SIGTERM or SIGINT
(Ctrl-C), then lets running jobs finish for a grace period and exits.

${CONFIG_FLAG}`,

  backup: `Usage: cairn backup CLIENT [--label L] [--force] [--json] [--config FILE]

Backs up one client (a name under clients: in the config) in this process, records
the job in the job store and prints the backup's key.

  --label L       a label in the key: 1-40 of a-z, 0-9, _ and - (default: manual)
  --force         s3 mirror: run even when the source lost more than max_delete_percent
                  of the objects the previous run saw (the mass-delete guard)
  --json          print the finished job record as JSON, nothing else on stdout
${CONFIG_FLAG}`,

  restore:
    `Usage: cairn restore KEY [--client C] [--target T] [--yes] [--flush] [--json] [--config FILE]
                     [--table SCHEMA.TABLE ...] [--no-owner] [--keep-old]

Restores a backup (KEY as printed by cairn list) in this process. Without --target
it restores over the client itself.

  --client C      the client whose settings are used (default: the backup's own client)
  --target T      where the backup goes, by the client's kind:
                    postgres   a database name on the client's server (created if missing),
                               or a URL postgres://user:pass@host:port/db on another
                               server (the password is never stored)
                    redis      a URL, redis://[user[:pass]@]host:port[/db]
                    sqlite     a file path
                    directory  a directory path
                    s3         s3://BUCKET/PREFIX, or a local directory (absolute path)
  --yes           replace a target that is not empty (without it, cairn refuses)
  --flush         redis only: empty the target database first
  --table S.T     postgres only, repeatable: restore only these tables (schema.table;
                  double quotes around a part with a dot, quote or space) and leave
                  the rest of the target alone
  --no-owner      postgres only: restore without owners and grants (everything
                  owned by the restoring role)
  --keep-old      postgres only: keep the replaced database, renamed
                  <db>_pre_restore_<stamp>, instead of dropping it
  --json          print the finished job record as JSON, nothing else on stdout
${CONFIG_FLAG}`,

  verify: `Usage: cairn verify KEY [--json] [--config FILE]

Checks a backup: its bytes against the manifest's sha256, then its content
(postgres: a rehearsal restore with row counts; redis: the whole RDB parsed;
sqlite: integrity_check and counts; directory: file counts; s3: every object).
Exit 0 when it is sound, 1 when it is damaged, 2 when KEY does not exist.

  --json          print the finished job record as JSON, nothing else on stdout
${CONFIG_FLAG}`,

  list: `Usage: cairn list [--client C] [--json] [--config FILE]

Lists the backups in the repository, newest first.

  --client C      only this client's backups
  --json          print the list as JSON
${CONFIG_FLAG}`,

  jobs: `Usage: cairn jobs [--status S] [--client C] [--limit N] [--json] [--config FILE]

Lists jobs from the job store, newest first.

  --status S      pending, running, completed, failed or cancelled
  --client C      only this client's jobs
  --limit N       at most N jobs, 1-1000 (default: 50)
  --json          print the jobs as JSON
${CONFIG_FLAG}`,

  check: `Usage: cairn check [--read-data] [--json] [--config FILE]

Checks the repository and lists every problem: a manifest whose artifact is missing or has
another size, an artifact without a manifest, an unreadable manifest, temporary leftovers
of interrupted writes (on S3: multipart uploads unfinished for more than 24 h; younger ones
are listed as in progress), s3 mirror versions that no run refers to. Changes nothing.
Exit status: 0 clean, 1 problems found, 2 usage.

  --read-data     also read every stored byte and compare it with the manifest's sha256
  --json          print the report as JSON
${CONFIG_FLAG}`,

  status: `Usage: cairn status [--json] [--config FILE]

For each client: health (ok, overdue, failing or never), the newest successful backup,
whether that backup passed verification, and the next scheduled run.
Exit status: 0 every client is ok, 1 any is not (use it as a monitoring check), 2 usage.

  --json          print {healthy, clients} as JSON
${CONFIG_FLAG}`,

  prune: `Usage: cairn prune [--client C] [--dry-run] [--json] [--config FILE]

Applies each schedule's retention policy and deletes the backups it does not keep.
Manual backups are never pruned.

  --client C      only this client's schedules
  --dry-run       print the plan and delete nothing
  --json          print the finished job record as JSON
${CONFIG_FLAG}`,

  config: `Usage: cairn config check [--probe] [--config FILE]

Validates the config and prints the resolved values, secrets shown as ***.

  --probe         also check the repository, each tool a client needs (pg_dump,
                  pg_restore, tar) and each client: connect and authenticate to
                  PostgreSQL, Redis and S3 sources; directories and SQLite files exist
                  and are readable. One line per check; exit 1 when any fails.
${CONFIG_FLAG}`,

  store: `Usage: cairn store copy --from CONFIG|URL --to CONFIG|URL [--json]

Copies every job (history included), schedule and notification delivery from one
job store into an empty one, ids kept: from sqlite or jsonl into postgres, and back. Refuses (naming
them) while a daemon or a one-off backup, restore, verify or prune works on either store, and when the
target holds anything. Both stores stay locked for the whole copy: a daemon or job command started
meanwhile refuses with "store copy in progress"; start it again when the copy has finished.

  --from, --to    a config file (its store:), or a store URL:
                  postgres://user:password@host:5432/db, sqlite:PATH, jsonl:PATH
  --json          print what was copied as JSON`,
};
