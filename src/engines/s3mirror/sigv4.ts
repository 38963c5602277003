import { createHash, createHmac } from "node:crypto";

/**
 * AWS Signature Version 4 for S3 requests without a body (GET, HEAD), as the
 * Authorization header. Pure apart from the injected clock. The mirror's source
 * side signs its own requests because the SDK's middleware stack cost more CPU per
 * small object than the copy itself.
 * https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html
 */

export const EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

export interface Credentials {
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
}

/** RFC 3986 encoding as S3 expects it: every byte but the unreserved ones, as %XX. */
export function uriEncode(value: string, keepSlash: boolean): string {
  // encodeURIComponent leaves five more characters than RFC 3986's unreserved set.
  const encoded = encodeURIComponent(value).replace(
    /[!'()*]/g,
    (c) => "%" + c.charCodeAt(0).toString(16).toUpperCase(),
  );
  return keepSlash ? encoded.replaceAll("%2F", "/") : encoded;
}

/** Query parameters sorted by name, both sides encoded (the canonical and the sent form). */
export function canonicalQuery(params: Record<string, string | undefined>): string {
  return Object.entries(params)
    .filter((e): e is [string, string] => e[1] !== undefined)
    .map(([k, v]) => [uriEncode(k, false), uriEncode(v, false)])
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join("&");
}

/** 20130524T000000Z */
export function amzDate(now: Date): string {
  return now.toISOString().replace(/[-:]/g, "").replace(/\.\d{3}/, "");
}

export interface SignInput {
  method: string;
  /** Host header value as sent: host, plus ":port" when the port is not the scheme's default. */
  host: string;
  /** The already encoded path, as it goes on the request line. */
  path: string;
  /** The already canonical query string (canonicalQuery). */
  query: string;
  /** Further headers to sign (lower-case names). */
  headers?: Record<string, string>;
  payloadHash?: string;
  now: Date;
}

/**
 * Signs a request with one key per day, derived once and reused: a mirror run
 * signs thousands of requests with the same date, region and service.
 */
export class Signer {
  readonly #credentials: Credentials;
  #keyDay = "";
  #key: Buffer | null = null;

  constructor(credentials: Credentials) {
    this.#credentials = credentials;
  }

  #signingKey(day: string): Buffer {
    if (this.#key && this.#keyDay === day) return this.#key;
    const hmac = (key: string | Buffer, data: string) =>
      createHmac("sha256", key).update(data).digest();
    const dateKey = hmac("AWS4" + this.#credentials.secretAccessKey, day);
    this.#key = hmac(hmac(hmac(dateKey, this.#credentials.region), "s3"), "aws4_request");
    this.#keyDay = day;
    return this.#key;
  }

  /** The headers to send: x-amz-date, x-amz-content-sha256 and Authorization. */
  sign(input: SignInput): Record<string, string> {
    const date = amzDate(input.now);
    const day = date.slice(0, 8);
    const payloadHash = input.payloadHash ?? EMPTY_SHA256;
    const all: Record<string, string> = {
      ...input.headers,
      host: input.host,
      "x-amz-content-sha256": payloadHash,
      "x-amz-date": date,
    };
    const names = Object.keys(all).map((n) => n.toLowerCase()).sort();
    const lower = Object.fromEntries(
      Object.entries(all).map(([k, v]) => [k.toLowerCase(), v.trim().replace(/\s+/g, " ")]),
    );
    const signedHeaders = names.join(";");
    const canonical = [
      input.method,
      input.path,
      input.query,
      names.map((n) => `${n}:${lower[n]}\n`).join(""),
      signedHeaders,
      payloadHash,
    ].join("\n");
    const scope = `${day}/${this.#credentials.region}/s3/aws4_request`;
    const toSign = [
      "AWS4-HMAC-SHA256",
      date,
      scope,
      createHash("sha256").update(canonical).digest("hex"),
    ].join("\n");
    const signature = createHmac("sha256", this.#signingKey(day)).update(toSign).digest("hex");
    const { host: _host, ...send } = all;
    return {
      ...send,
      authorization:
        `AWS4-HMAC-SHA256 Credential=${this.#credentials.accessKeyId}/${scope}, SignedHeaders=${signedHeaders}, Signature=${signature}`,
    };
  }
}
