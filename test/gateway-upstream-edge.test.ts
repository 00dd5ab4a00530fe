import { connect } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { loadConfig } from "../src/config/load.js";
import { silentLogger } from "../src/core/logger.js";
import { createGateway, type Gateway } from "../src/gateway/server.js";
import type { UpstreamClient, UpstreamResponse } from "../src/gateway/upstream/types.js";
import { createMemoryStore } from "../src/stores/memory-store.js";
import { getChatTokenizer } from "../src/tokenizers/index.js";

/**
 * Upstream answers that are odd rather than failed — malformed usage, usage followed by a failure, a
 * client that stops reading — each settled exactly and never hanging. The upstream is a fake
 * UpstreamClient, so each case controls exactly what the provider "sends".
 */
const messages = [{ role: "user", content: "Tell me a story" }];
const prompt = getChatTokenizer("o200k_base").countChat(messages);
const count = (s: string) => getChatTokenizer("o200k_base").countText(s);
const sse = (o: object) => `data: ${JSON.stringify(o)}\n\n`;
const delta = (content: string) => sse({ id: "c1", choices: [{ index: 0, delta: { content } }] });

type Send = UpstreamClient["send"];
let gw: Gateway | undefined;
afterEach(async () => {
  await gw?.close();
  gw = undefined;
});

