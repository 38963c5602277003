/**
 * A TCP proxy in front of a real server that can be cut: after cut() no byte passes
 * in either direction and the sockets stay open, as in a network partition (the
 * peers see silence, not a reset).
 */
export interface TcpProxy {
  port: number;
  cut(): void;
  stop(): Promise<void>;
}

export function startTcpProxy(targetPort: number, targetHost = "127.0.0.1"): TcpProxy {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns = new Set<Deno.Conn>();
  let isCut = false;
  const never = new Promise<never>(() => {});
  const forward = async (from: Deno.Conn, to: Deno.Conn) => {
    const buf = new Uint8Array(64 * 1024);
    try {
      for (;;) {
        const n = await from.read(buf);
        if (n === null) break;
        if (isCut) await never; // silence from now on: the data is neither passed nor refused
        let off = 0;
        while (off < n) off += await to.write(buf.subarray(off, n));
      }
    } catch { /* a side closed */ }
    if (!isCut) {
      try {
        to.close();
      } catch { /* closed */ }
    }
  };
  const accepting = (async () => {
    for await (const client of listener) {
      if (isCut) {
        conns.add(client); // accepted but never answered, as a partitioned server
        continue;
      }
      try {
        const server = await Deno.connect({ hostname: targetHost, port: targetPort });
        conns.add(client);
        conns.add(server);
        void forward(client, server);
        void forward(server, client);
      } catch {
        client.close();
      }
    }
  })();
  return {
    port: (listener.addr as Deno.NetAddr).port,
    cut() {
      isCut = true;
    },
    async stop() {
      listener.close();
      for (const c of conns) {
        try {
          c.close();
        } catch { /* closed */ }
      }
      await accepting.catch(() => {});
    },
  };
}
