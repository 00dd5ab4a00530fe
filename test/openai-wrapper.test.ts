import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TokenBudgetError } from "../src/core/errors.js";
import { type Logger, silentLogger } from "../src/core/logger.js";
import { type MockServer, startMockServer } from "../src/gateway/mock/mock-server.js";
import { guardOpenAI, type OpenAIChatClient } from "../src/integrations/openai.js";
import { createMemoryStore } from "../src/stores/memory-store.js";
import { createTokenfuse, type Tokenfuse } from "../src/tokenfuse.js";
import { getChatTokenizer } from "../src/tokenizers/index.js";

/** A tokenfuse with room to spare: feature chat (gpt-4o, output cap 40), 100 000 tokens a day. */
const fresh = () =>
  createTokenfuse({
    config: {
      features: { chat: { model: "gpt-4o", max_input: 500, max_output: 40, on_exceed: "trim" } },
      tiers: { free: { daily_tokens: 100_000 } },
      default_tier: "free",
    },
    store: createMemoryStore(),
    logger: silentLogger,
  });

describe("guardOpenAI: the official client wrapped by the library", () => {
  let mock: MockServer;
  let tf: Tokenfuse;
  let client: OpenAI;
  beforeAll(async () => {
    mock = await startMockServer({ completionTokens: 25, chunkTokens: 4 });
    client = new OpenAI({ baseURL: mock.baseUrl, apiKey: "sk-test", maxRetries: 0 });
    tf = createTokenfuse({
      config: {
        features: { chat: { model: "gpt-4o", max_input: 500, max_output: 40, on_exceed: "trim" } },
        tiers: { free: { daily_tokens: 400 } },
        default_tier: "free",
      },
      store: createMemoryStore(),
      logger: silentLogger,
    });
  });
  afterAll(async () => {
    await tf.close();
    await mock.close();
  });

  it("non-streaming: sends the feature's model and cap, settles the reported usage", async () => {
    const g = guardOpenAI(client as never, tf);
    const res = (await g.create(
      { feature: "chat", user: "w1" },
      { model: "gpt-3.5-turbo", messages: [{ role: "user", content: "hi" }], max_tokens: 999 },
    )) as OpenAI.ChatCompletion;
    expect(res.model).toBe("gpt-4o");
    const rec = mock.upstream.ledger().records.at(-1);
    expect(rec?.model).toBe("gpt-4o");
    expect((await tf.remaining({ user: "w1" })).user.day).toMatchObject({
      used: res.usage?.total_tokens,
      reserved: 0,
    });
  });

  it("streaming: settles from the usage chunk it requested, and drops that chunk for the caller", async () => {
    const g = guardOpenAI(client as never, tf);
    let sawUsage = false;
    let text = "";
    for await (const c of g.stream(
      { feature: "chat", user: "w2" },
      { model: "gpt-4o", messages: [{ role: "user", content: "hi" }] },
    )) {
      const chunk = c as OpenAI.ChatCompletionChunk;
      if (chunk.usage) sawUsage = true;
      text += chunk.choices[0]?.delta?.content ?? "";
    }
    expect(sawUsage).toBe(false);
    expect(text.length).toBeGreaterThan(0);
    const rec = mock.upstream.ledger().records.at(-1);
    expect((await tf.remaining({ user: "w2" })).user.day).toMatchObject({
      used: (rec?.promptTokens ?? 0) + (rec?.completionTokens ?? 0),
      reserved: 0,
    });
  });

  it("a non-streamed answer whose body is cut after its 200 is charged (input + cap), not released", async () => {
    const own = fresh();
    const messages = [{ role: "user", content: "Tell me a long story" }];
    const before = mock.upstream.ledger().totals.requests;
    // The real client throws a plain TypeError ("terminated", no status) for a body cut mid-way.
    const e = await guardOpenAI(client as never, own)
      .create(
        { feature: "chat", user: "cut" },
        { model: "gpt-4o", messages },
        { headers: { "x-mock-fault": "reset-mid-stream" } },
      )
      .catch((x: unknown) => x);
    expect(e).toBeInstanceOf(Error);
    expect((e as { status?: unknown }).status).toBeUndefined();
    expect(mock.upstream.ledger().totals.requests - before).toBe(1);
    const prompt = getChatTokenizer("o200k_base").countChat(messages);
    expect((await own.remaining({ user: "cut" })).user.day).toMatchObject({ used: prompt + 40, reserved: 0 });
    await own.close();
  });

  it("a refusal throws TokenBudgetError before anything is sent; a provider error releases the reservation", async () => {
    const g = guardOpenAI(client as never, tf);
    const before = mock.upstream.ledger().totals.requests;
    let refused: unknown;
    for (let i = 0; i < 20 && !refused; i++) {
      await g
        .create(
          { feature: "chat", user: "w3" },
          { model: "gpt-4o", messages: [{ role: "user", content: "hello" }] },
        )
        .catch((e) => (refused = e));
    }
    expect(refused).toBeInstanceOf(TokenBudgetError);
    expect((refused as TokenBudgetError).code).toBe("user_budget_exceeded");
    const sent = mock.upstream.ledger().totals.requests - before;
    const failing = guardOpenAI(
      { chat: { completions: { create: async () => Promise.reject(new Error("provider down")) } } },
      tf,
    );
    await expect(
      failing.create(
        { feature: "chat", user: "w4" },
        { model: "gpt-4o", messages: [{ role: "user", content: "x" }] },
      ),
    ).rejects.toThrow("provider down");
    expect((await tf.remaining({ user: "w4" })).user.day).toMatchObject({ used: 0, reserved: 0 });
    expect(mock.upstream.ledger().totals.requests - before).toBe(sent);
  });
});

