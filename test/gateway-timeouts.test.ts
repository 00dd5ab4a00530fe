import { connect } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../src/config/load.js";
import { silentLogger } from "../src/core/logger.js";
import { createGateway, type Gateway } from "../src/gateway/server.js";
import { createMemoryStore } from "../src/stores/memory-store.js";

/** Sends `text` on a raw socket and resolves with what the server answered and when it closed. */
function rawExchange(
  port: number,
  text: string,
  waitMs: number,
): Promise<{ answer: string; closedAfterMs: number }> {
  return new Promise((resolve) => {
    const started = Date.now();
    const sock = connect({ host: "127.0.0.1", port });
    let answer = "";
    const giveUp = setTimeout(() => sock.destroy(), waitMs);
    sock.on("data", (d) => (answer += d));
    sock.on("close", () => {
      clearTimeout(giveUp);
      resolve({ answer, closedAfterMs: Date.now() - started });
    });
    sock.on("error", () => {});
    sock.write(text);
  });
}

describe("gateway: header and request timeouts", () => {
  let gw: Gateway;
  let port: number;
  beforeAll(async () => {
    gw = createGateway({
      config: loadConfig({}, {}),
      store: createMemoryStore(),
      logger: silentLogger,
      headersTimeoutMs: 300,
      requestTimeoutMs: 600,
    });
    port = await gw.listen(0);
  });
  afterAll(() => gw.close());

  it("a client that never finishes its headers is answered 408 and disconnected", async () => {
    const r = await rawExchange(port, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n", 5000);
    expect(r.answer).toMatch(/^HTTP\/1\.1 408/);
    expect(r.closedAfterMs).toBeLessThan(3000);
  });

  it("a client that never finishes its body is answered 408 and disconnected", async () => {
    const r = await rawExchange(
      port,
      'POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{"mod',
      5000,
    );
    expect(r.answer).toMatch(/^HTTP\/1\.1 408/);
    expect(r.closedAfterMs).toBeLessThan(3000);
  });
});
