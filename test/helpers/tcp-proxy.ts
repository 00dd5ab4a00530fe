import { connect, createServer, type Server, type Socket } from "node:net";

/** A command as the proxy saw it go to the server: its name (upper case) and first argument. */
export interface ProxiedCommand {
  name: string;
  /** The first argument (for EVALSHA the script's SHA1, for EVAL its source), if any. */
  arg: string | undefined;
}

/**
 * A loopback TCP proxy in front of a Redis server that can lose replies the way a network does: the
 * command reaches the server and runs, its reply never comes back, and the connection drops.
 * It reads the RESP protocol in both directions, so it knows which command each reply answers and
 * can lose the reply of a chosen command (say, a batched reservation), not just whatever comes next.
 * Replies before the lost one are delivered; the lost one and everything after it on that
 * connection are not.
 */
export interface FaultProxy {
  url: string;
  port: number;
  /**
   * The reply to the next command matching `match` (default: any command) that the server ran is
   * lost; one loss armed at a time. Error replies (say NOSCRIPT, for a command that did not run) are
   * delivered and the loss stays armed: the client's retry (EVAL) is the next candidate.
   */
  loseReplyTo(match?: (cmd: ProxiedCommand) => boolean): void;
  /** Same as `loseReplyTo()`: the next reply that is not an error, whatever it answers. */
  loseNextReply(): void;
  /** True while a loss is armed and has not happened yet. */
  readonly armed: boolean;
  /** Replies lost so far. */
  readonly lostReplies: number;
  /** The commands whose replies were lost, in order. */
  readonly lost: readonly ProxiedCommand[];
  close(): Promise<void>;
}

const CR = 0x0d;

/** Index of the CR of the line starting at `pos`, or -1 when the line is not complete yet. */
function lineEnd(buf: Buffer, pos: number): number {
  const i = buf.indexOf(CR, pos);
  return i >= 0 && i + 1 < buf.length ? i : -1;
}

/**
 * The end (exclusive) of the RESP2/RESP3 reply starting at `pos`, or -1 when `buf` does not hold all
 * of it. Line types: + - : _ # , ( ; length-prefixed: $ ! = (-1 = null); aggregates: * ~ > (n
 * replies), % | (n pairs; an attribute | is followed by the reply it annotates).
 */
export function replyEnd(buf: Buffer, pos: number): number {
  if (pos >= buf.length) return -1;
  const type = String.fromCharCode(buf[pos] as number);
  const e = lineEnd(buf, pos);
  if (e < 0) return -1;
  const next = e + 2;
  if ("+-:_#,(".includes(type)) return next;
  const n = Number(buf.toString("latin1", pos + 1, e));
  if ("$!=".includes(type)) {
    if (n < 0) return next;
    const end = next + n + 2;
    return end <= buf.length ? end : -1;
  }
  if ("*~>%|".includes(type)) {
    const items = n < 0 ? 0 : type === "%" || type === "|" ? 2 * n : n;
    let p = next;
    for (let i = 0; i < items; i++) {
      p = replyEnd(buf, p);
      if (p < 0) return -1;
    }
    return type === "|" ? replyEnd(buf, p) : p;
  }
  throw new Error(`the fault proxy cannot read a reply starting with ${JSON.stringify(type)}`);
}

/**
 * The commands (RESP arrays of bulk strings, as every client sends them) complete in `buf` from
 * `pos`: each one's name and first argument, and where the first incomplete one starts.
 */
export function parseCommands(buf: Buffer, pos: number): { commands: ProxiedCommand[]; rest: number } {
  const commands: ProxiedCommand[] = [];
  for (;;) {
    if (pos >= buf.length) return { commands, rest: pos };
    if (buf[pos] !== 0x2a) throw new Error("the fault proxy only reads commands sent as RESP arrays");
    const e = lineEnd(buf, pos);
    if (e < 0) return { commands, rest: pos };
    const n = Number(buf.toString("latin1", pos + 1, e));
    let p = e + 2;
    const parts: string[] = [];
    let complete = true;
    for (let i = 0; i < n; i++) {
      const le = lineEnd(buf, p);
      if (le < 0 || buf[p] !== 0x24) {
        complete = false;
        break;
      }
      const len = Number(buf.toString("latin1", p + 1, le));
      const start = le + 2;
      if (start + len + 2 > buf.length) {
        complete = false;
        break;
      }
      if (i < 2) parts.push(buf.toString("utf8", start, start + len));
      p = start + len + 2;
    }
    if (!complete) return { commands, rest: pos };
    commands.push({ name: (parts[0] ?? "").toUpperCase(), arg: parts[1] });
    pos = p;
  }
}

/** Starts a proxy on a free 127.0.0.1 port forwarding to `targetPort` on 127.0.0.1. */
export async function startFaultProxy(targetPort: number): Promise<FaultProxy> {
  let target: ((cmd: ProxiedCommand) => boolean) | undefined;
  const lost: ProxiedCommand[] = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = connect({ host: "127.0.0.1", port: targetPort });
    sockets.add(client);
    sockets.add(upstream);
    /** Commands sent on this connection whose replies have not come back yet, in order. */
    const waiting: ProxiedCommand[] = [];
    let fromClient: Buffer = Buffer.alloc(0);
    let fromServer: Buffer = Buffer.alloc(0);
    let cut = false;
    const cleanup = () => {
      cut = true;
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on("data", (d: Buffer) => {
      if (cut) return;
      fromClient = fromClient.length ? Buffer.concat([fromClient, d]) : d;
      const { commands, rest } = parseCommands(fromClient, 0);
      waiting.push(...commands);
      fromClient = fromClient.subarray(rest);
      upstream.write(d);
    });
    upstream.on("data", (d: Buffer) => {
      if (cut) return;
      fromServer = fromServer.length ? Buffer.concat([fromServer, d]) : d;
      let pos = 0;
      for (;;) {
        const end = replyEnd(fromServer, pos);
        if (end < 0) break;
        if (fromServer[pos] === 0x3e) {
          // A RESP3 push (">") answers no command: delivered as is.
          pos = end;
          continue;
        }
        const cmd = waiting.shift() ?? { name: "?", arg: undefined };
        const isError = fromServer[pos] === 0x2d || fromServer[pos] === 0x21; // "-" or RESP3 "!"
        if (!isError && target?.(cmd)) {
          // The server ran the command; its reply is lost and the connection drops, as on a network
          // failure. Replies already complete before it were delivered.
          target = undefined;
          lost.push(cmd);
          if (pos > 0) client.write(fromServer.subarray(0, pos));
          cleanup();
          return;
        }
        pos = end;
      }
      if (pos > 0) client.write(fromServer.subarray(0, pos));
      fromServer = fromServer.subarray(pos);
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
    loseReplyTo(match = () => true) {
      target = match;
    },
    loseNextReply() {
      target = () => true;
    },
    get armed() {
      return target !== undefined;
    },
    get lostReplies() {
      return lost.length;
    },
    get lost() {
      return lost;
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
