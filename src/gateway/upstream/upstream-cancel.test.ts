import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { request } from "undici";
import { describe, expect, it } from "vitest";
import { UpstreamCancel } from "./types.js";

describe("UpstreamCancel", () => {
  it("aborts once: the first reason stays, one abort event, and signals made before or after follow it", () => {
    const c = new UpstreamCancel();
    const early = c.signal;
    let events = 0;
    c.on("abort", () => events++);
    expect(c.aborted).toBe(false);
    const first = new Error("client disconnected");
    c.abort(first);
    c.abort(new Error("upstream timed out"));
    expect(c.aborted).toBe(true);
    expect(c.reason).toBe(first);
    expect(events).toBe(1);
    expect(early.aborted).toBe(true);
    expect(early.reason).toBe(first);
    expect(c.signal.aborted).toBe(true);
  });

  it("stops an undici request that is waiting for a stalled server", async () => {
    const server = createServer(() => {
      // never answers
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    try {
      const { port } = server.address() as AddressInfo;
      const c = new UpstreamCancel();
      const pending = request(`http://127.0.0.1:${port}/`, { method: "POST", body: "{}", signal: c });
      setTimeout(() => c.abort(new Error("client disconnected")), 50);
      await expect(pending).rejects.toThrow("client disconnected");
      expect(c.listenerCount("abort")).toBe(0);
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });

  it("timeout() aborts by itself", async () => {
    const c = UpstreamCancel.timeout(20);
    await new Promise((r) => c.once("abort", r));
    expect(String(c.reason)).toContain("timed out after 20 ms");
  });
});
