/** One request a test receiver got. */
export interface Received {
  method: string;
  path: string;
  headers: Record<string, string>;
  body: string;
  /** The status it was answered with. */
  status: number;
}

export interface Receiver {
  url: string;
  received: Received[];
  /** Decides each answer's status (default 200); `n` counts from 1. */
  respond: (n: number, req: Received) => number;
  /** Resolves when at least `count` requests have arrived (rejects after `ms`). */
  waitFor(count: number, ms?: number): Promise<void>;
  close(): Promise<void>;
}

/** A real HTTP server on a free loopback port that records every request (webhook sink). */
export function startReceiver(): Receiver {
  const abort = new AbortController();
  let port = 0;
  const self: Receiver = {
    url: "",
    received: [],
    respond: () => 200,
    async waitFor(count, ms = 20_000) {
      const until = Date.now() + ms;
      while (self.received.length < count) {
        if (Date.now() > until) {
          throw new Error(`receiver got ${self.received.length} of ${count} requests in ${ms} ms`);
        }
        await new Promise((r) => setTimeout(r, 25));
      }
    },
    async close() {
      abort.abort();
      await server.finished;
    },
  };
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    signal: abort.signal,
    onListen: (addr) => (port = addr.port),
  }, async (req) => {
    const entry: Received = {
      method: req.method,
      path: new URL(req.url).pathname,
      headers: Object.fromEntries(req.headers),
      body: await req.text(),
      status: 0,
    };
    entry.status = self.respond(self.received.length + 1, entry);
    self.received.push(entry);
    return new Response(entry.status < 300 ? "ok" : "nope", { status: entry.status });
  });
  self.url = `http://127.0.0.1:${port}`;
  return self;
}
