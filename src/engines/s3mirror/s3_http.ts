import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import { Readable } from "node:stream";
import { retryDelayMs } from "../../jobs/backoff.ts";
import { canonicalQuery, Signer, uriEncode } from "./sigv4.ts";
import { parseErrorBody } from "./s3_xml.ts";

/**
 * A failed S3 request, shaped like the SDK's service errors (name = S3's error code,
 * $metadata.httpStatusCode) so that one classifier (classifyS3) reads both.
 */
export class S3HttpError extends Error {
  readonly $metadata: { httpStatusCode?: number };
  readonly code?: string;

  constructor(
    name: string,
    message: string,
    status?: number,
    options?: { cause?: unknown; code?: string },
  ) {
    super(message, { cause: options?.cause });
    this.name = name;
    this.$metadata = { httpStatusCode: status };
    this.code = options?.code;
  }
}

export interface S3Endpoint {
  endpoint: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  forcePathStyle: boolean;
}

const ATTEMPTS = 5;
const RETRY_BASE_MS = 100;
/** Codes S3 documents as "try again" even when the status says otherwise. */
const TRANSIENT_CODES = /^(SlowDown|InternalError|RequestTimeout|ServiceUnavailable|Throttling)$/;

function retryable(error: unknown): boolean {
  if (!(error instanceof S3HttpError)) return false;
  const status = error.$metadata.httpStatusCode;
  if (status === undefined) return error.name === "NetworkError";
  return status >= 500 || status === 429 || TRANSIENT_CODES.test(error.name);
}

/** fetch's network failures carry the OS reason deep in the message; keep the part that helps. */
function networkError(error: unknown, url: URL): S3HttpError {
  // Deno's fetch says "fetch failed"; the reason is in the cause chain.
  const parts: string[] = [];
  for (let e: unknown = error; e && parts.length < 4; e = (e as Error).cause) {
    parts.push(String((e as Error).message ?? e));
  }
  const text = parts.join(": ");
  const refused = /connection refused/i.test(text);
  const reason = refused
    ? "connection refused"
    : /dns|lookup|resolve/i.test(text)
    ? "the host name does not resolve"
    : /timed? ?out/i.test(text)
    ? "timed out"
    : /reset/i.test(text)
    ? "connection reset"
    : parts[parts.length - 1];
  return new S3HttpError("NetworkError", `${url.origin}: ${reason}`, undefined, {
    cause: error,
    code: refused ? "ECONNREFUSED" : undefined,
  });
}

/**
 * One request whose path holds `.` or `..` segments, sent as written. S3 keys may
 * hold them (`a/../b` is a key of its own), but fetch() resolves them as the URL
 * standard says (`/bucket/a/../b` becomes `/bucket/b`: another object). node:http
 * sends the path it is given; the SDK reaches S3 the same way.
 */
function sendAsWritten(
  url: URL,
  path: string,
  method: "GET" | "HEAD",
  headers: Record<string, string>,
  signal?: AbortSignal,
): Promise<Response> {
  const send = url.protocol === "https:" ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const request = send({
      protocol: url.protocol,
      hostname: url.hostname.replace(/^\[|\]$/g, ""),
      port: url.port || undefined,
      path: path + url.search,
      method,
      headers: { ...headers, host: url.host },
      signal,
    }, (response) => {
      const received = new Headers();
      for (const [name, value] of Object.entries(response.headers)) {
        if (value !== undefined) {
          received.set(name, Array.isArray(value) ? value.join(", ") : value);
        }
      }
      const status = response.statusCode ?? 502;
      const empty = method === "HEAD" || status === 204 || status === 304;
      if (empty) response.resume();
      resolve(
        new Response(
          empty ? null : Readable.toWeb(response) as unknown as ReadableStream<Uint8Array>,
          { status, statusText: response.statusMessage, headers: received },
        ),
      );
    });
    request.on("error", reject);
    request.end();
  });
}

/**
 * GET and HEAD requests to one S3-compatible endpoint over the runtime's fetch,
 * signed with SigV4 and retried with backoff on network failures, 5xx, 429 and
 * SlowDown. An error status comes back as an S3HttpError with S3's code as its name.
 */
export class S3Http {
  readonly #base: URL;
  readonly #signer: Signer;
  readonly #pathStyle: boolean;
  readonly #sleep: (ms: number) => Promise<void>;

  constructor(config: S3Endpoint, sleep?: (ms: number) => Promise<void>) {
    this.#base = new URL(config.endpoint);
    this.#signer = new Signer({
      accessKeyId: config.accessKeyId,
      secretAccessKey: config.secretAccessKey,
      region: config.region,
    });
    this.#pathStyle = config.forcePathStyle;
    this.#sleep = sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms)));
  }

  /**
   * The request URL: path-style /bucket/key, or bucket.host/key (virtual-hosted).
   * For a key with `.` or `..` segments the URL parser has resolved them: `path` is
   * what must be sent (and signed) instead (see sendAsWritten).
   */
  target(bucket: string, key: string, query: string): { url: URL; path: string } {
    const basePath = this.#base.pathname.replace(/\/+$/, "");
    const host = this.#pathStyle ? this.#base.host : `${bucket}.${this.#base.host}`;
    const path = basePath + (this.#pathStyle ? `/${uriEncode(bucket, false)}` : "") +
      (key || !this.#pathStyle ? `/${uriEncode(key, true)}` : "");
    const url = new URL(`${this.#base.protocol}//${host}${path}`);
    url.search = query;
    return { url, path: path || "/" };
  }

  url(bucket: string, key: string, query: string): URL {
    return this.target(bucket, key, query).url;
  }

  /**
   * A successful response (2xx), its body unread; anything else throws. The body of
   * an error response is read for S3's code and message.
   */
  async request(
    method: "GET" | "HEAD",
    bucket: string,
    key: string,
    params: Record<string, string | undefined> = {},
    signal?: AbortSignal,
  ): Promise<Response> {
    const query = canonicalQuery(params);
    const { url, path } = this.target(bucket, key, query);
    for (let attempt = 1;; attempt++) {
      signal?.throwIfAborted();
      try {
        return await this.#once(method, url, path, query, signal);
      } catch (error) {
        if (attempt >= ATTEMPTS || !retryable(error)) throw error;
        await this.#sleep(retryDelayMs(attempt, { baseMs: RETRY_BASE_MS, maxMs: 5000 }));
      }
    }
  }

  async #once(
    method: "GET" | "HEAD",
    url: URL,
    path: string,
    query: string,
    signal?: AbortSignal,
  ): Promise<Response> {
    const headers = this.#signer.sign({
      method,
      host: url.host,
      // uriEncode's output is sent as it is (fetch alters none of it but dot segments).
      path,
      query,
      now: new Date(),
    });
    let response: Response;
    try {
      response = url.pathname === path
        ? await fetch(url, { method, headers, signal })
        : await sendAsWritten(url, path, method, headers, signal);
    } catch (error) {
      if ((error as Error)?.name === "AbortError") throw error;
      throw networkError(error, url);
    }
    if (response.ok) return response;
    const body = method === "HEAD"
      ? await response.body?.cancel().then(() => "", () => "") ?? ""
      : await response.text().catch(() => "");
    const { code, message } = parseErrorBody(body);
    // A HEAD reply has no body; like the SDK, name it by its status when it is a 404.
    const name = code ?? (response.status === 404 ? "NotFound" : "Unknown");
    throw new S3HttpError(
      name,
      message ?? `HTTP ${response.status} ${response.statusText}`.trim(),
      response.status,
    );
  }
}
