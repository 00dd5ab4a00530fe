import { describe, expect, it } from "vitest";
import { tokenizerForModel } from "../../tokenizers/index.js";
import { createMockUpstream } from "./mock-upstream.js";
import {
  completion,
  expectInvalid,
  fakeSleep,
  MESSAGES,
  mock,
  mockTextOf,
  NOW_MS,
  streamed,
} from "./test-mock-calls.js";
import { contentByChoice, expectChunkFieldOrder, type TestChunk, usageChunk } from "./test-openai-shapes.js";

describe("mock upstream, JSON", { timeout: 10_000 }, () => {
  it.each(["gpt-4o", "gpt-4o-mini", "gpt-4", "gpt-3.5-turbo"])(
    "answers %s in OpenAI's format with exact usage",
    async (model) => {
      const upstream = mock();
      const body = await completion(upstream, { model, messages: MESSAGES });
      expect(Object.keys(body)).toEqual([
        "id",
        "object",
        "created",
        "model",
        "choices",
        "usage",
        "system_fingerprint",
      ]);
      expect(body.id).toMatch(/^chatcmpl-mock-\d+$/);
      expect(body.object).toBe("chat.completion");
      expect(body.created).toBe(Math.floor(NOW_MS / 1000));
      expect(body.model).toBe(model);
      expect(body.system_fingerprint).toBe("fp_mock");
      expect(body.choices).toHaveLength(1);
      const [choice] = body.choices;
      expect(choice?.index).toBe(0);
      expect(choice?.message.role).toBe("assistant");
      expect(choice?.finish_reason).toBe("stop");
      const tokenizer = tokenizerForModel(model);
      expect(tokenizer.countText(choice?.message.content ?? "")).toBe(50);
      expect(body.usage).toEqual({
        prompt_tokens: tokenizer.countChat(MESSAGES),
        completion_tokens: 50,
        total_tokens: tokenizer.countChat(MESSAGES) + 50,
        prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
        completion_tokens_details: {
          reasoning_tokens: 0,
          audio_tokens: 0,
          accepted_prediction_tokens: 0,
          rejected_prediction_tokens: 0,
        },
      });
    },
  );

  it("counts the prompt with tools, and counts non-OpenAI models with the estimator", async () => {
    const upstream = mock();
    const tools = [
      {
        type: "function",
        function: {
          name: "lookup",
          description: "Look a word up.",
          parameters: { type: "object", properties: {} },
        },
      },
    ];
    const withTools = await completion(upstream, { model: "gpt-4o", messages: MESSAGES, tools });
    expect(withTools.usage?.prompt_tokens).toBe(tokenizerForModel("gpt-4o").countChat(MESSAGES, tools));
    expect(withTools.usage?.prompt_tokens).toBeGreaterThan(tokenizerForModel("gpt-4o").countChat(MESSAGES));
    const claude = await completion(upstream, { model: "claude-sonnet-4-5", messages: MESSAGES });
    expect(claude.usage?.prompt_tokens).toBe(tokenizerForModel("claude-sonnet-4-5").countChat(MESSAGES));
    expect(claude.usage?.completion_tokens).toBe(50);
  });

  it("numbers ids and honours the configured length", async () => {
    const upstream = mock({ completionTokens: 12 });
    const a = await completion(upstream, { model: "gpt-4o", messages: MESSAGES });
    const b = await completion(upstream, { model: "gpt-4o", messages: MESSAGES });
    expect([a.id, b.id]).toEqual(["chatcmpl-mock-1", "chatcmpl-mock-2"]);
    expect(a.usage?.completion_tokens).toBe(12);
    expect(a.choices[0]?.message.content).toBe(b.choices[0]?.message.content);
  });

  it.each([
    [{ max_tokens: 10 }, 10, "length"],
    [{ max_completion_tokens: 20, max_tokens: 12 }, 12, "length"],
    [{ max_completion_tokens: 8, max_tokens: 30 }, 8, "length"],
    [{ max_tokens: 49 }, 49, "length"],
    [{ max_tokens: 50 }, 50, "stop"],
    [{ max_completion_tokens: 500 }, 50, "stop"],
    [{ max_tokens: null }, 50, "stop"],
  ])("never exceeds the request's cap %j", async (caps, tokens, finish) => {
    const upstream = mock();
    const body = await completion(upstream, { model: "gpt-4o", messages: MESSAGES, ...caps });
    expect(body.usage?.completion_tokens).toBe(tokens);
    expect(tokenizerForModel("gpt-4o").countText(body.choices[0]?.message.content ?? "")).toBe(tokens);
    expect(body.choices[0]?.finish_reason).toBe(finish);
  });

  it("answers n choices of the same length, usage over all of them", async () => {
    const upstream = mock({ completionTokens: 9 });
    const body = await completion(upstream, { model: "gpt-4", messages: MESSAGES, n: 3, max_tokens: 7 });
    expect(body.choices.map((c) => c.index)).toEqual([0, 1, 2]);
    const tokenizer = tokenizerForModel("gpt-4");
    for (const c of body.choices) {
      expect(tokenizer.countText(c.message.content)).toBe(7);
      expect(c.finish_reason).toBe("length");
    }
    expect(new Set(body.choices.map((c) => c.message.content)).size).toBe(3);
    expect(body.usage?.completion_tokens).toBe(21);
  });

  it("lets x-mock-completion-tokens override the length per request, still under the cap", async () => {
    const upstream = mock();
    const seven = await completion(
      upstream,
      { model: "gpt-4o", messages: MESSAGES },
      { "x-mock-completion-tokens": "7" },
    );
    expect(seven.usage?.completion_tokens).toBe(7);
    expect(tokenizerForModel("gpt-4o").countText(seven.choices[0]?.message.content ?? "")).toBe(7);
    const capped = await completion(
      upstream,
      { model: "gpt-4o", messages: MESSAGES, max_tokens: 5 },
      { "x-mock-completion-tokens": "300" },
    );
    expect(capped.usage?.completion_tokens).toBe(5);
    expect(capped.choices[0]?.finish_reason).toBe("length");
    const none = await completion(
      upstream,
      { model: "gpt-4o", messages: MESSAGES },
      { "x-mock-completion-tokens": "0" },
    );
    expect(none.choices[0]?.message.content).toBe("");
    expect(none.usage?.completion_tokens).toBe(0);
  });

  it("leaves usage out under the no-usage fault", async () => {
    const upstream = mock();
    const body = await completion(
      upstream,
      { model: "gpt-4o", messages: MESSAGES },
      { "x-mock-fault": "no-usage" },
    );
    expect(body).not.toHaveProperty("usage");
    expect(body.choices[0]?.message.content).toBe(mockTextOf(50));
  });

  it.each([
    ["a non-object body", [1, 2], null],
    ["no model", { messages: MESSAGES }, "model"],
    ["a non-string model", { model: 4, messages: MESSAGES }, "model"],
    ["messages not an array", { model: "gpt-4o", messages: "hi" }, "messages"],
    ["empty messages", { model: "gpt-4o", messages: [] }, "messages"],
    ["a message without role", { model: "gpt-4o", messages: [{ content: "x" }] }, "messages[0]"],
    ["a null message", { model: "gpt-4o", messages: [MESSAGES[0], null] }, "messages[1]"],
    ["tools not an array", { model: "gpt-4o", messages: MESSAGES, tools: {} }, "tools"],
    ["n = 0", { model: "gpt-4o", messages: MESSAGES, n: 0 }, "n"],
    ["n = 129", { model: "gpt-4o", messages: MESSAGES, n: 129 }, "n"],
    ["fractional max_tokens", { model: "gpt-4o", messages: MESSAGES, max_tokens: 1.5 }, "max_tokens"],
    [
      "max_completion_tokens = 0",
      { model: "gpt-4o", messages: MESSAGES, max_completion_tokens: 0 },
      "max_completion_tokens",
    ],
    ["stream as a string", { model: "gpt-4o", messages: MESSAGES, stream: "yes" }, "stream"],
    [
      "stream_options without stream",
      { model: "gpt-4o", messages: MESSAGES, stream_options: { include_usage: true } },
      "stream_options",
    ],
  ])("refuses %s with OpenAI's 400 envelope", async (_label, body, param) => {
    await expectInvalid(mock(), body, param);
  });

  it.each([
    [{ "x-mock-fault": "explode" }],
    [{ "x-mock-completion-tokens": "-3" }],
    [{ "x-mock-completion-tokens": "12abc" }],
    [{ "x-mock-completion-tokens": "1000001" }],
    [{ "x-mock-fault-after-chunks": "x" }],
  ])("refuses malformed test headers %j", async (headers) => {
    const upstream = mock();
    await expectInvalid(upstream, { model: "gpt-4o", messages: MESSAGES }, null, headers);
    expect(upstream.ledger().totals.requests).toBe(0);
  });

  it("rejects nonsensical options at creation", () => {
    expect(() => createMockUpstream({ chunkTokens: 0 })).toThrow(RangeError);
    expect(() => createMockUpstream({ completionTokens: -1 })).toThrow(RangeError);
    expect(() => createMockUpstream({ latencyMs: 1.5 })).toThrow(RangeError);
  });
});

