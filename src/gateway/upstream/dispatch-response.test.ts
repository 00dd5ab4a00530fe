import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { Pool } from "undici";
import { afterEach, describe, expect, it } from "vitest";
import { DispatchCall } from "./dispatch-response.js";
import { UpstreamCancel, type UpstreamResponse } from "./types.js";

let server: Server | undefined;
let pool: Pool | undefined;

async function serve(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<Pool> {
  server = createServer(handler);
  await new Promise<void>((r) => server?.listen(0, "127.0.0.1", r));
  pool = new Pool(`http://127.0.0.1:${(server.address() as AddressInfo).port}`, { connections: 2 });
  return pool;
}

afterEach(async () => {
  await pool?.destroy();
  server?.closeAllConnections();
  await new Promise((r) => server?.close(r));
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
      // Split inside a multi-byte character.
      res.write(text.subarray(0, 10_001));
      setTimeout(() => res.end(text.subarray(10_001)), 20);
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
  });
});
