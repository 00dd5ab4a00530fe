import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { type AddressInfo, createServer as createTcpServer } from "node:net";
import { Pool } from "undici";
import { afterEach, describe, expect, it } from "vitest";
import { DispatchCall } from "./dispatch-response.js";
import { createOpenAIClient } from "./openai-client.js";
import { UpstreamCancel, type UpstreamResponse } from "./types.js";

let server: Server | undefined;
let pool: Pool | undefined;

async function serve(
  handler: (req: IncomingMessage, res: ServerResponse) => void,
  options: Pool.Options = {},
): Promise<Pool> {
  server = createServer(handler);
  await new Promise<void>((r) => server?.listen(0, "127.0.0.1", r));
  pool = new Pool(`http://127.0.0.1:${(server.address() as AddressInfo).port}`, {
    connections: 2,
    ...options,
  });
  return pool;
}

afterEach(async () => {
  await pool?.destroy();
  const s = server;
  if (s) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
  server = undefined;
  pool = undefined;
});

function call(p: Pool, cancel = new UpstreamCancel(), body = "{}"): Promise<UpstreamResponse> {
  return new Promise((resolve, reject) => {
    p.dispatch({ path: "/", method: "POST", body }, new DispatchCall(cancel, { resolve, reject }));
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("DispatchCall (undici dispatch handler behind the gateway's upstream client)", () => {
  it("answers status, lower-case headers (repeated ones joined) and the whole text, multi-byte characters split across chunks included", async () => {
    const p = await serve((req, res) => {
      res.setHeader("Set-Cookie", ["a=1", "b=2"]);
      res.setHeader("Content-Type", "application/json");
      res.writeHead(201);
      const text = Buffer.from(`{"echo":${JSON.stringify("é€😀".repeat(3000))}}`);
      // Split inside a multi-byte character: 9 bytes of `{"echo":"`, 9 per repeat (é 2, € 3, 😀 4),
      // then 3 bytes into a repeat = the second byte of a €.
      const split = 9 + 9 * 1000 + 3;
      expect(text.subarray(0, split).toString("utf8").endsWith("\ufffd")).toBe(true);
      res.write(text.subarray(0, split));
      setTimeout(() => res.end(text.subarray(split)), 20);
      req.resume();
    });
    const r = await call(p);
    expect(r.status).toBe(201);
    expect(r.headers["content-type"]).toBe("application/json");
    expect(r.headers["set-cookie"]).toBe("a=1, b=2");
    expect(JSON.parse(await r.text())).toEqual({ echo: "é€😀".repeat(3000) });
  });

  it("hands a streamed answer over chunk by chunk, before the upstream has finished", async () => {
    let finish: (() => void) | undefined;
    const p = await serve((_req, res) => {
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.write("data: one\n\n");
      finish = () => res.end("data: two\n\n");
    });
    const r = await call(p);
    const it = r.body[Symbol.asyncIterator]();
    const first = await it.next();
    expect(String(first.value)).toBe("data: one\n\n");
    finish?.();
    const rest: string[] = [];
    for (let x = await it.next(); !x.done; x = await it.next()) rest.push(String(x.value));
    expect(rest.join("")).toBe("data: two\n\n");
  });

  it("pauses the upstream while nobody reads (the answer is not gathered in memory), then delivers every byte", async () => {
    const total = 64 * 1024 * 1024;
    const piece = Buffer.alloc(256 * 1024, 120);
    let flushed = 0;
    const p = await serve((_req, res) => {
      res.writeHead(200, { "content-length": String(total) });
      const pump = () => {
        while (flushed < total) {
          flushed += piece.length;
          if (!res.write(piece)) return void res.once("drain", pump);
        }
        res.end();
      };
      pump();
    });
    const r = await call(p);
    await sleep(300);
    // Without the pause undici would have read the whole 64 MiB off the loopback by now; with it the
    // server is stuck at what the kernel's socket buffers hold (a few MiB).
    expect(flushed).toBeLessThan(total / 2);
    let got = 0;
    for await (const c of r.body) got += c.length;
    expect(got).toBe(total);
  });

  it("a reader that stops early aborts the call (the upstream sees its request cut)", async () => {
    let cut: Promise<boolean> | undefined;
    const p = await serve((_req, res) => {
      res.writeHead(200);
      res.write("data: one\n\n");
      cut = new Promise((r) => res.on("close", () => r(!res.writableFinished)));
    });
    const cancel = new UpstreamCancel();
    const r = await call(p, cancel);
    for await (const _ of r.body) break;
    expect(await cut).toBe(true);
    expect(cancel.listenerCount("abort")).toBe(0);
  });

  it("a cancel before the answer's headers rejects the call with its reason", async () => {
    const p = await serve(() => {
      // never answers
    });
    const cancel = new UpstreamCancel();
    const pending = call(p, cancel);
    setTimeout(() => cancel.abort(new Error("client disconnected")), 30);
    await expect(pending).rejects.toThrow("client disconnected");
    expect(cancel.listenerCount("abort")).toBe(0);
  });

  it("a cancel made before the call reached the socket stops it too", async () => {
    let reached = false;
    const p = await serve((_req, res) => {
      reached = true;
      res.end("{}");
    });
    const cancel = new UpstreamCancel();
    cancel.abort(new Error("upstream timed out"));
    await expect(call(p, cancel)).rejects.toThrow("upstream timed out");
    expect(reached).toBe(false);
  });

  it("a cancel mid-answer ends the reader with its reason", async () => {
    const p = await serve((_req, res) => {
      res.writeHead(200);
      res.write("data: one\n\n");
    });
    const cancel = new UpstreamCancel();
    const r = await call(p, cancel);
    const seen: string[] = [];
    const reading = (async () => {
      for await (const c of r.body) {
        seen.push(String(c));
        cancel.abort(new Error("upstream timed out"));
      }
    })();
    await expect(reading).rejects.toThrow("upstream timed out");
    expect(seen).toEqual(["data: one\n\n"]);
    expect(cancel.listenerCount("abort")).toBe(0);
  });

  it("an answer cut after its headers fails text() and leaves no listener on the cancel", async () => {
    const p = await serve((_req, res) => {
      res.writeHead(200, { "content-length": "1000" });
      res.write('{"partial":');
      setTimeout(() => res.socket?.destroy(), 20);
    });
    const cancel = new UpstreamCancel();
    const r = await call(p, cancel);
    await expect(r.text()).rejects.toThrow();
    expect(cancel.listenerCount("abort")).toBe(0);
  });

  it("an answer is read one way only", async () => {
    const p = await serve((_req, res) => res.end("{}"));
    const r = await call(p);
    expect(await r.text()).toBe("{}");
    expect(() => r.body[Symbol.asyncIterator]()).toThrow("read only once");
    await expect(r.text()).rejects.toThrow("read only once");
  });

  it("text() called after the upstream was paused (nobody read yet) resumes it and gets every byte", async () => {
    const whole = "é€😀".repeat(50_000); // 450 KB, well past the pause threshold
    const p = await serve((req, res) => {
      res.writeHead(200);
      res.end(whole);
      req.resume();
    });
    const r = await call(p);
    await sleep(100);
    expect(await r.text()).toBe(whole);
  });

  it("skips a 1xx informational answer: the status and headers are the final answer's", async () => {
    const p = await serve((req, res) => {
      res.writeEarlyHints({ link: "</a>; rel=preload" });
      setTimeout(() => {
        res.setHeader("content-type", "application/json");
        res.end('{"ok":1}');
      }, 10);
      req.resume();
    });
    const r = await call(p);
    expect(r.status).toBe(200);
    expect(r.headers.link).toBeUndefined();
    expect(await r.text()).toBe('{"ok":1}');
  });

  it("keeps undici's timeout codes (the gateway answers 504 on them)", async () => {
    const p = await serve(
      (req, res) => {
        req.resume();
        if (req.url === "/body") {
          res.writeHead(200, { "content-length": "100" });
          res.write("{");
        } // "/" never answers
      },
      { headersTimeout: 100, bodyTimeout: 100 },
    );
    await expect(call(p)).rejects.toMatchObject({ code: "UND_ERR_HEADERS_TIMEOUT" });
    const r = await new Promise<UpstreamResponse>((resolve, reject) => {
      p.dispatch(
        { path: "/body", method: "POST", body: "{}" },
        new DispatchCall(new UpstreamCancel(), { resolve, reject }),
      );
    });
    await expect(r.text()).rejects.toMatchObject({ code: "UND_ERR_BODY_TIMEOUT" });
  });

  it("refuses overlapping next() calls instead of losing one", async () => {
    const p = await serve((_req, res) => {
      res.writeHead(200);
      res.write("a");
    });
    const r = await call(p);
    const it = r.body[Symbol.asyncIterator]();
    expect(String((await it.next()).value)).toBe("a");
    const waiting = it.next();
    await expect(it.next()).rejects.toThrow("one next() at a time");
    await it.return?.();
    await expect(waiting).resolves.toEqual({ done: true, value: undefined });
  });

  it("a cancel while the call waits for a pooled connection rejects it at once", async () => {
    const p = await serve(
      () => {
        // never answers: the one connection stays busy
      },
      { connections: 1 },
    );
    const busy = call(p).catch(() => undefined);
    const cancel = new UpstreamCancel();
    const queued = call(p, cancel);
    await sleep(30);
    const t = performance.now();
    cancel.abort(new Error("client disconnected"));
    await expect(queued).rejects.toThrow("client disconnected");
    expect(performance.now() - t).toBeLessThan(1000);
    expect(cancel.listenerCount("abort")).toBe(0);
    await p.destroy();
    await busy;
  });

  it("an answer that ends with its connection is read by a slow reader without crashing undici", async () => {
    // undici 7 asserts (uncatchably) when such a connection ends while paused: nodejs/undici#5360.
    const tcp = createTcpServer((sock) => {
      sock.once("data", () => {
        sock.write("HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-type: text/event-stream\r\n\r\n");
        sock.end(Buffer.alloc(300_000, 97));
      });
    });
    await new Promise<void>((r) => tcp.listen(0, "127.0.0.1", r));
    const p = new Pool(`http://127.0.0.1:${(tcp.address() as AddressInfo).port}`);
    try {
      const r = await call(p);
      let got = 0;
      for await (const c of r.body) {
        got += c.length;
        await sleep(2);
      }
      expect(got).toBe(300_000);
    } finally {
      await p.destroy();
      await new Promise((r) => tcp.close(r));
    }
  });
});

describe("createOpenAIClient", () => {
  it("does not send a call whose cancel has already fired (and keeps its pooled connection)", async () => {
    let requests = 0;
    let connections = 0;
    server = createServer((req, res) => {
      requests++;
      req.resume();
      res.end("{}");
    });
    server.on("connection", () => connections++);
    await new Promise<void>((r) => server?.listen(0, "127.0.0.1", r));
    const client = createOpenAIClient({
      name: "up",
      baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`,
      timeoutMs: 5000,
      connections: 1,
    });
    try {
      await (await client.send({ body: {}, cancel: new UpstreamCancel() })).text();
      const gone = new UpstreamCancel();
      gone.abort(new Error("client disconnected"));
      await expect(client.send({ body: {}, cancel: gone })).rejects.toThrow("client disconnected");
      await (await client.send({ body: {}, cancel: new UpstreamCancel() })).text();
      expect(requests).toBe(2);
      expect(connections).toBe(1);
    } finally {
      await client.close();
    }
  });
});
