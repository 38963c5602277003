/**
 * An HTTP proxy in front of the real S3 test server, for faults the server itself
 * never makes: a listing page that fails, a body held back while the object changes.
 * Requests pass through unchanged unless `intercept` answers them (s3rver does not
 * check SigV4 signatures, so a request signed for the proxy's host is served).
 */
export interface S3Proxy {
  endpoint: string;
  /** Every request seen, as "METHOD /path?query". */
  seen: string[];
  stop(): Promise<void>;
}

export type Intercept = (
  request: Request,
  url: URL,
  /** Passes the request on, to `to` (a path and query) when given. */
  forward: (to?: string) => Promise<Response>,
) => Promise<Response | null> | Response | null;

export function startS3Proxy(target: string, intercept: Intercept): Promise<S3Proxy> {
  const seen: string[] = [];
  const upstream = new URL(target);
  return new Promise((resolve) => {
    const server = Deno.serve({
      hostname: "127.0.0.1",
      port: 0,
      onListen: ({ port }) =>
        resolve({
          endpoint: `http://127.0.0.1:${port}`,
          seen,
          stop: () => server.shutdown(),
        }),
    }, async (request) => {
      const url = new URL(request.url);
      seen.push(`${request.method} ${url.pathname}${url.search}`);
      const forward = async (to = url.pathname + url.search) => {
        const response = await fetch(new URL(to, upstream), {
          method: request.method,
          headers: request.headers,
          body: request.body,
        });
        const headers = new Headers(response.headers);
        headers.delete("transfer-encoding"); // Deno.serve frames the body itself
        return new Response(response.body, { status: response.status, headers });
      };
      return await intercept(request, url, forward) ?? await forward();
    });
  });
}
