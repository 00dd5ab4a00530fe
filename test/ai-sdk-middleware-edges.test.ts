import { createServer, type Server } from "node:http";
import { createOpenAI } from "@ai-sdk/openai";
import type { LanguageModelV4Prompt, LanguageModelV4StreamPart } from "@ai-sdk/provider";
import { generateText, streamText, wrapLanguageModel } from "ai";
import { MockLanguageModelV4 } from "ai/test";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { silentLogger } from "../src/core/logger.js";
import { type MockServer, startMockServer } from "../src/gateway/mock/mock-server.js";
import {
  type AiSdkMessage,
  chatMessagesOf,
  promptOf,
  tokenfuseMiddleware,
} from "../src/integrations/ai-sdk.js";
import { guardOpenAI, type OpenAIChatClient } from "../src/integrations/openai.js";
import { createMemoryStore } from "../src/stores/memory-store.js";
import type { Store } from "../src/stores/types.js";
import { createTokenfuse, type Tokenfuse } from "../src/tokenfuse.js";
import { recordingModel } from "./helpers/ai-sdk-models.js";

// Edge cases of the AI SDK middleware found by review: money on calls the provider answered and
// then failed, counting of tool results as @ai-sdk/openai sends them, the prompt's round trip.

function fresh(feature: object = {}, store: Store = createMemoryStore()): Tokenfuse {
  return createTokenfuse({
    config: {
      features: {
        chat: { model: "gpt-4o", max_input: 100_000, max_output: 400, on_exceed: "trim", ...feature },
      },
      tiers: { free: { daily_tokens: 10_000_000 } },
      default_tier: "free",
    },
    store,
    logger: silentLogger,
  });
}
const day = async (tf: Tokenfuse, user: string) => (await tf.remaining({ user })).user.day;
const recording = () => recordingModel();

