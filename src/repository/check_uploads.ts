import { toError } from "../errors.ts";
import type { Problem } from "./check.ts";
import type { Repository, UnfinishedUpload } from "./repository.ts";
import { LIVE_UPLOAD_MS } from "./s3.ts";
import { partialWrites } from "./capabilities.ts";

/** What the check says about a repository's unfinished multipart uploads. */
export interface UploadFindings {
  /** Uploads older than LIVE_UPLOAD_MS (or of unknown age): temp_leftover problems. */
  problems: Problem[];
  /** Younger uploads: most likely a backup writing now, listed but not a problem. */
  in_progress: { key: string; upload_id: string; initiated_at: string | null }[];
  /** Set when the uploads could not be listed (the server does not support it). */
  note: string | null;
}

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

/**
 * Sorts unfinished uploads into leftovers and uploads in progress at `now` (epoch
 * ms). An upload is a leftover once it is older than LIVE_UPLOAD_MS, the age after
 * which the sweep aborts it; one whose server gives no initiation time is a
 * leftover too (nothing says it is live). Pure.
 */
export function sortUploads(uploads: UnfinishedUpload[], now: number): UploadFindings {
  const out: UploadFindings = { problems: [], in_progress: [], note: null };
  for (const u of uploads) {
    const at = iso(u.initiated_at);
    if (u.initiated_at !== null && now - u.initiated_at <= LIVE_UPLOAD_MS) {
      out.in_progress.push({ key: u.key, upload_id: u.upload_id, initiated_at: at });
      continue;
    }
    out.problems.push({
      kind: "temp_leftover",
      key: u.key,
      initiated_at: at,
      upload_id: u.upload_id,
      message:
        `${u.key} has an unfinished multipart upload (id ${u.upload_id}) ${
          at ? `initiated at ${at}` : "of unknown age"
        }, the leftover of an interrupted write: the daemon's sweep aborts uploads older than 24 h, ` +
        "or a bucket lifecycle rule (AbortIncompleteMultipartUpload) does",
    });
  }
  return out;
}

/**
 * The unfinished uploads of a repository that has them (S3), sorted by sortUploads.
 * A server that cannot list them (s3rver and some other S3-compatible servers
 * answer NotImplemented) gives a note, not a problem: the check cannot see them.
 */
export async function checkUploads(repo: Repository, now: number): Promise<UploadFindings> {
  const uploads = partialWrites(repo).unfinishedUploads;
  if (!uploads) return { problems: [], in_progress: [], note: null };
  try {
    return sortUploads(await uploads(), now);
  } catch (error) {
    return {
      problems: [],
      in_progress: [],
      note: `Unfinished multipart uploads were not checked: ${toError(error).message}`,
    };
  }
}
