/**
 * Messages from libpq and the server (as pg_dump / pg_restore print them) that no
 * retry can fix until someone acts: a missing privilege, role or database, refused
 * credentials. Sources: PostgreSQL error texts for SQLSTATE 42501
 * (insufficient_privilege), 28P01 / 28000 (authentication), 3D000 (invalid catalog
 * name), 42704 (undefined object: a role).
 */
const PERMANENT = [
  /permission denied for /i,
  /must be owner of /i,
  /role "[^"]*" does not exist/i,
  /database "[^"]*" does not exist/i,
  /password authentication failed/i,
  /no pg_hba\.conf entry/i,
  /server version mismatch|aborting because of server version mismatch/i,
];

/** Whether a tool's stderr says the failure is permanent (see PERMANENT), not passing. */
export function isPermanentToolFailure(stderr: string): boolean {
  return PERMANENT.some((re) => re.test(stderr));
}