async function gatewayWith(send: Send, timeoutMs = 1000) {
  const config = loadConfig(
    {
      upstreams: { fake: { type: "openai", base_url: "http://127.0.0.1:9/v1", timeout_ms: timeoutMs } },
      features: { chat: { model: "gpt-4o", max_input: 1000, max_output: 200, on_exceed: "trim" } },
      tiers: { free: { daily_tokens: 1_000_000 } },
      default_tier: "free",
    },
    {},
  );
  const upstreams = new Map<string, UpstreamClient>([
    ["fake", { name: "fake", type: "fake", timeoutMs, send, async close() {} }],
  ]);
  const g = createGateway({ config, store: createMemoryStore(), logger: silentLogger, upstreams });
  gw = g;
  const base = `http://127.0.0.1:${await g.listen(0)}`;
  const day = async () => (await g.engine.remaining({ user: "anonymous" })).user.day;
  const estimated = async (reason: string) => {
    const text = await (await fetch(`${base}/metrics`)).text();
    const m = new RegExp(
      `^tokenfuse_estimated_settlements_total\\{[^}]*reason="${reason}"[^}]*\\} (\\d+)`,
      "m",
    ).exec(text);
    return Number(m?.[1] ?? 0);
  };
  const post = (body: object) =>
    fetch(`${base}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "gpt-4o", messages, ...body }),
    });
  return { base, day, estimated, post, port: new URL(base).port };
}

function whole(status: number, body: string): UpstreamResponse {
  return {
    status,
    headers: { "content-type": "application/json" },
    body: (async function* () {
      yield body;
    })(),
    text: async () => body,
  };
}

function streamed(gen: () => AsyncGenerator<string>): UpstreamResponse {
  return {
    status: 200,
    headers: { "content-type": "text/event-stream" },
    body: gen(),
    text: async () => "",
  };
}

describe("gateway: odd upstream answers", () => {
  it("a malformed usage in a whole answer: the client gets the answer, charged an estimate (flagged)", async () => {
    const content = "a short reply from the provider";
    const answer = JSON.stringify({
      id: "x",
      object: "chat.completion",
      choices: [{ index: 0, message: { role: "assistant", content }, finish_reason: "stop" }],
      usage: { prompt_tokens: 1.5, completion_tokens: "seven" },
    });
    const g = await gatewayWith(async () => whole(200, answer));
    const res = await g.post({});
    expect(res.status).toBe(200);
    expect(await res.text()).toBe(answer);
    expect(await g.day()).toMatchObject({ used: prompt + count(content), reserved: 0 });
    expect(await g.estimated("invalid usage reported")).toBe(1);
  });

  it("a malformed usage chunk in a stream: the stream completes, charged an estimate (flagged)", async () => {
    const g = await gatewayWith(async () =>
      streamed(async function* () {
        yield delta("Once upon ");
        yield delta("a time.");
        yield sse({ id: "c1", choices: [], usage: {} });
        yield "data: [DONE]\n\n";
      }),
    );
    const res = await g.post({ stream: true });
    expect(await res.text()).toContain("data: [DONE]");
    expect(await g.day()).toMatchObject({ used: prompt + count("Once upon a time."), reserved: 0 });
    expect(await g.estimated("invalid usage reported")).toBe(1);
  });

  it("a stream that fails after its usage chunk is charged the reported usage, not an estimate", async () => {
    const g = await gatewayWith(async () =>
      streamed(async function* () {
        yield delta("Hi.");
        yield sse({
          id: "c1",
          choices: [],
          usage: {
            prompt_tokens: prompt,
            completion_tokens: 150,
            completion_tokens_details: { reasoning_tokens: 140 },
          },
        });
        throw new Error("connection reset");
      }),
    );
    const res = await g.post({ stream: true });
    await expect(res.text()).rejects.toThrow();
    await new Promise((r) => setTimeout(r, 50));
    expect(await g.day()).toMatchObject({ used: prompt + 150, reserved: 0 });
    expect(await g.estimated("upstream stream failed")).toBe(0);
  });

  it("a client that stops reading a stream is cut at the upstream timeout and its reservation settled", async () => {
    let upstreamAborted = false;
    const big = "word ".repeat(12_000);
    const g = await gatewayWith(async ({ cancel }) => {
      cancel.once("abort", () => {
        upstreamAborted = true;
      });
      return streamed(async function* () {
        // Endless output: only the client's back-pressure and the timeout can stop it.
        for (;;) {
          if (cancel.aborted) throw cancel.reason;
          yield delta(big);
          await new Promise((r) => setImmediate(r));
        }
      });
    }, 800);
    const body = JSON.stringify({ model: "gpt-4o", stream: true, messages });
    const sock = connect({ host: "127.0.0.1", port: Number(g.port) });
    sock.on("error", () => {});
    let closedByServer = false;
    sock.on("close", () => {
      closedByServer = true;
    });
    sock.write(
      `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
    sock.pause(); // never reads
    try {
      const waitFor = async (cond: (d: { reserved: number }) => boolean, what: string) => {
        const deadline = Date.now() + 5000;
        while (!cond(await g.day())) {
          if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
          await new Promise((r) => setTimeout(r, 25));
        }
      };
      await waitFor((d) => d.reserved > 0, "the reservation");
      await waitFor((d) => d.reserved === 0, "the settlement");
      const day = await g.day();
      expect(upstreamAborted).toBe(true);
      expect(day.reserved).toBe(0);
      // Charged what passed to the socket (estimated, capped by the reservation's output allowance).
      expect(day.used).toBe(prompt + 200);
      expect(await g.estimated("upstream timed out")).toBe(1);
      // The server has cut the connection: reading now drains what was sent, then meets its end.
      sock.resume();
      const deadline = Date.now() + 3000;
      while (!closedByServer && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
      expect(closedByServer).toBe(true);
    } finally {
      sock.destroy();
    }
  });

  /**
   * One request on a raw connection, then, once the upstream has it (`arrived()`), bytes that are not
   * HTTP on the same connection: all that was received by the time the server closed it (at most 3 s).
   */
  async function garbageBehind(port: string, body: string, arrived: () => boolean): Promise<string> {
    const sock = connect({ host: "127.0.0.1", port: Number(port) });
    sock.on("error", () => {});
    let received = "";
    sock.on("data", (d) => {
      received += d.toString("latin1");
    });
    const closed = new Promise((r) => sock.on("close", r));
    sock.write(
      `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
    const until = Date.now() + 5000;
    while (!arrived() && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
    sock.write("NOT HTTP AT ALL\r\n\r\n");
    await Promise.race([closed, new Promise((r) => setTimeout(r, 3000))]);
    sock.destroy();
    return received;
  }

  it("a malformed request pipelined behind a stream never lands inside that stream", async () => {
    let arrived = false;
    const g = await gatewayWith(async () => {
      arrived = true;
      return streamed(async function* () {
        for (let i = 0; i < 4; i++) {
          yield delta(`part ${i} `);
          await new Promise((r) => setTimeout(r, 60));
        }
        yield sse({ id: "c1", choices: [], usage: { prompt_tokens: prompt, completion_tokens: 8 } });
        yield "data: [DONE]\n\n";
      });
    });
    const body = JSON.stringify({ model: "gpt-4o", stream: true, messages });
    const received = await garbageBehind(g.port, body, () => arrived);
    expect(received.startsWith("HTTP/1.1 200")).toBe(true);
    // One status line only: the stream's. A second one would corrupt what the client reads. The
    // stream, a valid request, is finished before the connection closes.
    expect(received.match(/HTTP\/1\.1 \d{3}/g)).toEqual(["HTTP/1.1 200"]);
    expect(received).toContain("data: [DONE]");
  });

  it("a malformed request pipelined behind a call not yet answered leaves that call's answer whole", async () => {
    const answer = JSON.stringify({
      id: "x",
      choices: [{ index: 0, message: { role: "assistant", content: "ok" }, finish_reason: "stop" }],
      usage: { prompt_tokens: prompt, completion_tokens: 1 },
    });
    let arrived = false;
    const g = await gatewayWith(async () => {
      arrived = true;
      await new Promise((r) => setTimeout(r, 300));
      return whole(200, answer);
    });
    const received = await garbageBehind(
      g.port,
      JSON.stringify({ model: "gpt-4o", messages }),
      () => arrived,
    );
    // The call's own answer, whole, and nothing else; charged once as answered.
    expect(received.match(/HTTP\/1\.1 \d{3}/g)).toEqual(["HTTP/1.1 200"]);
    expect(received.endsWith(answer)).toBe(true);
    expect(await g.day()).toMatchObject({ used: prompt + 1, reserved: 0 });
  });

  it("legacy functions and a response_format schema are counted as input: they cannot slip past max_input", async () => {
    let forwarded: Record<string, unknown> | undefined;
    const answer = JSON.stringify({
      id: "x",
      choices: [{ index: 0, message: { role: "assistant", content: "ok" }, finish_reason: "stop" }],
      usage: { prompt_tokens: 10, completion_tokens: 1 },
    });
    const g = await gatewayWith(async ({ body }) => {
      forwarded = body;
      return whole(200, answer);
    });
    const fn = {
      name: "lookup",
      description: "Looks a thing up",
      parameters: { type: "object", properties: {} },
    };
    const tok = getChatTokenizer("o200k_base");
    // Counted exactly like the same definition sent as a tool, and forwarded as sent.
    const small = await g.post({ functions: [fn] });
    expect(small.status).toBe(200);
    expect(Number(small.headers.get("x-tokenfuse-input-tokens"))).toBe(
      tok.countChat(messages, [{ type: "function", function: fn }]),
    );
    expect(forwarded?.functions).toEqual([fn]);
    // A huge definition is refused by max_input (1000) instead of reaching the provider uncounted.
    forwarded = undefined;
    const huge = await g.post({ functions: [{ ...fn, description: "lorem ipsum ".repeat(5000) }] });
    expect(huge.status).toBe(400);
    expect(((await huge.json()) as { error: { code: string } }).error.code).toBe("input_budget_exceeded");
    expect(forwarded).toBeUndefined();
    const schema = await g.post({
      response_format: {
        type: "json_schema",
        json_schema: { name: "answer", schema: { type: "object", description: "word ".repeat(5000) } },
      },
    });
    expect(schema.status).toBe(400);
    // Malformed: refused with a clear error.
    const bad = await g.post({ functions: "lookup" });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { message: string } }).error.message).toMatch(
      /functions must be an array/,
    );
    // Only the admitted call was charged: the usage the provider reported for it (10 + 1).
    expect(await g.day()).toMatchObject({ used: 11, reserved: 0 });
  });

  it("a chunk that arrives after the timeout fired, to a client that stops reading, does not hang the handler", async () => {
    const g = await gatewayWith(
      async () =>
        streamed(async function* () {
          yield delta("a");
          await new Promise((r) => setTimeout(r, 500)); // the 300 ms timeout fires in here
          yield delta("word ".repeat(4_800_000)); // past the socket buffers too: only a drain or the abort ends the wait
          yield delta("never read");
        }),
      300,
    );
    const body = JSON.stringify({ model: "gpt-4o", stream: true, messages });
    const sock = connect({ host: "127.0.0.1", port: Number(g.port) });
    sock.on("error", () => {});
    sock.write(
      `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
    sock.pause(); // never reads
    try {
      const deadline = Date.now() + 5000;
      let day = await g.day();
      while (day.reserved === 0 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 5));
        day = await g.day();
      }
      while (day.reserved > 0 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 25));
        day = await g.day();
      }
      expect(day.reserved).toBe(0);
      expect(day.used).toBeGreaterThan(prompt);
    } finally {
      sock.destroy();
    }
  });

  it("a whole answer of tool calls without usage is charged an estimate of the calls, not nothing", async () => {
    const args = JSON.stringify({ query: "weather in Paris and Lyon tomorrow morning", units: "metric" });
    const answer = JSON.stringify({
      id: "x",
      choices: [
        {
          index: 0,
          message: {
            role: "assistant",
            content: null,
            tool_calls: [{ id: "t1", type: "function", function: { name: "lookup", arguments: args } }],
          },
          finish_reason: "tool_calls",
        },
      ],
    });
    const g = await gatewayWith(async () => whole(200, answer));
    const res = await g.post({});
    expect(res.status).toBe(200);
    expect(await res.text()).toBe(answer);
    expect(await g.day()).toMatchObject({ used: prompt + count(`lookup${args}`), reserved: 0 });
    expect(await g.estimated("no usage reported")).toBe(1);
  });

  it("a body nested 100 000 deep is a 400 invalid_request, never a 500 or an upstream error", async () => {
    let called = 0;
    const g = await gatewayWith(async () => {
      called++;
      return whole(200, "{}");
    });
    for (const field of ["tools", "metadata"]) {
      const body = `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"${field}":${"[".repeat(100_000)}${"]".repeat(100_000)}}`;
      const res = await fetch(`${g.base}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body,
      });
      expect(res.status).toBe(400);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe("invalid_request");
    }
    expect(called).toBe(0);
  });

  it("the provider refusing the gateway's own key is a 502 upstream_error that quotes nothing of the provider's text; other 4xx pass through", async () => {
    const providerText = JSON.stringify({
      error: {
        message: "Incorrect API key provided: sk-SECR****OVID",
        type: "invalid_request_error",
        code: "invalid_api_key",
      },
    });
    for (const status of [401, 403]) {
      const g = await gatewayWith(async () => whole(status, providerText));
      const res = await g.post({});
      expect(res.status).toBe(502);
      // A config fault no client retry can fix.
      expect(res.headers.get("x-should-retry")).toBe("false");
      const text = await res.text();
      expect(text).not.toMatch(/sk-|Incorrect API key/);
      const err = (JSON.parse(text) as { error: { code: string; message: string } }).error;
      expect(err.code).toBe("upstream_error");
      expect(err.message).toBe(`upstream "fake" refused the gateway's credentials (${status})`);
      expect(await g.day()).toMatchObject({ used: 0, reserved: 0 }); // nothing generated, nothing held
      await gw?.close();
      gw = undefined;
    }
    // A 400 is about the request: the client sees the provider's own answer.
    const bad = JSON.stringify({
      error: { message: "Unrecognized request argument", type: "invalid_request_error" },
    });
    const g = await gatewayWith(async () => whole(400, bad));
    const res = await g.post({});
    expect(res.status).toBe(400);
    expect(await res.text()).toBe(bad);
  });

  it("a provider's 429 passes on with its Retry-After, retry-after-ms and request id, and holds nothing", async () => {
    const limited = JSON.stringify({
      error: { message: "Rate limit reached", type: "requests", code: "rate_limit_exceeded" },
    });
    const g = await gatewayWith(async () => ({
      ...whole(429, limited),
      headers: {
        "content-type": "application/json",
        "retry-after": "7",
        "retry-after-ms": "6500",
        "x-request-id": "req_abc123",
        "x-ratelimit-remaining-tokens": "0",
        "set-cookie": "provider=1",
      },
    }));
    const res = await g.post({});
    expect(res.status).toBe(429);
    expect(await res.text()).toBe(limited);
    expect(res.headers.get("retry-after")).toBe("7");
    expect(res.headers.get("retry-after-ms")).toBe("6500");
    expect(res.headers.get("x-request-id")).toBe("req_abc123");
    // tokenfuse's own budget headers, not the provider's; nothing else of the provider's.
    expect(res.headers.get("x-ratelimit-remaining-tokens")).not.toBe("0");
    expect(res.headers.get("set-cookie")).toBeNull();
    expect(await g.day()).toMatchObject({ used: 0, reserved: 0 });
  });

  it("without usage, n > 1 choices are estimated choice by choice, not as one string of their interleaved pieces", async () => {
    // Interleaved, the pieces would merge into other tokens ("HelWorlold"); per choice they are
    // "Hello" and "World". Whole answers likewise: "an" and "other", not "another".
    const piece = (index: number, content: string) =>
      sse({ id: "c1", choices: [{ index, delta: { content } }] });
    const g = await gatewayWith(async (req) =>
      req.body.stream === true
        ? streamed(async function* () {
            yield piece(0, "Hel");
            yield piece(1, "Wor");
            yield piece(0, "lo");
            yield piece(1, "ld");
            yield "data: [DONE]\n\n";
          })
        : whole(
            200,
            JSON.stringify({
              id: "x",
              object: "chat.completion",
              choices: ["an", "other"].map((content, index) => ({
                index,
                message: { role: "assistant", content },
                finish_reason: "stop",
              })),
            }),
          ),
    );
    const before = (await g.day()).used;
    await (await g.post({ stream: true, n: 2 })).text();
    const streamedCharge = (await g.day()).used - before;
    expect(streamedCharge).toBe(prompt + count("Hello") + count("World"));
    expect(count("HelWorlold")).not.toBe(count("Hello") + count("World"));
    await (await g.post({ n: 2 })).text();
    expect((await g.day()).used - before - streamedCharge).toBe(prompt + count("an") + count("other"));
    expect(count("another")).not.toBe(count("an") + count("other"));
    expect((await g.day()).reserved).toBe(0);
  });
});

