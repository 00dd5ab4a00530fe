import { createOpenAI } from "@ai-sdk/openai";
import type { LanguageModelV4StreamPart } from "@ai-sdk/provider";
import { generateText, streamText, tool, wrapLanguageModel } from "ai";
import { MockLanguageModelV4 } from "ai/test";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { TokenBudgetError } from "../src/core/errors.js";
import { type Logger, silentLogger } from "../src/core/logger.js";
import { type MockServer, startMockServer } from "../src/gateway/mock/mock-server.js";
import { chatMessagesOf, promptOf, tokenfuseMiddleware } from "../src/integrations/ai-sdk.js";
import { createMemoryStore } from "../src/stores/memory-store.js";
import { createTokenfuse, type Tokenfuse } from "../src/tokenfuse.js";
import { recordingModel, usageOf } from "./helpers/ai-sdk-models.js";

function fresh(features: Record<string, object> = {}, dailyTokens = 100_000): Tokenfuse {
  return createTokenfuse({
    config: {
      features: {
        chat: { model: "gpt-4o", max_input: 500, max_output: 40, on_exceed: "trim" },
        ...features,
      },
      tiers: { free: { daily_tokens: dailyTokens } },
      default_tier: "free",
    },
    store: createMemoryStore(),
    logger: silentLogger,
  });
}

const day = async (tf: Tokenfuse, user: string) => (await tf.remaining({ user })).user.day;

