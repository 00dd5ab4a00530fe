import { connect, createServer, type Server, type Socket } from "node:net";

/** A loopback TCP proxy that can lose replies: the command reaches the server, its answer never returns. */
export interface FaultProxy {
  url: string;
  port: number;
  /** The next reply from the server is dropped and the client connection is cut (the command ran). */
  loseNextReply(): void;
  /** Replies dropped so far. */
  readonly lostReplies: number;
  close(): Promise<void>;
}

/** Starts a proxy on a free 127.0.0.1 port forwarding to `targetPort`. */
export async function startFaultProxy(targetPort: number): Promise<FaultProxy> {
  let loseNext = false;
  let lost = 0;
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = connect({ host: "127.0.0.1", port: targetPort });
    sockets.add(client);
    sockets.add(upstream);
    const cleanup = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on("data", (d) => upstream.write(d));
    upstream.on("data", (d) => {
      if (loseNext) {
        // The server executed the command; the client never hears back and its connection drops.
        loseNext = false;
        lost++;
        cleanup();
        return;
      }
      client.write(d);
    });
    client.on("error", cleanup);
    upstream.on("error", cleanup);
    client.on("close", cleanup);
    upstream.on("close", cleanup);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const addr = server.address();
  const port = typeof addr === "object" && addr ? addr.port : 0;
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    loseNextReply() {
      loseNext = true;
    },
    get lostReplies() {
      return lost;
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
