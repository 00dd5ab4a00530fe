import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TokenBudgetError } from "../src/core/errors.js";
import { silentLogger } from "../src/core/logger.js";
import { type MockServer, startMockServer } from "../src/gateway/mock/mock-server.js";
import { guardOpenAI } from "../src/integrations/openai.js";
import { createMemoryStore } from "../src/stores/memory-store.js";
import { createTokenfuse, type Tokenfuse } from "../src/tokenfuse.js";

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
