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

  /** The request URL: path-style /bucket/key, or bucket.host/key (virtual-hosted). */
  url(bucket: string, key: string, query: string): URL {
    const basePath = this.#base.pathname.replace(/\/+$/, "");
    const host = this.#pathStyle ? this.#base.host : `${bucket}.${this.#base.host}`;
    const path = basePath + (this.#pathStyle ? `/${uriEncode(bucket, false)}` : "") +
      (key || !this.#pathStyle ? `/${uriEncode(key, true)}` : "");
    const url = new URL(`${this.#base.protocol}//${host}${path}`);
    // The URL parser resolves "." and ".." segments; a key holding them cannot be
    // addressed as written, and must not silently address another object.
    if (url.pathname !== (path || "/")) {
      throw new S3HttpError(
        "InvalidObjectName",
        `The key ${JSON.stringify(key)} cannot be requested: it holds "." or ".." segments`,
        400,
      );
    }
    url.search = query;
    return url;
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
    const url = this.url(bucket, key, query);
    for (let attempt = 1;; attempt++) {
      signal?.throwIfAborted();
      try {
        return await this.#once(method, url, query, signal);
      } catch (error) {
        if (attempt >= ATTEMPTS || !retryable(error)) throw error;
        await this.#sleep(retryDelayMs(attempt, { baseMs: RETRY_BASE_MS, maxMs: 5000 }));
      }
    }
  }

  async #once(
    method: "GET" | "HEAD",
    url: URL,
    query: string,
    signal?: AbortSignal,
  ): Promise<Response> {
    const headers = this.#signer.sign({
      method,
      host: url.host,
      // URL normalises nothing that uriEncode produced, so this is the path as sent.
      path: url.pathname,
      query,
      now: new Date(),
    });
    let response: Response;
    try {
      response = await fetch(url, { method, headers, signal });
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