describe("guardOpenAI: what the provider generated is charged even when its usage cannot be", () => {
  const msgs = [{ role: "user", content: "hi" }];
  /** A fake client (no network): a response object, or a stream of chunks that may fail at the end. */
  const respond = (res: unknown): OpenAIChatClient => ({
    chat: { completions: { create: async () => res } },
  });
  const streamOf = (chunks: unknown[], failAtEnd: boolean): OpenAIChatClient => ({
    chat: {
      completions: {
        create: async () =>
          (async function* () {
            yield* chunks;
            if (failAtEnd) throw new Error("connection reset");
          })(),
      },
    },
  });
  const drain = async (it: AsyncIterable<unknown>) => {
    for await (const _ of it);
  };
  const day = async (tf: Tokenfuse, user: string) => (await tf.remaining({ user })).user.day;

  it("legacy functions count as input: a huge definition is refused before the provider is called", async () => {
    const tf = fresh();
    let called = 0;
    const client: OpenAIChatClient = {
      chat: {
        completions: {
          create: async () => {
            called++;
            return { usage: { prompt_tokens: 1, completion_tokens: 1 } };
          },
        },
      },
    };
    const g = guardOpenAI(client, tf);
    const fn = {
      name: "f",
      description: "word ".repeat(2000),
      parameters: { type: "object", properties: {} },
    };
    const e = await g
      .create({ feature: "chat", user: "fx" }, { model: "gpt-4o", messages: msgs, functions: [fn] })
      .catch((x: unknown) => x);
    expect((e as { code?: string }).code).toBe("input_budget_exceeded");
    expect(called).toBe(0);
    expect(await day(tf, "fx")).toMatchObject({ used: 0, reserved: 0 });
  });

  it("a usage the engine refuses is settled like a missing one (cap when complete, text when cut), logged, and never left reserved", async () => {
    const warnings: Array<{ o: object; m: string }> = [];
    const logger: Logger = { info() {}, warn: (o, m) => void warnings.push({ o, m: m ?? "" }), error() {} };
    const tf = fresh();
    const text = { choices: [{ delta: { content: "hello world, here is the answer" } }] };
    const bad = { prompt_tokens: 5, completion_tokens: 2.5 };
    for (const [user, usage] of [
      ["missing", undefined],
      ["empty", {}],
      ["floats", bad],
    ] as const) {
      // Non-streaming.
      const res = await guardOpenAI(respond({ usage }), tf, { logger }).create(
        { feature: "chat", user: `${user}-create` },
        { model: "gpt-4o", messages: msgs },
      );
      expect(res).toEqual({ usage });
      // A stream that completed.
      await drain(
        guardOpenAI(streamOf([text, { choices: [], usage }], false), tf, { logger }).stream(
          { feature: "chat", user: `${user}-done` },
          { model: "gpt-4o", messages: msgs },
        ),
      );
      // A stream that failed after its (refused) usage chunk.
      await expect(
        drain(
          guardOpenAI(streamOf([text, { choices: [], usage }], true), tf, { logger }).stream(
            { feature: "chat", user: `${user}-cut` },
            { model: "gpt-4o", messages: msgs },
          ),
        ),
      ).rejects.toThrow("connection reset");
    }
    for (const kind of ["create", "done", "cut"]) {
      const missing = await day(tf, `missing-${kind}`);
      expect(missing.reserved).toBe(0);
      expect(missing.used).toBeGreaterThan(0);
      expect(await day(tf, `empty-${kind}`)).toEqual(missing);
      expect(await day(tf, `floats-${kind}`)).toEqual(missing);
    }
    // A completed call is charged its cap; a cut stream only the text that passed.
    expect((await day(tf, "missing-cut")).used).toBeLessThan((await day(tf, "missing-done")).used);
    expect(warnings.filter((w) => w.m.includes("invalid usage reported")).map((w) => w.o)).toContainEqual(
      expect.objectContaining({ feature: "chat", reason: "invalid usage reported" }),
    );
    expect(warnings.filter((w) => w.m.includes("invalid usage reported"))).toHaveLength(6);
    await tf.close();
  });

  it("a stream that fails after tool-call output is charged an estimate of it, like the same text as content", async () => {
    const tf = fresh();
    const args = `{"query":"${"a long argument ".repeat(40)}"}`;
    const toolCall = {
      choices: [{ delta: { tool_calls: [{ index: 0, function: { name: "lookup", arguments: "" } }] } }],
    };
    const toolArgs = {
      choices: [{ delta: { tool_calls: [{ index: 0, function: { arguments: args } }] } }],
    };
    await expect(
      drain(
        guardOpenAI(streamOf([toolCall, toolArgs], true), tf).stream(
          { feature: "chat", user: "tools" },
          { model: "gpt-4o", messages: msgs },
        ),
      ),
    ).rejects.toThrow("connection reset");
    await expect(
      drain(
        guardOpenAI(streamOf([{ choices: [{ delta: { content: `lookup${args}` } }] }], true), tf).stream(
          { feature: "chat", user: "content" },
          { model: "gpt-4o", messages: msgs },
        ),
      ),
    ).rejects.toThrow("connection reset");
    const content = await day(tf, "content");
    expect(content.reserved).toBe(0);
    // The text is longer than the output cap (40): what passed is charged up to the cap, not beyond.
    expect(content.used).toBe(getChatTokenizer("o200k_base").countChat(msgs) + 40);
    expect(await day(tf, "tools")).toEqual(content);
    await tf.close();
  });

  it("a stream of n > 1 choices that fails is estimated choice by choice, not as one string of interleaved pieces", async () => {
    const tf = fresh();
    const piece = (index: number, content: string) => ({ choices: [{ index, delta: { content } }] });
    await expect(
      drain(
        guardOpenAI(
          streamOf([piece(0, "Hel"), piece(1, "Wor"), piece(0, "lo"), piece(1, "ld")], true),
          tf,
        ).stream({ feature: "chat", user: "two" }, { model: "gpt-4o", messages: msgs, n: 2 }),
      ),
    ).rejects.toThrow("connection reset");
    const t = getChatTokenizer("o200k_base");
    expect(t.countText("HelWorlold")).not.toBe(t.countText("Hello") + t.countText("World"));
    expect(await day(tf, "two")).toMatchObject({
      used: t.countChat(msgs) + t.countText("Hello") + t.countText("World"),
      reserved: 0,
    });
    await tf.close();
  });

  it("a settlement that fails after the provider answered is logged, and the paid answer returned", async () => {
    const errors: string[] = [];
    const logger: Logger = { info() {}, warn() {}, error: (_o, m) => void errors.push(m ?? "") };
    const base = createMemoryStore();
    // A store whose settlements fail for a reason that is not an outage (an outage is queued).
    const store = new Proxy(base, {
      get(target, prop, receiver) {
        if (prop === "settle") return async () => Promise.reject(new Error("not a counter"));
        return Reflect.get(target, prop, receiver);
      },
    });
    const tf = createTokenfuse({
      config: {
        features: { chat: { model: "gpt-4o", max_input: 500, max_output: 40, on_exceed: "trim" } },
        tiers: { free: { daily_tokens: 100_000 } },
        default_tier: "free",
      },
      store,
      logger: silentLogger,
    });
    const answer = {
      choices: [{ message: { content: "hi" } }],
      usage: { prompt_tokens: 5, completion_tokens: 1 },
    };
    const res = await guardOpenAI(respond(answer), tf, { logger }).create(
      { feature: "chat", user: "u" },
      { model: "gpt-4o", messages: msgs },
    );
    expect(res).toBe(answer);
    expect(errors).toContain("settlement failed");
    await tf.close();
  });
});