describe("gateway: the engine's clock", () => {
  it("x-ratelimit-reset-tokens is read from the gateway's clock, as the budget windows are", async () => {
    const config = loadConfig(
      {
        upstreams: { fake: { type: "openai", base_url: "http://127.0.0.1:9/v1", timeout_ms: 1000 } },
        features: { chat: { model: "gpt-4o", max_input: 1000, max_output: 200, on_exceed: "trim" } },
        tiers: { free: { daily_tokens: 1_000_000 } },
        default_tier: "free",
      },
      {},
    );
    const answer = JSON.stringify({
      id: "x",
      choices: [{ index: 0, message: { role: "assistant", content: "hi" }, finish_reason: "stop" }],
      usage: { prompt_tokens: 9, completion_tokens: 1, total_tokens: 10 },
    });
    const upstreams = new Map<string, UpstreamClient>([
      [
        "fake",
        {
          name: "fake",
          type: "fake",
          timeoutMs: 1000,
          send: async () => whole(200, answer),
          async close() {},
        },
      ],
    ]);
    // 90 s before a UTC midnight, years from the real date.
    const at = Date.parse("2031-03-04T23:58:30Z");
    const g = createGateway({
      config,
      store: createMemoryStore(),
      logger: silentLogger,
      upstreams,
      clock: { nowMs: () => at },
    });
    try {
      const base = `http://127.0.0.1:${await g.listen(0)}`;
      const res = await fetch(`${base}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: "gpt-4o", messages }),
      });
      expect(res.status).toBe(200);
      await res.text();
      expect(res.headers.get("x-ratelimit-reset-tokens")).toBe("1m30s");
    } finally {
      await g.close();
    }
  });
});