describe("mock upstream, streaming", { timeout: 10_000 }, () => {
  it("streams OpenAI's chunk sequence with the usage chunk when asked", async () => {
    const upstream = mock({ completionTokens: 12, chunkTokens: 5 });
    const { chunks, done, text } = await streamed(upstream, {
      model: "gpt-4o",
      messages: MESSAGES,
      stream_options: { include_usage: true },
    });
    expect(done).toBe(true);
    expect(text.endsWith("\n\ndata: [DONE]\n\n")).toBe(true);
    expect(text.split("\n\n").every((e) => e === "" || e.startsWith("data: "))).toBe(true);
    // role, 3 content chunks (5 + 5 + 2), finish, usage
    expect(chunks).toHaveLength(6);
    for (const c of chunks) {
      expectChunkFieldOrder(c, true);
      expect(c.id).toBe("chatcmpl-mock-1");
      expect(c.created).toBe(Math.floor(NOW_MS / 1000));
      expect(c.model).toBe("gpt-4o");
    }
    const [role, ...rest] = chunks as [TestChunk, ...TestChunk[]];
    expect(role.choices).toEqual([
      {
        index: 0,
        delta: { role: "assistant", content: "", refusal: null },
        logprobs: null,
        finish_reason: null,
      },
    ]);
    const tokenizer = tokenizerForModel("gpt-4o");
    expect(rest.slice(0, 3).map((c) => tokenizer.countText(c.choices[0]?.delta.content ?? ""))).toEqual([
      5, 5, 2,
    ]);
    expect(rest[3]?.choices).toEqual([{ index: 0, delta: {}, logprobs: null, finish_reason: "stop" }]);
    expect(rest[4]?.choices).toEqual([]);
    for (const c of chunks.slice(0, -1)) expect(c.usage).toBeNull();
    expect(usageChunk(chunks)?.usage).toMatchObject({
      prompt_tokens: tokenizer.countChat(MESSAGES),
      completion_tokens: 12,
      total_tokens: tokenizer.countChat(MESSAGES) + 12,
    });
    expect(contentByChoice(chunks)[0]).toBe(mockTextOf(12));
  });

  it("sends no usage field at all without include_usage", async () => {
    const upstream = mock();
    for (const options of [undefined, null, {}, { include_usage: false }]) {
      const { chunks, done } = await streamed(upstream, {
        model: "gpt-4o",
        messages: MESSAGES,
        stream_options: options,
      });
      expect(done).toBe(true);
      for (const c of chunks) expectChunkFieldOrder(c, false);
      expect(chunks.every((c) => c.choices.length === 1)).toBe(true);
      expect(usageChunk(chunks)).toBeUndefined();
    }
  });

  it("drops the usage chunk under the no-usage fault even when asked", async () => {
    const upstream = mock();
    const { chunks, done } = await streamed(
      upstream,
      { model: "gpt-4o", messages: MESSAGES, stream_options: { include_usage: true } },
      { "x-mock-fault": "no-usage" },
    );
    expect(done).toBe(true);
    expect(usageChunk(chunks)).toBeUndefined();
    expect(chunks.at(-1)?.choices[0]?.finish_reason).toBe("stop");
    expect(contentByChoice(chunks)[0]).toBe(mockTextOf(50));
  });

  it.each(["gpt-4o", "gpt-4"])("reports the same usage and text streamed or not (%s)", async (model) => {
    const upstream = mock({ completionTokens: 23, chunkTokens: 4 });
    const request = { model, messages: MESSAGES, n: 2, max_completion_tokens: 17 };
    const whole = await completion(upstream, request);
    const { chunks } = await streamed(upstream, { ...request, stream_options: { include_usage: true } });
    expect(usageChunk(chunks)?.usage).toEqual(whole.usage);
    expect(contentByChoice(chunks)).toEqual(whole.choices.map((c) => c.message.content));
    const tokenizer = tokenizerForModel(model);
    for (const text of contentByChoice(chunks)) expect(tokenizer.countText(text)).toBe(17);
    const finishes = chunks.flatMap((c) => c.choices.filter((x) => x.finish_reason !== null));
    expect(finishes.map((x) => [x.index, x.finish_reason])).toEqual([
      [0, "length"],
      [1, "length"],
    ]);
  });

  it("streams n choices: a role chunk each, one choice per chunk", async () => {
    const upstream = mock({ completionTokens: 6, chunkTokens: 3 });
    const { chunks } = await streamed(upstream, {
      model: "gpt-4o",
      messages: MESSAGES,
      n: 2,
      stream_options: { include_usage: true },
    });
    expect(chunks.slice(0, 2).map((c) => c.choices[0]?.delta.role)).toEqual(["assistant", "assistant"]);
    expect(chunks.slice(0, -1).every((c) => c.choices.length === 1)).toBe(true);
    expect(chunks.map((c) => c.choices[0]?.index ?? "usage")).toEqual([0, 1, 0, 1, 0, 1, 0, 1, "usage"]);
    expect(usageChunk(chunks)?.usage?.completion_tokens).toBe(12);
  });

  it("waits latencyMs before answering and chunkDelayMs between chunks", async () => {
    const { calls, sleep } = fakeSleep();
    const upstream = mock({ latencyMs: 40, chunkDelayMs: 3, completionTokens: 4, chunkTokens: 2, sleep });
    const { chunks } = await streamed(upstream, { model: "gpt-4o", messages: MESSAGES });
    // latency, then a delay before each chunk after the first: 4 chunks + [DONE]
    expect(chunks).toHaveLength(4);
    expect(calls).toEqual([40, 3, 3, 3, 3]);
    calls.length = 0;
    await completion(upstream, { model: "gpt-4o", messages: MESSAGES });
    expect(calls).toEqual([40]);
  });
});