describe("tokenfuseMiddleware with the AI SDK's own OpenAI provider, against the mock upstream", () => {
  let mock: MockServer;
  let tf: Tokenfuse;
  let provider: ReturnType<typeof createOpenAI>;
  beforeAll(async () => {
    mock = await startMockServer({ completionTokens: 25, chunkTokens: 4 });
    provider = createOpenAI({ baseURL: mock.baseUrl, apiKey: "sk-test" });
    tf = fresh({}, 400);
  });
  afterAll(async () => {
    await tf.close();
    await mock.close();
  });
  const model = (feature = "chat") =>
    wrapLanguageModel({ model: provider.chat("gpt-4o"), middleware: tokenfuseMiddleware(tf, { feature }) });

  it("generateText: caps the output, settles exactly the reported usage, and says what it decided", async () => {
    const res = await generateText({
      model: model(),
      prompt: "hi",
      maxOutputTokens: 999,
      maxRetries: 0,
      providerOptions: { tokenfuse: { user: "g1" } },
    });
    const rec = mock.upstream.ledger().records.at(-1);
    expect(rec?.model).toBe("gpt-4o");
    // The mock generates 25 tokens unless capped: the feature's 40 replaced the caller's 999.
    expect(rec?.completionTokens).toBe(25);
    expect(await day(tf, "g1")).toMatchObject({
      used: (rec?.promptTokens ?? 0) + (rec?.completionTokens ?? 0),
      reserved: 0,
    });
    const meta = res.providerMetadata?.tokenfuse;
    expect(meta).toMatchObject({ feature: "chat", decision: "allow", model: "gpt-4o", storeStatus: "ok" });
    // tokenfuse's count of the prompt is what the provider reported (the mock counts what it received).
    expect(meta?.inputTokens).toBe(rec?.promptTokens);
  });

  it("a conversation with tool calls and results counts what the provider reports as prompt tokens", async () => {
    const res = await generateText({
      model: model(),
      maxRetries: 0,
      providerOptions: { tokenfuse: { user: "g2" } },
      tools: {
        weather: tool({
          description: "The weather in a city",
          inputSchema: z.object({ city: z.string() }),
        }),
      },
      instructions: "You are terse.",
      messages: [
        { role: "user", content: "Weather in Paris?" },
        {
          role: "assistant",
          content: [
            { type: "text", text: "Let me look." },
            { type: "tool-call", toolCallId: "c1", toolName: "weather", input: { city: "Paris" } },
          ],
        },
        {
          role: "tool",
          content: [
            {
              type: "tool-result",
              toolCallId: "c1",
              toolName: "weather",
              output: { type: "json", value: { sky: "clear", c: 21 } },
            },
          ],
        },
        { role: "user", content: [{ type: "text", text: "And tomorrow?" }] },
      ],
    });
    const rec = mock.upstream.ledger().records.at(-1);
    expect(res.providerMetadata?.tokenfuse?.inputTokens).toBe(rec?.promptTokens);
    expect((await day(tf, "g2")).reserved).toBe(0);
  });

  it("streamText: settles from the finish part's usage; streamed and not streamed are charged the same", async () => {
    const r = streamText({
      model: model(),
      prompt: "hi",
      maxRetries: 0,
      providerOptions: { tokenfuse: { user: "s1" } },
    });
    const text = await r.text;
    expect(text.length).toBeGreaterThan(0);
    expect((await r.providerMetadata)?.tokenfuse).toMatchObject({ decision: "allow", feature: "chat" });
    const rec = mock.upstream.ledger().records.at(-1);
    expect(rec?.stream).toBe(true);
    await generateText({
      model: model(),
      prompt: "hi",
      maxRetries: 0,
      providerOptions: { tokenfuse: { user: "s2" } },
    });
    const streamed = await day(tf, "s1");
    expect(streamed).toMatchObject({
      used: (rec?.promptTokens ?? 0) + (rec?.completionTokens ?? 0),
      reserved: 0,
    });
    expect((await day(tf, "s2")).used).toBe(streamed.used);
  });

  it("a refusal throws TokenBudgetError and sends nothing; a provider error releases the reservation", async () => {
    const before = mock.upstream.ledger().totals.requests;
    let refused: unknown;
    for (let i = 0; i < 20 && !refused; i++) {
      await generateText({
        model: model(),
        prompt: "hello",
        maxRetries: 0,
        providerOptions: { tokenfuse: { user: "r1" } },
      }).catch((e: unknown) => (refused = e));
    }
    expect(refused).toBeInstanceOf(TokenBudgetError);
    expect((refused as TokenBudgetError).code).toBe("user_budget_exceeded");
    const used = (await day(tf, "r1")).used;
    expect(used).toBeLessThanOrEqual(400);
    // Every request that reached the mock was charged, the refused one never reached it: the
    // user's total is the mock's own ledger of those requests.
    const n = mock.upstream.ledger().totals.requests - before;
    expect(n).toBeGreaterThan(0);
    const sent = mock.upstream.ledger().records.slice(-n);
    expect(used).toBe(sent.reduce((s, x) => s + x.promptTokens + x.completionTokens, 0));

    const err = await generateText({
      model: model(),
      prompt: "x",
      maxRetries: 0,
      headers: { "x-mock-fault": "500" },
      providerOptions: { tokenfuse: { user: "r2" } },
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect(await day(tf, "r2")).toMatchObject({ used: 0, reserved: 0 });
  });

  it("a stream cut mid-way is charged the output that passed, not the whole cap, and never left reserved", async () => {
    const r = streamText({
      model: model(),
      prompt: "hi",
      maxRetries: 0,
      headers: { "x-mock-fault": "reset-mid-stream" },
      providerOptions: { tokenfuse: { user: "c1" } },
      onError: () => {},
    });
    await r.consumeStream();
    const d = await day(tf, "c1");
    const rec = mock.upstream.ledger().records.at(-1);
    expect(rec?.status).toBe("reset");
    expect(d.reserved).toBe(0);
    expect(d.used).toBeGreaterThan(rec?.promptTokens ?? 0);
    expect(d.used).toBeLessThan((rec?.promptTokens ?? 0) + 40);
  });
});

describe("tokenfuseMiddleware: a streamText caller that stops reading", () => {
  let mock: MockServer;
  let tf: Tokenfuse;
  let provider: ReturnType<typeof createOpenAI>;
  beforeAll(async () => {
    // A long answer in small chunks: more than the streams' buffers hold once nobody reads.
    mock = await startMockServer({ completionTokens: 150, chunkTokens: 2 });
    provider = createOpenAI({ baseURL: mock.baseUrl, apiKey: "sk-test" });
    tf = fresh({ long: { model: "gpt-4o", max_input: 500, max_output: 200, on_exceed: "trim" } });
  });
  afterAll(async () => {
    await tf.close();
    await mock.close();
  });

  /** The user's day once nothing is reserved any more (or after 3 s, to fail with what is there). */
  const settledDay = async (user: string) => {
    const until = Date.now() + 3000;
    for (;;) {
      const d = await day(tf, user);
      if (d.reserved === 0 || Date.now() > until) return d;
      await new Promise((r) => setTimeout(r, 20));
    }
  };

  for (const how of ["break", "throw", "fullStream break"] as const) {
    it(`is charged what the provider generated and reported, nothing left reserved (${how})`, async () => {
      const user = `stop-${how.replace(" ", "-")}`;
      const r = streamText({
        model: wrapLanguageModel({
          model: provider.chat("gpt-4o"),
          middleware: tokenfuseMiddleware(tf, { feature: "long", user }),
        }),
        prompt: "tell me a long story",
        maxRetries: 0,
        onError: () => {},
      });
      let parts = 0;
      try {
        if (how === "fullStream break") {
          // Its first parts come before the model is called: stop at the first text.
          for await (const part of r.fullStream) {
            if (part.type !== "text-delta") continue;
            parts++;
            break;
          }
        } else {
          for await (const _ of r.textStream) {
            parts++;
            if (how === "throw") throw new Error("the caller failed");
            break;
          }
        }
      } catch (e) {
        expect((e as Error).message).toBe("the caller failed");
      }
      expect(parts).toBe(1);
      const d = await settledDay(user);
      const rec = mock.upstream.ledger().records.at(-1);
      expect(rec?.completionTokens).toBe(150);
      expect(d).toMatchObject({ used: (rec?.promptTokens ?? 0) + 150, reserved: 0 });
    });
  }
});

describe("tokenfuseMiddleware: the prompt, the context and the model", () => {
  const recording = recordingModel;
  const history = (turns: number) => {
    const msgs: Array<{ role: "user" | "assistant"; content: string }> = [];
    for (let i = 0; i < turns; i++) {
      msgs.push({ role: "user", content: `question ${i}: ${"lorem ipsum ".repeat(20)}` });
      msgs.push({ role: "assistant", content: `answer ${i}: ${"dolor sit amet ".repeat(20)}` });
    }
    msgs.push({ role: "user", content: "the newest question" });
    return msgs;
  };

  it("trims a long history: kept messages are sent as they were (provider options included), newest kept", async () => {
    const tf = fresh();
    const { m, calls } = recording();
    const messages = history(20).map((x, i) =>
      i === 0 ? { ...x, providerOptions: { anthropic: { cacheControl: { type: "ephemeral" } } } } : x,
    );
    const sys = { role: "system" as const, content: "Be brief.", providerOptions: { openai: { x: 1 } } };
    const res = await generateText({
      model: wrapLanguageModel({
        model: m,
        middleware: tokenfuseMiddleware(tf, { feature: "chat", user: "t1" }),
      }),
      instructions: sys,
      messages,
    });
    const sent = calls[0]?.prompt ?? [];
    expect(res.providerMetadata?.tokenfuse?.decision).toBe("trim");
    expect(res.providerMetadata?.tokenfuse?.trimmedMessages).toBeGreaterThan(0);
    expect(sent.length).toBeLessThan(messages.length + 1);
    expect(sent[0]).toMatchObject({
      role: "system",
      content: "Be brief.",
      providerOptions: { openai: { x: 1 } },
    });
    expect(sent.at(-1)).toMatchObject({
      role: "user",
      content: [{ type: "text", text: "the newest question" }],
    });
    expect(calls[0]?.maxOutputTokens).toBe(40);
    // What was sent fits the feature's max_input by tokenfuse's own count.
    expect(res.providerMetadata?.tokenfuse?.inputTokens).toBeLessThanOrEqual(500);
    expect(await day(tf, "t1")).toMatchObject({ used: 12, reserved: 0 });
  });

  it("truncate keeps the message's provider options; a summary is sent as a system message", async () => {
    const prompt = [
      {
        role: "user" as const,
        content: [{ type: "text" as const, text: "word ".repeat(2000), providerOptions: { p: { q: 1 } } }],
        providerOptions: { m: { n: 2 } },
      },
    ];
    const chat = chatMessagesOf(prompt);
    const cut = { ...(chat[0] as object), content: "word word" } as (typeof chat)[0];
    expect(promptOf([cut])).toEqual([
      {
        role: "user",
        content: [{ type: "text", text: "word word", providerOptions: { p: { q: 1 } } }],
        providerOptions: { m: { n: 2 } },
      },
    ]);
    expect(promptOf([{ role: "system", content: "Summary: …" }, chat[0] as (typeof chat)[0]])).toEqual([
      { role: "system", content: "Summary: …" },
      prompt[0],
    ]);

    const tf = fresh({ cut: { model: "gpt-4o", max_input: 100, max_output: 40, on_exceed: "truncate" } });
    const { m, calls } = recording();
    const res = await generateText({
      model: wrapLanguageModel({
        model: m,
        middleware: tokenfuseMiddleware(tf, { feature: "cut", user: "t2" }),
      }),
      messages: prompt,
    });
    expect(res.providerMetadata?.tokenfuse?.truncatedMessages).toBe(1);
    const sent = calls[0]?.prompt[0];
    expect(sent).toMatchObject({ role: "user", providerOptions: { m: { n: 2 } } });
    const part = (sent?.content as Array<{ text: string; providerOptions?: object }> | undefined)?.[0];
    expect(part?.providerOptions).toEqual({ p: { q: 1 } });
    expect(part?.text.length).toBeGreaterThan(0);
    expect(part?.text.length).toBeLessThan(2000);
  });

  it("a tool message with several results is sent once, and a call and its results are kept or dropped together", () => {
    const prompt = [
      { role: "user" as const, content: [{ type: "text" as const, text: "q" }] },
      {
        role: "assistant" as const,
        content: [
          { type: "tool-call" as const, toolCallId: "a", toolName: "f", input: {} },
          { type: "tool-call" as const, toolCallId: "b", toolName: "f", input: {} },
        ],
      },
      {
        role: "tool" as const,
        content: [
          {
            type: "tool-result" as const,
            toolCallId: "a",
            toolName: "f",
            output: { type: "text" as const, value: "1" },
          },
          {
            type: "tool-result" as const,
            toolCallId: "b",
            toolName: "f",
            output: { type: "text" as const, value: "2" },
          },
        ],
      },
    ];
    const chat = chatMessagesOf(prompt);
    expect(chat.map((c) => c.role)).toEqual(["user", "assistant", "tool", "tool"]);
    expect(promptOf(chat)).toEqual(prompt);
    expect(promptOf(chat)[2]).toBe(prompt[2]);
  });

  it("context: the call's providerOptions win over context(), which wins over the options; providerOptions.tokenfuse is not sent on", async () => {
    const tf = fresh({ other: { model: "gpt-4o", max_input: 500, max_output: 40, on_exceed: "trim" } });
    const { m, calls } = recording();
    const model = wrapLanguageModel({
      model: m,
      middleware: tokenfuseMiddleware(tf, {
        feature: "chat",
        user: "static",
        context: () => ({ user: "from-context" }),
      }),
    });
    const a = await generateText({ model, prompt: "hi" });
    expect(a.providerMetadata?.tokenfuse?.feature).toBe("chat");
    expect((await day(tf, "from-context")).used).toBe(12);
    const b = await generateText({
      model,
      prompt: "hi",
      providerOptions: { tokenfuse: { user: "from-call", feature: "other" }, openai: { store: false } },
    });
    expect(b.providerMetadata?.tokenfuse?.feature).toBe("other");
    expect((await day(tf, "from-call")).used).toBe(12);
    expect((await day(tf, "static")).used).toBe(0);
    expect(calls[1]?.providerOptions).toEqual({ openai: { store: false } });

    const none = wrapLanguageModel({ model: m, middleware: tokenfuseMiddleware(tf, { feature: "chat" }) });
    const e = await generateText({ model: none, prompt: "hi" }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(TokenBudgetError);
    expect((e as Error).message).toMatch(/no user for this call/);
    const bad = await generateText({
      model: none,
      prompt: "hi",
      providerOptions: { tokenfuse: { user: 7 } },
    }).catch((x: unknown) => x);
    expect((bad as Error).message).toMatch(/providerOptions\.tokenfuse\.user must be a non-empty string/);
    expect(calls).toHaveLength(2);
  });

  it("model assignment: refused (and released) without resolveModel, the assigned model called with it", async () => {
    const tf = fresh({ mini: { model: "gpt-4o-mini", max_input: 500, max_output: 40, on_exceed: "trim" } });
    const wrapped = recording("gpt-4o");
    const assigned = recording("gpt-4o-mini");
    const e = await generateText({
      model: wrapLanguageModel({
        model: wrapped.m,
        middleware: tokenfuseMiddleware(tf, { feature: "mini", user: "m1" }),
      }),
      prompt: "hi",
    }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(TokenBudgetError);
    expect(e).toMatchObject({ code: "invalid_request", param: "model" });
    expect((e as Error).message).toContain('assigns model "gpt-4o-mini"');
    expect(await day(tf, "m1")).toMatchObject({ used: 0, reserved: 0 });
    expect(wrapped.calls).toHaveLength(0);

    const res = await generateText({
      model: wrapLanguageModel({
        model: wrapped.m,
        middleware: tokenfuseMiddleware(tf, { feature: "mini", user: "m2", resolveModel: () => assigned.m }),
      }),
      prompt: "hi",
    });
    expect(res.providerMetadata?.tokenfuse?.model).toBe("gpt-4o-mini");
    expect(wrapped.calls).toHaveLength(0);
    expect(assigned.calls).toHaveLength(1);
    expect(await day(tf, "m2")).toMatchObject({ used: 12, reserved: 0 });
  });
});

describe("tokenfuseMiddleware: streams that end badly", () => {
  const streamModel = (parts: LanguageModelV4StreamPart[], failAtEnd = false) => {
    let i = 0;
    return new MockLanguageModelV4({
      modelId: "gpt-4o",
      doStream: async () => ({
        stream: new ReadableStream<LanguageModelV4StreamPart>({
          // One part per pull, then the end: an error raised only after every part was read.
          pull(c) {
            const p = parts[i++];
            if (p) c.enqueue(p);
            else if (failAtEnd) c.error(new Error("connection reset"));
            else c.close();
          },
        }),
      }),
    });
  };
  const text = (s: string): LanguageModelV4StreamPart[] => [
    { type: "text-start", id: "t" },
    { type: "text-delta", id: "t", delta: s },
    { type: "text-end", id: "t" },
  ];
  const finish = (usage: unknown): LanguageModelV4StreamPart =>
    ({ type: "finish", finishReason: { unified: "stop", raw: "stop" }, usage }) as LanguageModelV4StreamPart;
  const run = async (
    tf: Tokenfuse,
    user: string,
    parts: LanguageModelV4StreamPart[],
    failAtEnd = false,
    logger?: Logger,
  ) => {
    const r = streamText({
      model: wrapLanguageModel({
        model: streamModel(parts, failAtEnd),
        middleware: tokenfuseMiddleware(tf, { feature: "chat", user, ...(logger ? { logger } : {}) }),
      }),
      prompt: "hi",
      onError: () => {},
    });
    await r.consumeStream();
    return day(tf, user);
  };

  it("charges the reported usage; the cap when a clean end reports none; after a cut, an error part or an interruption the input and what passed; never nothing once the stream began", async () => {
    const warnings: string[] = [];
    const logger: Logger = { info() {}, warn: (_o, m) => void warnings.push(m ?? ""), error() {} };
    const tf = fresh();
    const words = "hello world, here is the answer";
    expect(await run(tf, "ok", [...text(words), finish(usageOf(9, 7))])).toMatchObject({
      used: 16,
      reserved: 0,
    });
    const noUsage = await run(
      tf,
      "none",
      [...text(words), finish({ inputTokens: {}, outputTokens: {} })],
      false,
      logger,
    );
    const cut = await run(tf, "cut", text(words), true);
    const ended = await run(tf, "ended", text(words));
    // What @ai-sdk/openai emits after an error chunk: an error part, then a finish without usage.
    const errorPart = await run(tf, "error-part", [
      ...text(words),
      { type: "error", error: new Error("server_error") },
      {
        ...finish({ inputTokens: {}, outputTokens: {} }),
        finishReason: { unified: "error", raw: undefined },
      } as LanguageModelV4StreamPart,
    ]);
    const interrupted = await run(tf, "interrupted", [
      ...text(words),
      {
        ...finish({ inputTokens: {}, outputTokens: {} }),
        finishReason: { unified: "interrupted", raw: undefined },
      } as LanguageModelV4StreamPart,
    ]);
    const empty = await run(tf, "empty", [], true);
    for (const d of [noUsage, cut, ended, errorPart, interrupted, empty]) expect(d.reserved).toBe(0);
    // The stream began, so the provider processed the input: charged even when nothing passed.
    expect(empty.used).toBeGreaterThan(0);
    // The output that passed is charged on top.
    expect(cut.used).toBeGreaterThan(empty.used);
    for (const d of [ended, errorPart, interrupted]) expect(d.used).toBe(cut.used);
    // No usage at a clean end: the input and the whole cap (40), like the openai wrapper.
    expect(noUsage.used).toBe(empty.used + 40);
    expect(warnings.some((w) => w.includes("no usage reported"))).toBe(true);
  });

  it("a consumer that cancels the stream, or aborts the call, is charged what passed, once", async () => {
    const tf = fresh();
    /** A stream that sends one text delta, then waits; it fails when the call is aborted. */
    const hanging = () =>
      new MockLanguageModelV4({
        modelId: "gpt-4o",
        doStream: async (o) => ({
          stream: new ReadableStream<LanguageModelV4StreamPart>({
            start(c) {
              for (const p of text("first words")) c.enqueue(p);
              o.abortSignal?.addEventListener("abort", () => c.error(new Error("aborted")));
            },
          }),
        }),
      });
    // Cancelled by the reader (what a consumer that stops reading the model's stream does).
    const model = wrapLanguageModel({
      model: hanging(),
      middleware: tokenfuseMiddleware(tf, { feature: "chat", user: "cancel" }),
    });
    const { stream } = await model.doStream({
      prompt: [{ role: "user", content: [{ type: "text", text: "hi" }] }],
    });
    const reader = stream.getReader();
    for (let i = 0; i < 3; i++) await reader.read();
    expect((await day(tf, "cancel")).reserved).toBeGreaterThan(0);
    await reader.cancel();
    await reader.cancel(); // a second cancel settles nothing again
    const cancelled = await day(tf, "cancel");
    expect(cancelled.reserved).toBe(0);
    expect(cancelled.used).toBeGreaterThan(0);

    // Aborted through streamText's abortSignal.
    const ac = new AbortController();
    const r = streamText({
      model: wrapLanguageModel({
        model: hanging(),
        middleware: tokenfuseMiddleware(tf, { feature: "chat", user: "abort" }),
      }),
      prompt: "hi",
      abortSignal: ac.signal,
      onError: () => {},
    });
    for await (const chunk of r.textStream) {
      expect(chunk).toBe("first words");
      ac.abort();
    }
    await expect.poll(async () => (await day(tf, "abort")).reserved, { timeout: 2000 }).toBe(0);
    expect((await day(tf, "abort")).used).toBe(cancelled.used);
  });
});
