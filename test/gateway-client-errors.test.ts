import { connect } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../src/config/load.js";
import { silentLogger } from "../src/core/logger.js";
import { createGateway, type Gateway } from "../src/gateway/server.js";
import { createMemoryStore } from "../src/stores/memory-store.js";

/**
 * Requests node:http refuses before the gateway sees them (header and request timeouts, oversized
 * headers, not HTTP) are answered in the OpenAI error envelope too (SPEC §5), and the connection is
 * closed: a client that never finishes its request does not hold a connection (or a handler).
 */

/**
 * Sends `text` on a raw socket; resolves with what the server answered, whether it ended the
 * connection and when it closed.
 */
function rawExchange(
  port: number,
  text: string,
  waitMs = 5000,
): Promise<{ answer: string; closed: boolean; closedAfterMs: number }> {
  return new Promise((resolve) => {
    const started = Date.now();
    const sock = connect({ host: "127.0.0.1", port });
    let answer = "";
    let closed = false;
    const giveUp = setTimeout(() => sock.destroy(), waitMs);
    sock.on("data", (d) => {
      answer += d.toString("utf8");
    });
    sock.on("end", () => {
      closed = true;
    });
    sock.on("close", () => {
      clearTimeout(giveUp);
      resolve({ answer, closed, closedAfterMs: Date.now() - started });
    });
    sock.on("error", () => {});
    sock.write(text);
  });
}

function parse(answer: string) {
  const at = answer.indexOf("\r\n\r\n");
  const [statusLine = "", ...lines] = answer.slice(0, at).split("\r\n");
  const headers: Record<string, string> = {};
  for (const l of lines) {
    const i = l.indexOf(":");
    headers[l.slice(0, i).toLowerCase()] = l.slice(i + 1).trim();
  }
  const body = answer.slice(at + 4);
  return { status: Number(statusLine.split(" ")[1]), headers, body };
}

function expectEnvelope(answer: string, status: number) {
  const r = parse(answer);
  expect(r.status).toBe(status);
  expect(r.headers["content-type"]).toBe("application/json");
  expect(r.headers.connection).toBe("close");
  expect(Number(r.headers["content-length"])).toBe(Buffer.byteLength(r.body));
  const env = JSON.parse(r.body) as { error: Record<string, unknown> };
  expect(env.error).toMatchObject({ type: "invalid_request_error", code: "invalid_request", param: null });
  expect(typeof env.error.message).toBe("string");
  return env.error.message as string;
}

describe("gateway: requests refused by the HTTP layer", () => {
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

  it("headers not received in time: 408 in the error envelope, connection closed", async () => {
    const r = await rawExchange(port, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n");
    expect(expectEnvelope(r.answer, 408)).toMatch(/not received in time/);
    expect(r.closed).toBe(true);
    expect(r.closedAfterMs).toBeLessThan(3000);
  });

  it("a body not received in time: 408 in the error envelope, connection closed", async () => {
    const r = await rawExchange(
      port,
      'POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{"mod',
    );
    expectEnvelope(r.answer, 408);
    expect(r.closed).toBe(true);
    expect(r.closedAfterMs).toBeLessThan(3000);
  });

  it("headers too large: 431 in the error envelope", async () => {
    const r = await rawExchange(
      port,
      `GET /healthz HTTP/1.1\r\nHost: x\r\nx-big: ${"a".repeat(20_000)}\r\n\r\n`,
    );
    expectEnvelope(r.answer, 431);
    expect(r.closed).toBe(true);
  });

  it("not HTTP: 400 in the error envelope", async () => {
    const r = await rawExchange(port, "NOT HTTP AT ALL\r\n\r\n");
    expectEnvelope(r.answer, 400);
    expect(r.closed).toBe(true);
  });
});
