/**
 * Unfinished multipart uploads as s3rver 3.7.1 keeps them on disk: one directory
 * per upload, `<root>/<bucket>/._S3rver_uploads/<uploadId>/`, holding a `key` file
 * (written at CreateMultipartUpload, so its mtime is the upload's initiation time),
 * `metadata`, and a file per part. Read by the test server's front
 * (s3_server.ts) to answer ListMultipartUploads and AbortMultipartUpload, which
 * s3rver itself does not implement.
 */
import { join } from "node:path";

const UPLOADS_DIR = "._S3rver_uploads";

export interface StoredUpload {
  key: string;
  uploadId: string;
  initiated: Date;
}

/** Every unfinished upload of `bucket` whose key starts with `prefix`, by key then id. */
export function storedUploads(root: string, bucket: string, prefix = ""): StoredUpload[] {
  const dir = join(root, bucket, UPLOADS_DIR);
  let entries: Deno.DirEntry[];
  try {
    entries = [...Deno.readDirSync(dir)];
  } catch {
    return [];
  }
  const out: StoredUpload[] = [];
  for (const e of entries) {
    if (!e.isDirectory) continue;
    const keyFile = join(dir, e.name, "key");
    try {
      const key = Deno.readTextFileSync(keyFile);
      if (!key.startsWith(prefix)) continue;
      out.push({ key, uploadId: e.name, initiated: Deno.statSync(keyFile).mtime ?? new Date() });
    } catch { /* completed or aborted meanwhile */ }
  }
  return out.sort((a, b) =>
    a.key < b.key ? -1 : a.key > b.key ? 1 : a.uploadId < b.uploadId ? -1 : 1
  );
}

const xmlText = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

/**
 * The ListMultipartUploadsResult document (AWS S3 API reference,
 * ListMultipartUploads), all uploads in one page.
 */
export function listUploadsXml(root: string, bucket: string, prefix: string): string {
  const uploads = storedUploads(root, bucket, prefix).map((u) =>
    `<Upload><Key>${xmlText(u.key)}</Key><UploadId>${u.uploadId}</UploadId>` +
    `<Initiated>${u.initiated.toISOString()}</Initiated><StorageClass>STANDARD</StorageClass></Upload>`
  ).join("");
  return `<?xml version="1.0" encoding="UTF-8"?><ListMultipartUploadsResult ` +
    `xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Bucket>${xmlText(bucket)}</Bucket>` +
    `<KeyMarker></KeyMarker><UploadIdMarker></UploadIdMarker><Prefix>${
      xmlText(prefix)
    }</Prefix><MaxUploads>1000</MaxUploads><IsTruncated>false</IsTruncated>${uploads}` +
    `</ListMultipartUploadsResult>`;
}

/** Removes an unfinished upload as AbortMultipartUpload does; false when there is none. */
export function abortUpload(root: string, bucket: string, key: string, uploadId: string): boolean {
  if (!/^[0-9a-f]+$/.test(uploadId)) return false;
  const dir = join(root, bucket, UPLOADS_DIR, uploadId);
  try {
    if (Deno.readTextFileSync(join(dir, "key")) !== key) return false;
    Deno.removeSync(dir, { recursive: true });
    return true;
  } catch {
    return false;
  }
}