describe("with @ai-sdk/openai against the mock upstream", () => {
  let mock: MockServer;
  let provider: ReturnType<typeof createOpenAI>;
  beforeAll(async () => {
    mock = await startMockServer({ completionTokens: 25, chunkTokens: 4 });
    provider = createOpenAI({ baseURL: mock.baseUrl, apiKey: "sk-test" });
  });
  afterAll(async () => {
    await mock.close();
  });
  const wrapped = (tf: Tokenfuse, user: string) =>
    wrapLanguageModel({
      model: provider.chat("gpt-4o"),
      middleware: tokenfuseMiddleware(tf, { feature: "chat", user }),
    });
  /** Tokens the mock processed for the requests since `before` (its own ledger). */
  const billedSince = (before: number) => {
    const n = mock.upstream.ledger().totals.requests - before;
    return mock.upstream
      .ledger()
      .records.slice(-n)
      .reduce((s, x) => s + x.promptTokens + x.completionTokens, 0);
  };
  const longPrompt = "tell me a story about ".repeat(200);

  it("a call the provider answered and then cut is charged at least what the provider processed, streamed or not", async () => {
    const tf = fresh();
    // Cut before the first chunk: @ai-sdk/openai's doStream itself rejects (a 200 it could not read).
    let before = mock.upstream.ledger().totals.requests;
    await streamText({
      model: wrapped(tf, "cut-stream"),
      prompt: longPrompt,
      maxRetries: 0,
      headers: { "x-mock-fault": "reset-mid-stream", "x-mock-fault-after-chunks": "0" },
      onError: () => {},
    }).consumeStream();
    const streamBilled = billedSince(before);
    expect(streamBilled).toBeGreaterThan(1000);
    expect(await day(tf, "cut-stream")).toMatchObject({ reserved: 0 });
    expect((await day(tf, "cut-stream")).used).toBeGreaterThanOrEqual(streamBilled);

    // A JSON answer cut mid-body: generated (and billed) whole.
    before = mock.upstream.ledger().totals.requests;
    const e = await generateText({
      model: wrapped(tf, "cut-json"),
      prompt: longPrompt,
      maxRetries: 0,
      headers: { "x-mock-fault": "reset-mid-stream" },
    }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(Error);
    const jsonBilled = billedSince(before);
    expect(jsonBilled).toBeGreaterThan(1000);
    expect((await day(tf, "cut-json")).used).toBeGreaterThanOrEqual(jsonBilled);
    expect((await day(tf, "cut-json")).reserved).toBe(0);

    // A refusal (500 before any work) is still released.
    await generateText({
      model: wrapped(tf, "refused"),
      prompt: "x",
      maxRetries: 0,
      headers: { "x-mock-fault": "500" },
    }).catch(() => undefined);
    expect(await day(tf, "refused")).toMatchObject({ used: 0, reserved: 0 });
  });

  it("counts tool results exactly as the OpenAI chat provider sends them", async () => {
    const tf = fresh();
    const png = Buffer.alloc(30_000, 7).toString("base64");
    const outputs: unknown[] = [
      // A `content` output travels as its JSON, base64 included.
      {
        type: "content",
        value: [
          { type: "text", text: "chart" },
          { type: "file", mediaType: "image/png", data: { type: "data", data: png } },
        ],
      },
      { type: "content", value: [{ type: "text", text: "a b c d e f g h" }] },
      { type: "error-json", value: { code: 500, message: "backend exploded while rendering" } },
      { type: "error-text", value: "backend exploded while rendering" },
      { type: "json", value: "sunny and warm" },
      { type: "execution-denied" },
    ];
    for (const output of outputs) {
      const prompt = [
        { role: "user", content: [{ type: "text", text: "Look at the chart" }] },
        {
          role: "assistant",
          content: [{ type: "tool-call", toolCallId: "c1", toolName: "chart", input: { id: 1 } }],
        },
        { role: "tool", content: [{ type: "tool-result", toolCallId: "c1", toolName: "chart", output }] },
        { role: "user", content: [{ type: "text", text: "What does it show?" }] },
      ] as LanguageModelV4Prompt;
      const res = await wrapped(tf, "count").doGenerate({ prompt });
      const counted = res.providerMetadata?.tokenfuse?.inputTokens;
      expect([(output as { type: string }).type, counted]).toEqual([
        (output as { type: string }).type,
        mock.upstream.ledger().records.at(-1)?.promptTokens,
      ]);
    }
  });
});

describe("an abort while the provider thinks before its first output (@ai-sdk/openai reads ahead)", () => {
  let server: Server;
  let base: string;
  let answered = 0;
  beforeAll(async () => {
    // Answers 200 and a role-only chunk, then nothing for a while (a reasoning model thinking).
    server = createServer((req, res) => {
      req.resume();
      req.on("end", () => {
        answered++;
        res.writeHead(200, { "content-type": "text/event-stream" });
        const chunk = {
          id: "c1",
          object: "chat.completion.chunk",
          created: 1,
          model: "gpt-4o",
          choices: [{ index: 0, delta: { role: "assistant", content: "" }, finish_reason: null }],
        };
        res.write(`data: ${JSON.stringify(chunk)}\n\n`);
        const t = setTimeout(() => res.end(), 5000);
        res.on("close", () => clearTimeout(t));
      });
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    base = `http://127.0.0.1:${(server.address() as { port: number }).port}/v1`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  it("is charged the input, flagged as estimated, never released", async () => {
    const tf = fresh();
    const model = wrapLanguageModel({
      model: createOpenAI({ baseURL: base, apiKey: "sk-x" }).chat("gpt-4o"),
      middleware: tokenfuseMiddleware(tf, { feature: "chat", user: "thinking" }),
    });
    const ac = new AbortController();
    const r = streamText({
      model,
      prompt: "think hard about ".repeat(100),
      maxRetries: 0,
      abortSignal: ac.signal,
      onError: () => {},
    });
    await expect.poll(() => answered).toBe(1);
    ac.abort();
    await Promise.resolve(r.consumeStream()).catch(() => undefined);
    await expect.poll(async () => (await day(tf, "thinking")).reserved).toBe(0);
    expect((await day(tf, "thinking")).used).toBeGreaterThan(300);
    await tf.close();
  });
});

describe("streams the provider began", () => {
  it("cancelled before any text (a reasoning model still thinking) is charged the input", async () => {
    const tf = fresh();
    const m = new MockLanguageModelV4({
      modelId: "gpt-4o",
      doStream: async () => ({
        stream: new ReadableStream<LanguageModelV4StreamPart>({
          start(c) {
            c.enqueue({ type: "stream-start", warnings: [] });
            c.enqueue({ type: "response-metadata", id: "chatcmpl-1", modelId: "gpt-4o" });
          },
        }),
      }),
    });
    const model = wrapLanguageModel({
      model: m,
      middleware: tokenfuseMiddleware(tf, { feature: "chat", user: "think" }),
    });
    const { stream } = await model.doStream({
      prompt: [{ role: "user", content: [{ type: "text", text: "tell me a story about ".repeat(200) }] }],
    });
    const reader = stream.getReader();
    await reader.read();
    await reader.read();
    await reader.cancel();
    const d = await day(tf, "think");
    expect(d.reserved).toBe(0);
    expect(d.used).toBeGreaterThan(1000);
  });

  it("a cancel reaches the provider even when the settlement fails, and the failure does not replace it", async () => {
    const mem = createMemoryStore();
    const store: Store = Object.assign(Object.create(mem), {
      settle: async () => {
        throw new Error("store down");
      },
    });
    const tf = fresh({}, store);
    let upstreamCancelled = false;
    const m = new MockLanguageModelV4({
      modelId: "gpt-4o",
      doStream: async () => ({
        stream: new ReadableStream<LanguageModelV4StreamPart>({
          start(c) {
            c.enqueue({ type: "text-start", id: "t" });
            c.enqueue({ type: "text-delta", id: "t", delta: "first words" });
          },
          cancel() {
            upstreamCancelled = true;
          },
        }),
      }),
    });
    const model = wrapLanguageModel({
      model: m,
      middleware: tokenfuseMiddleware(tf, { feature: "chat", user: "u", logger: silentLogger }),
    });
    const { stream } = await model.doStream({
      prompt: [{ role: "user", content: [{ type: "text", text: "hi" }] }],
    });
    const reader = stream.getReader();
    await reader.read();
    await reader.read();
    await expect(reader.cancel("user stopped")).resolves.toBeUndefined();
    expect(upstreamCancelled).toBe(true);
  });

  it("the openai wrapper: a stream that began and failed before any chunk is charged the input; a refused call is released", async () => {
    const tf = fresh();
    const failingStream: OpenAIChatClient = {
      chat: {
        completions: {
          create: async () =>
            (async function* () {
              yield* [];
              throw new Error("connection reset");
            })(),
        },
      },
    };
    const msgs = [{ role: "user", content: "tell me a story about ".repeat(200) }];
    const drain = async (it: AsyncIterable<unknown>) => {
      for await (const _ of it);
    };
    await expect(
      drain(
        guardOpenAI(failingStream, tf).stream(
          { feature: "chat", user: "began" },
          { model: "gpt-4o", messages: msgs },
        ),
      ),
    ).rejects.toThrow("connection reset");
    expect((await day(tf, "began")).used).toBeGreaterThan(1000);
    const refused: OpenAIChatClient = {
      chat: {
        completions: { create: async () => Promise.reject(Object.assign(new Error("429"), { status: 429 })) },
      },
    };
    await expect(
      drain(
        guardOpenAI(refused, tf).stream(
          { feature: "chat", user: "refused" },
          { model: "gpt-4o", messages: msgs },
        ),
      ),
    ).rejects.toThrow("429");
    expect(await day(tf, "refused")).toMatchObject({ used: 0, reserved: 0 });
  });
});

describe("the prompt's round trip", () => {
  it("a tool message holding only an approval decision survives a trim with its tool call", async () => {
    const approval = [
      { role: "user", content: [{ type: "text", text: "delete the repo" }] },
      {
        role: "assistant",
        content: [
          { type: "tool-call", toolCallId: "c1", toolName: "mcp_delete", input: {}, providerExecuted: true },
        ],
      },
      { role: "tool", content: [{ type: "tool-approval-response", approvalId: "ap1", approved: false }] },
    ] as unknown as AiSdkMessage[];
    expect(promptOf(chatMessagesOf(approval))).toEqual(approval);

    const tf = fresh({ max_input: 300, max_output: 40 });
    const { m, calls } = recording();
    const old = Array.from({ length: 10 }, (_, i) => [
      { role: "user", content: [{ type: "text", text: `q${i} ${"lorem ipsum ".repeat(30)}` }] },
      { role: "assistant", content: [{ type: "text", text: `a${i}` }] },
    ]).flat();
    const prompt = [...old, ...approval] as LanguageModelV4Prompt;
    const model = wrapLanguageModel({
      model: m,
      middleware: tokenfuseMiddleware(tf, { feature: "chat", user: "u" }),
    });
    const res = await model.doGenerate({ prompt });
    expect(res.providerMetadata?.tokenfuse?.decision).toBe("trim");
    expect(calls[0]?.prompt.slice(-3)).toEqual(approval);
  });

  it("truncate never turns an assistant's reasoning into visible text; the same message twice is sent twice", async () => {
    const tf = fresh({ max_input: 200, max_output: 40, on_exceed: "truncate" });
    const { m, calls } = recording();
    const assistant = {
      role: "assistant" as const,
      content: [
        {
          type: "reasoning" as const,
          text: `CHAIN OF THOUGHT ${"think ".repeat(500)}`,
          providerOptions: { anthropic: { signature: "sig" } },
        },
        { type: "text" as const, text: "The answer is 42." },
      ],
    };
    const prompt: LanguageModelV4Prompt = [
      { role: "user", content: [{ type: "text", text: "q1" }] },
      assistant,
      { role: "user", content: [{ type: "text", text: "q2" }] },
    ];
    const model = wrapLanguageModel({
      model: m,
      middleware: tokenfuseMiddleware(tf, { feature: "chat", user: "u" }),
    });
    await model.doGenerate({ prompt });
    for (const msg of calls[0]?.prompt ?? []) {
      if (msg.role !== "assistant") continue;
      // Sent as it was (the same message), or not at all.
      expect(msg).toBe(assistant);
    }

    const u = { role: "user" as const, content: [{ type: "text" as const, text: "ping" }] };
    const twice = [
      u,
      { role: "assistant" as const, content: [{ type: "text" as const, text: "pong" }] },
      u,
      u,
    ];
    expect(promptOf(chatMessagesOf(twice))).toHaveLength(4);
  });
});
