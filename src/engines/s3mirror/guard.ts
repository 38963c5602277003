import { CairnError } from "../../errors.ts";

/** What the mass-delete guard decides for one run. Pure: no I/O. */
export interface MassDelete {
  /** Keys the previous run saw in the source. */
  previous: number;
  /** Of those, the ones this run's listing no longer holds. */
  deleted: number;
  /** deleted / previous, in percent (0 when there was no previous object). */
  percent: number;
  /** True when the run must stop before it removes or marks anything. */
  refused: boolean;
}

/**
 * The mass-delete guard: a listing that would mark more than `maxPercent` of the
 * previous run's objects deleted is refused (an emptied or wrongly configured source
 * bucket looks exactly like that; compare rclone's opt-in `--max-delete`). Exactly
 * `maxPercent` passes; 100 never refuses; `force` lets one job through.
 */
export function massDelete(
  previous: ReadonlySet<string>,
  listed: { has(key: string): boolean },
  maxPercent: number,
  force: boolean,
): MassDelete {
  let deleted = 0;
  for (const key of previous) if (!listed.has(key)) deleted++;
  const percent = previous.size ? (deleted * 100) / previous.size : 0;
  // Compared in integers: 51 of 100 is over 50, 50 of 100 is not, whatever floats do.
  const refused = !force && maxPercent < 100 && deleted * 100 > maxPercent * previous.size;
  return { previous: previous.size, deleted, percent, refused };
}

/**
 * Throws SOURCE_REFUSED (not retried: the source will say the same) naming the
 * counts and the two ways on, when massDelete refuses the run.
 */
export function checkMassDelete(
  previous: ReadonlySet<string>,
  listed: { has(key: string): boolean },
  client: { bucket: string; endpoint: string; max_delete_percent: number },
  clientName: string,
  force: boolean,
): MassDelete {
  const d = massDelete(previous, listed, client.max_delete_percent, force);
  if (d.refused) {
    throw new CairnError(
      "SOURCE_REFUSED",
      `The listing of s3://${client.bucket} at ${client.endpoint} no longer holds ${d.deleted} of the ${d.previous} objects the previous run saw (${
        d.percent.toFixed(1)
      }%), more than max_delete_percent (${client.max_delete_percent}%): nothing was removed or marked deleted. ` +
        `Check the bucket, prefixes and credentials. If the objects were deleted on purpose, run this one backup with force ` +
        `(cairn backup ${clientName} --force, or POST /admin/backups with "force": true), ` +
        `or raise max_delete_percent for the client (100 turns the guard off).`,
      {
        details: {
          previous_objects: d.previous,
          deleted_objects: d.deleted,
          max_delete_percent: client.max_delete_percent,
        },
      },
    );
  }
  return d;
}
