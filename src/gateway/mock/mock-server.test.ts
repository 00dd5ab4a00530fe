import { afterEach, describe, expect, it } from "vitest";
import type { ChatMessage } from "../../core/types.js";
import { tokenizerForModel } from "../../tokenizers/index.js";
import { MOCK_MODELS, type MockServer, type MockServerOptions, startMockServer } from "./mock-server.js";
import {
  chunksOf,
  contentByChoice,
  ERROR_KEYS,
  type TestCompletion,
  usageChunk,
} from "./test-openai-shapes.js";
import { readSseResponse } from "./test-sse-parse.js";

const MESSAGES: ChatMessage[] = [{ role: "user", content: "Write a few words about loopback networking." }];
const BODY = { model: "gpt-4o", messages: MESSAGES };

let servers: MockServer[] = [];
afterEach(async () => {
  await Promise.all(servers.map((s) => s.close()));
  servers = [];
});

async function start(options: MockServerOptions = {}): Promise<MockServer> {
  const server = await startMockServer(options);
  servers.push(server);
  return server;
}

function post(server: MockServer, body: unknown, headers: Record<string, string> = {}, signal?: AbortSignal) {
  return fetch(`${server.baseUrl}/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
    signal: signal ?? AbortSignal.timeout(10_000),
  });
}

/** Resolves when `check` holds, polling; fails after `ms` (every wait is bounded). */
async function eventually(check: () => boolean, ms = 2_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 5));
  }
}

function tokens(text: string): number {
  return tokenizerForModel("gpt-4o").countText(text);
}

describe("mock server over HTTP", { timeout: 20_000 }, () => {
  it("listens on 127.0.0.1 and lists models", async () => {
    const server = await start();
    expect(server.url).toBe(`http://127.0.0.1:${server.port}`);
    expect(server.baseUrl).toBe(`${server.url}/v1`);
    const res = await fetch(`${server.baseUrl}/models`, { signal: AbortSignal.timeout(5_000) });
    expect(res.status).toBe(200);
    const list = (await res.json()) as { object: string; data: { id: string; object: string }[] };
    expect(list.object).toBe("list");
    expect(list.data.map((m) => m.id)).toEqual(MOCK_MODELS);
    expect(list.data.every((m) => m.object === "model")).toBe(true);
  });

  it("answers a JSON completion with exact usage and the id in x-request-id", async () => {
    const server = await start({ completionTokens: 21 });
    const res = await post(server, { ...BODY, max_tokens: 100 });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/json");
    const body = (await res.json()) as TestCompletion;
    expect(res.headers.get("x-request-id")).toBe(body.id);
    expect(tokens(body.choices[0]?.message.content ?? "")).toBe(21);
    expect(body.usage?.prompt_tokens).toBe(tokenizerForModel("gpt-4o").countChat(MESSAGES));
    expect(body.usage?.completion_tokens).toBe(21);
    expect(server.upstream.ledger().totals).toMatchObject({ requests: 1, completionTokens: 21 });
  });

  it("streams SSE chunks as they are produced, not at the end", async () => {
    const server = await start({ completionTokens: 20, chunkTokens: 5, chunkDelayMs: 40 });
    const res = await post(server, { ...BODY, stream: true, stream_options: { include_usage: true } });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/event-stream; charset=utf-8");
    let openWhenFirstContentArrived: number | undefined;
    const read = await readSseResponse(res, (event) => {
      if (openWhenFirstContentArrived === undefined && event.data.includes('"content":"this')) {
        openWhenFirstContentArrived = server.upstream.ledger().totals.open;
      }
    });
    // The first content chunk reached the client while the mock was still generating.
    expect(openWhenFirstContentArrived).toBe(1);
    expect(read.error).toBeUndefined();
    const { chunks, done } = chunksOf(read.events);
    expect(done).toBe(true);
    expect(tokens(contentByChoice(chunks)[0] ?? "")).toBe(20);
    expect(usageChunk(chunks)?.usage?.completion_tokens).toBe(20);
    expect(server.upstream.ledger().records[0]).toMatchObject({ status: "completed", completionTokens: 20 });
  });

  it("reports the same usage streamed and not", async () => {
    const server = await start();
    const request = { model: "gpt-4", messages: MESSAGES, n: 3, max_completion_tokens: 33 };
    const whole = (await (await post(server, request)).json()) as TestCompletion;
    const read = await readSseResponse(
      await post(server, { ...request, stream: true, stream_options: { include_usage: true } }),
    );
    const { chunks } = chunksOf(read.events);
    expect(usageChunk(chunks)?.usage).toEqual(whole.usage);
    expect(whole.usage?.completion_tokens).toBe(99);
  });

  it("sends the usage chunk only when include_usage is set, and never under no-usage", async () => {
    const server = await start();
    const withUsage = chunksOf(
      (
        await readSseResponse(
          await post(server, { ...BODY, stream: true, stream_options: { include_usage: true } }),
        )
      ).events,
    );
    const without = chunksOf((await readSseResponse(await post(server, { ...BODY, stream: true }))).events);
    const faulted = chunksOf(
      (
        await readSseResponse(
          await post(
            server,
            { ...BODY, stream: true, stream_options: { include_usage: true } },
            { "x-mock-fault": "no-usage" },
          ),
        )
      ).events,
    );
    expect(usageChunk(withUsage.chunks)).toBeDefined();
    expect(usageChunk(without.chunks)).toBeUndefined();
    expect(without.chunks.every((c) => !("usage" in c))).toBe(true);
    expect(usageChunk(faulted.chunks)).toBeUndefined();
    expect([withUsage.done, without.done, faulted.done]).toEqual([true, true, true]);
    const json = (await (await post(server, BODY, { "x-mock-fault": "no-usage" })).json()) as TestCompletion;
    expect(json).not.toHaveProperty("usage");
  });

  it.each([
    ["500", 500],
    ["429", 429],
  ])("answers the %s fault with HTTP status and OpenAI's error envelope", async (fault, status) => {
    const server = await start();
    const res = await post(server, { ...BODY, stream: true }, { "x-mock-fault": fault });
    expect(res.status).toBe(status);
    expect(res.headers.get("content-type")).toBe("application/json");
    const body = (await res.json()) as { error: Record<string, unknown> };
    expect(Object.keys(body.error)).toEqual(ERROR_KEYS);
    if (status === 429) expect(res.headers.get("retry-after")).toBe("1");
  });

  it("stall: the client's AbortController ends the request promptly, and the mock sees it", async () => {
    const server = await start();
    const controller = new AbortController();
    const started = Date.now();
    const pending = post(server, BODY, { "x-mock-fault": "stall" }, controller.signal);
    await eventually(() => server.upstream.ledger().totals.open === 1);
    setTimeout(() => controller.abort(), 100);
    await expect(pending).rejects.toMatchObject({ name: "AbortError" });
    expect(Date.now() - started).toBeLessThan(3_000);
    await eventually(() => server.upstream.ledger().totals.open === 0);
    expect(server.upstream.ledger().records[0]).toMatchObject({ status: "aborted", completionTokens: 0 });
  });

  it("reset-mid-stream: the fetch client sees a socket error after some chunks", async () => {
    const server = await start({ completionTokens: 50, chunkTokens: 5 });
    const res = await post(
      server,
      { ...BODY, stream: true, stream_options: { include_usage: true } },
      { "x-mock-fault": "reset-mid-stream" },
    );
    expect(res.status).toBe(200);
    const read = await readSseResponse(res);
    // undici: TypeError "terminated", caused by the socket's ECONNRESET. On a starved CPU the RST can
    // reach the client's kernel before the client read the queued bytes, and Linux then reports EOF:
    // undici's "other side closed" (UND_ERR_SOCKET) on a response that never ended.
    expect(read.error).toBeInstanceOf(TypeError);
    expect((read.error as { cause?: { code?: string } }).cause?.code).toMatch(
      /^(ECONNRESET|UND_ERR_SOCKET)$/,
    );
    const { chunks, done } = chunksOf(read.events);
    expect(done).toBe(false);
    expect(usageChunk(chunks)).toBeUndefined();
    const received = tokens(contentByChoice(chunks)[0] ?? "");
    expect(received).toBe(25);
    expect(server.upstream.ledger().records[0]).toMatchObject({ status: "reset", completionTokens: 25 });
  });

  it("stall-mid-stream: chunks arrive, then silence until the client aborts", async () => {
    const server = await start({ completionTokens: 50, chunkTokens: 5 });
    const controller = new AbortController();
    const res = await post(
      server,
      { ...BODY, stream: true },
      { "x-mock-fault": "stall-mid-stream" },
      controller.signal,
    );
    let contentChunks = 0;
    const read = readSseResponse(res, (event) => {
      if (event.data.includes('"content":"') && !event.data.includes('"role"')) contentChunks++;
      if (contentChunks === 5) setTimeout(() => controller.abort(), 100);
    });
    const { error, events } = await read;
    expect(error).toMatchObject({ name: "AbortError" });
    expect(chunksOf(events).done).toBe(false);
    await eventually(() => server.upstream.ledger().totals.open === 0);
    expect(server.upstream.ledger().records[0]).toMatchObject({ status: "aborted", completionTokens: 25 });
  });

  it("a client that disconnects mid-stream aborts the generation; the ledger has what was sent", async () => {
    const server = await start({ completionTokens: 50, chunkTokens: 5, chunkDelayMs: 200 });
    const controller = new AbortController();
    const res = await post(server, { ...BODY, stream: true }, {}, controller.signal);
    let received = "";
    const { error } = await readSseResponse(res, (event) => {
      const chunk = JSON.parse(event.data) as { choices: { delta: { content?: string } }[] };
      received += chunk.choices[0]?.delta.content ?? "";
      if (tokens(received) === 15) controller.abort();
    });
    expect(error).toMatchObject({ name: "AbortError" });
    await eventually(() => server.upstream.ledger().totals.open === 0);
    expect(server.upstream.ledger().records[0]).toMatchObject({ status: "aborted", completionTokens: 15 });
    expect(server.upstream.ledger().totals.completionTokens).toBe(15);
  });

  it("refuses bad JSON, unknown paths and oversized bodies the OpenAI way", async () => {
    const server = await start({ maxBodyBytes: 1_000 });
    const bad = await post(server, "{not json");
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { type: string } }).error.type).toBe("invalid_request_error");
    const missing = await post(server, { model: "gpt-4o" });
    expect(missing.status).toBe(400);
    expect(((await missing.json()) as { error: { param: string } }).error.param).toBe("messages");
    const unknown = await fetch(`${server.url}/v1/embeddings`, {
      method: "POST",
      body: "{}",
      signal: AbortSignal.timeout(5_000),
    });
    expect(unknown.status).toBe(404);
    expect(((await unknown.json()) as { error: { message: string } }).error.message).toBe(
      "Invalid URL (POST /v1/embeddings)",
    );
    for (const size of [5_000, 3_000_000]) {
      const big = await post(server, { ...BODY, messages: [{ role: "user", content: "x".repeat(size) }] });
      expect(big.status).toBe(413);
      expect(((await big.json()) as { error: { code: string } }).error.code).toBe("request_too_large");
    }
    expect(server.upstream.ledger().totals.requests).toBe(0);
  });

  it("serves many concurrent requests; the ledger equals the usage the clients saw", async () => {
    const server = await start({ completionTokens: 8, chunkTokens: 3 });
    const REQUESTS = 120;
    const results = await Promise.all(
      Array.from({ length: REQUESTS }, async (_, i) => {
        const body = {
          model: i % 2 ? "gpt-4o" : "gpt-4",
          messages: [{ role: "user", content: `question ${i}` }],
        };
        if (i % 3 === 0) return ((await (await post(server, body)).json()) as TestCompletion).usage;
        const read = await readSseResponse(
          await post(server, { ...body, stream: true, stream_options: { include_usage: true } }),
        );
        return usageChunk(chunksOf(read.events).chunks)?.usage;
      }),
    );
    const prompt = results.reduce((s, u) => s + (u?.prompt_tokens ?? 0), 0);
    const completion = results.reduce((s, u) => s + (u?.completion_tokens ?? 0), 0);
    expect(completion).toBe(REQUESTS * 8);
    expect(server.upstream.ledger().totals).toEqual({
      requests: REQUESTS,
      open: 0,
      promptTokens: prompt,
      completionTokens: completion,
      totalTokens: prompt + completion,
    });
  });

  it("close() ends stalled requests and returns promptly", async () => {
    const server = await startMockServer();
    const pending = post(server, BODY, { "x-mock-fault": "stall" }).catch((e: unknown) => e);
    await eventually(() => server.upstream.ledger().totals.open === 1);
    const started = Date.now();
    await server.close();
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(await pending).toBeInstanceOf(Error);
    expect(server.upstream.ledger().records[0]?.status).toBe("aborted");
  });
});
