import { describe, expect, it } from "vitest";
import { TokenBudgetError } from "./core/errors.js";
import { silentLogger } from "./core/logger.js";
import type { ChatMessage } from "./core/types.js";
import { createMemoryStore } from "./stores/memory-store.js";
import { createTokenfuse } from "./tokenfuse.js";
import { getChatTokenizer } from "./tokenizers/index.js";

function fixedClock(iso: string) {
  let now = Date.parse(iso);
  return {
    nowMs: () => now,
    advance: (ms: number) => (now += ms),
    set: (s: string) => (now = Date.parse(s)),
  };
}

const baseConfig = {
  features: {
    chat: { model: "gpt-4o", max_input: 4000, max_output: 1000, on_exceed: "trim" },
    summarize: { model: "gpt-4o-mini", max_input: 16000, max_output: 500, on_exceed: "reject" },
    quick: {
      model: "gpt-4.1-nano",
      max_input: 1000,
      max_output: 200,
      on_exceed: "truncate",
      allowed_models: ["gpt-4.1-mini"],
    },
    capped: { model: "gpt-4o", max_input: 1000, max_output: 100, on_exceed: "reject", daily_tokens: 1000 },
  },
  tiers: {
    free: { daily_tokens: 10000 },
    pro: { daily_tokens: 100000, tokens_per_minute: 2000, time_zone: "America/New_York" },
  },
  default_tier: "free",
  global: { tokens_per_minute: 1000000 },
};

function make(clock = fixedClock("2026-11-24T12:00:00Z"), config: Record<string, unknown> = baseConfig) {
  return createTokenfuse({ config, clock, logger: silentLogger, store: createMemoryStore() });
}

const msgs = (text: string): ChatMessage[] => [
  { role: "system", content: "You are terse." },
  { role: "user", content: text },
];

async function expectCode(p: Promise<unknown>, code: string): Promise<TokenBudgetError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(TokenBudgetError);
  expect((e as TokenBudgetError).code).toBe(code);
  return e as TokenBudgetError;
}

describe("createTokenfuse: admit and settle", () => {
  it("admits with the feature's model, the exact input count and the injected output cap", async () => {
    const tf = make();
    const m = msgs("How many tokens is this?");
    const a = await tf.admit({ feature: "chat", user: "u1", messages: m, model: "gpt-3.5-turbo" });
    expect(a.model).toBe("gpt-4o");
    expect(a.inputTokens).toBe(getChatTokenizer("o200k_base").countChat(m));
    expect(a.maxOutputTokens).toBe(1000);
    expect(a.reservedTokens).toBe(a.inputTokens + 1000);
    expect(a.decision).toBe("allow");
    expect(a.messages).toEqual(m);
    await a.settle({ prompt_tokens: a.inputTokens, completion_tokens: 7, total_tokens: a.inputTokens + 7 });
    const r = await tf.remaining({ user: "u1" });
    expect(r.user.day).toMatchObject({
      limit: 10000,
      used: a.inputTokens + 7,
      reserved: 0,
      remaining: 10000 - a.inputTokens - 7,
    });
    expect(r.features.chat?.used_today).toBe(a.inputTokens + 7);
    expect(r.global.minute.used).toBe(a.inputTokens + 7);
  });

  it("keeps an allowed model, lowers a larger caller cap, keeps a smaller one, multiplies by n", async () => {
    const tf = make();
    const a = await tf.admit({
      feature: "quick",
      user: "u",
      messages: msgs("hi"),
      model: "gpt-4.1-mini",
      maxTokens: 5000,
    });
    expect(a.model).toBe("gpt-4.1-mini");
    expect(a.maxOutputTokens).toBe(200);
    const b = await tf.admit({
      feature: "quick",
      user: "u",
      messages: msgs("hi"),
      maxCompletionTokens: 50,
      maxTokens: 80,
      n: 3,
    });
    expect(b.maxOutputTokens).toBe(50);
    expect(b.reservedTokens).toBe(b.inputTokens + 150);
  });

  it("settle is exactly once; no usage releases the whole reservation", async () => {
    const tf = make();
    const a = await tf.admit({ feature: "chat", user: "u2", messages: msgs("x") });
    expect((await tf.remaining({ user: "u2" })).user.day.reserved).toBe(a.reservedTokens);
    const first = await a.settle();
    expect(first).toMatchObject({ status: "settled", chargedTokens: 0 });
    const again = await a.settle({ prompt_tokens: 10, completion_tokens: 10 });
    expect(again.status).toBe("duplicate");
    expect((await tf.remaining({ user: "u2" })).user.day).toMatchObject({ used: 0, reserved: 0 });
  });

  it("a malformed usage is refused and changes nothing; a correct settle still works", async () => {
    const tf = make();
    const a = await tf.admit({ feature: "chat", user: "u3", messages: msgs("x") });
    await expect(a.settle({ prompt_tokens: -1, completion_tokens: 3 })).rejects.toThrow(/prompt_tokens/);
    expect((await tf.remaining({ user: "u3" })).user.day.used).toBe(0);
    await a.settle({ prompt_tokens: 5, completion_tokens: 3, prompt_tokens_details: { cached_tokens: 2 } });
    expect((await tf.remaining({ user: "u3" })).user.day.used).toBe(8);
  });

  it("rejects unknown features, bad requests, and switched-off features", async () => {
    const tf = make();
    await expectCode(tf.admit({ feature: "nope", user: "u", messages: msgs("x") }), "unknown_feature");
    await expectCode(tf.admit({ feature: "chat", user: "u", messages: [] }), "invalid_request");
    await expectCode(
      tf.admit({ feature: "chat", user: "u", messages: msgs("x"), maxTokens: 0 }),
      "invalid_request",
    );
    await expectCode(
      tf.admit({ feature: "chat", user: "u", messages: msgs("x"), n: 1.5 }),
      "invalid_request",
    );
    await tf.setFeatureEnabled("chat", false);
    const e = await expectCode(
      tf.admit({ feature: "chat", user: "u", messages: msgs("x") }),
      "feature_disabled",
    );
    expect(e.status).toBe(503);
    await tf.setFeatureEnabled("chat", true);
    await tf.admit({ feature: "chat", user: "u", messages: msgs("x") });
    await expectCode(tf.setFeatureEnabled("nope", false), "unknown_feature");
  });

  it("rejects over-cap input with input_budget_exceeded and charges nothing", async () => {
    const tf = make();
    await expectCode(
      tf.admit({ feature: "summarize", user: "u4", messages: msgs("word ".repeat(20000)) }),
      "input_budget_exceeded",
    );
    expect((await tf.remaining({ user: "u4" })).user.day).toMatchObject({ used: 0, reserved: 0 });
  });

  it("trims a long history and says so", async () => {
    const tf = make();
    const history: ChatMessage[] = [{ role: "system", content: "s" }];
    for (let i = 0; i < 20; i++) {
      history.push({ role: "user", content: `question ${i} ${"lorem ipsum ".repeat(100)}` });
      history.push({ role: "assistant", content: `answer ${i} ${"dolor sit ".repeat(100)}` });
    }
    history.push({ role: "user", content: "last question" });
    const a = await tf.admit({ feature: "chat", user: "u5", messages: history });
    expect(a.decision).toBe("trim");
    expect(a.inputTokens).toBeLessThanOrEqual(4000);
    expect(a.trimmedMessages).toBeGreaterThan(0);
    expect(a.messages.at(-1)?.content).toBe("last question");
  });
});

describe("budgets", () => {
  it("a free user never passes 10 000 settled tokens a day and is refused only when the next reservation would not fit", async () => {
    const clock = fixedClock("2026-11-24T08:00:00Z");
    const tf = make(clock);
    let settledTotal = 0;
    let refused: TokenBudgetError | undefined;
    for (let i = 0; i < 100 && !refused; i++) {
      const before = await tf.remaining({ user: "loop" });
      try {
        const a = await tf.admit({
          feature: "chat",
          user: "loop",
          messages: msgs(`turn ${i} ${"x ".repeat(50)}`),
          maxTokens: 400,
        });
        const out = 100 + ((i * 37) % 300);
        await a.settle({ prompt_tokens: a.inputTokens, completion_tokens: out });
        settledTotal += a.inputTokens + out;
        clock.advance(1000);
      } catch (e) {
        refused = e as TokenBudgetError;
        // Refused only when the reservation really did not fit what was left.
        expect(refused.code).toBe("user_budget_exceeded");
        expect(refused.requested).toBeGreaterThan(before.user.day.remaining ?? 0);
        expect(refused.limit).toBe(10000);
      }
    }
    expect(refused).toBeDefined();
    expect(settledTotal).toBeLessThanOrEqual(10000);
    expect((await tf.remaining({ user: "loop" })).user.day.used).toBe(settledTotal);
    // Retry-After is the time to the tier's local midnight (UTC for free).
    expect(refused?.retryAfterMs).toBe(Date.parse("2026-11-25T00:00:00Z") - clock.nowMs());
    // The next day it works again, by construction of the day key.
    clock.set("2026-11-25T00:00:00Z");
    await tf.admit({ feature: "chat", user: "loop", messages: msgs("new day") });
  });

  it("the day follows the tier's time zone (pro resets at New York midnight)", async () => {
    const clock = fixedClock("2026-11-24T12:00:00Z");
    const tf = make(clock);
    const r = await tf.remaining({ user: "p", tier: "pro" });
    expect(r.user.day.resets_at).toBe("2026-11-25T05:00:00Z");
    expect(r.user.minute?.limit).toBe(2000);
  });

  it("enforces a tier's tokens per minute with retry after the minute", async () => {
    const clock = fixedClock("2026-11-24T12:00:10Z");
    const tf = make(clock);
    const a = await tf.admit({
      feature: "quick",
      user: "m",
      tier: "pro",
      messages: msgs("hi"),
      maxTokens: 100,
    });
    await a.settle({ prompt_tokens: a.inputTokens, completion_tokens: 100 });
    let e: TokenBudgetError | undefined;
    for (let i = 0; i < 30 && !e; i++) {
      try {
        const b = await tf.admit({
          feature: "quick",
          user: "m",
          tier: "pro",
          messages: msgs("hi"),
          maxTokens: 200,
        });
        await b.settle({ prompt_tokens: b.inputTokens, completion_tokens: 200 });
      } catch (err) {
        e = err as TokenBudgetError;
      }
    }
    expect(e?.code).toBe("user_budget_exceeded");
    expect(e?.limit).toBe(2000);
    expect(e?.retryAfterMs).toBe(50_000);
  });

  it("enforces a feature's daily tokens with feature_budget_exceeded", async () => {
    const tf = make();
    const a = await tf.admit({ feature: "capped", user: "f1", messages: msgs("hi") });
    await a.settle({ prompt_tokens: a.inputTokens, completion_tokens: 100 });
    const e = await expectCode(
      tf.admit({ feature: "capped", user: "f2", messages: msgs("x ".repeat(800)) }),
      "feature_budget_exceeded",
    );
    expect(e.status).toBe(429);
  });

  it("enforces the global tokens per minute with global_rate_limited", async () => {
    const tf = make(fixedClock("2026-11-24T12:00:00Z"), {
      ...baseConfig,
      global: { tokens_per_minute: 1500 },
    });
    await tf.admit({ feature: "chat", user: "g1", messages: msgs("hi"), maxTokens: 1000 });
    const e = await expectCode(
      tf.admit({ feature: "chat", user: "g2", messages: msgs("hi"), maxTokens: 1000 }),
      "global_rate_limited",
    );
    expect(e.retryAfterMs).toBe(60_000);
    expect(e.retry_after_ms).toBe(60_000); // SPEC §5's spelling
  });

  it("200 concurrent admits in one process never admit more than the budget", async () => {
    const tf = make();
    const results = await Promise.allSettled(
      Array.from({ length: 200 }, (_, i) =>
        tf.admit({ feature: "quick", user: "burst", messages: msgs(`q${i}`), maxTokens: 40 }),
      ),
    );
    const admitted = results
      .filter((r) => r.status === "fulfilled")
      .map((r) => (r as PromiseFulfilledResult<{ reservedTokens: number }>).value);
    const refused = results.filter((r) => r.status === "rejected");
    const reserved = admitted.reduce((s, a) => s + a.reservedTokens, 0);
    expect(reserved).toBeLessThanOrEqual(10000);
    expect(refused.length).toBeGreaterThan(0);
    expect(admitted.length + refused.length).toBe(200);
    const r = await tf.remaining({ user: "burst" });
    expect(r.user.day.reserved).toBe(reserved);
    // The refused ones were refused because the next one did not fit.
    expect(10000 - reserved).toBeLessThan(Math.max(...admitted.map((a) => a.reservedTokens)));
  });

  it("an unsettled reservation expires by itself", async () => {
    const clock = fixedClock("2026-11-24T12:00:00Z");
    const tf = make(clock);
    await tf.admit({ feature: "chat", user: "crash", messages: msgs("hi") });
    expect((await tf.remaining({ user: "crash" })).user.day.reserved).toBeGreaterThan(0);
    clock.advance(30 * 60_000);
    expect((await tf.remaining({ user: "crash" })).user.day.reserved).toBe(0);
  });
});

describe("prices", () => {
  const cfg = (unknown_price: string) => ({
    ...baseConfig,
    features: {
      ...baseConfig.features,
      custom: { model: "acme-llm-9", max_input: 1000, max_output: 100, on_exceed: "reject" },
    },
    unknown_price,
  });

  it("an unpriced model is refused with price_unknown by default, and charges nothing", async () => {
    const tf = make(fixedClock("2026-11-24T12:00:00Z"), cfg("reject"));
    const e = await expectCode(
      tf.admit({ feature: "custom", user: "p1", messages: msgs("hi") }),
      "price_unknown",
    );
    expect(e.status).toBe(400);
    expect((await tf.remaining({ user: "p1" })).user.day).toMatchObject({ used: 0, reserved: 0 });
  });

  it("allow_and_alert admits it (never silently: no cost is claimed, and an alert goes to the sinks)", async () => {
    const warnings: string[] = [];
    const tf = createTokenfuse({
      config: cfg("allow_and_alert"),
      clock: fixedClock("2026-11-24T12:00:00Z"),
      logger: { info() {}, warn: (_o: object, m?: string) => void warnings.push(m ?? ""), error() {} },
      store: createMemoryStore(),
    });
    const a = await tf.admit({ feature: "custom", user: "p2", messages: msgs("hi") });
    const s = await a.settle({ prompt_tokens: 5, completion_tokens: 5 });
    expect(s.costNanoUsd).toBeUndefined();
    expect(s.chargedTokens).toBe(10);
    await tf.admit({ feature: "custom", user: "p2", messages: msgs("again") });
    await tf.close();
    expect(warnings.filter((w) => /model "acme-llm-9" has no known price/.test(w))).toHaveLength(1);
  });

  it("settle reports the cost from the price table, config overrides first", async () => {
    const tf = make(fixedClock("2026-11-24T12:00:00Z"), {
      ...cfg("reject"),
      prices: { "acme-llm-9": { input: 3, output: 12, cached_input: 1.5 } },
    });
    const a = await tf.admit({ feature: "custom", user: "p3", messages: msgs("hi") });
    const s = await a.settle({
      prompt_tokens: 1000,
      completion_tokens: 100,
      prompt_tokens_details: { cached_tokens: 400 },
    });
    // 600 × $3/M + 400 × $1.5/M + 100 × $12/M = $0.0018 + $0.0006 + $0.0012 = $0.0036
    expect(s.costNanoUsd).toBe(3_600_000);
    const b = await tf.admit({ feature: "chat", user: "p3", messages: msgs("hi") });
    const t = await b.settle({ prompt_tokens: 1_000_000, completion_tokens: 0 });
    expect(t.costNanoUsd).toBe(2_500_000_000); // gpt-4o: $2.50 per 1M input tokens
  });
});

describe("summaries are charged even when the provider's usage is missing or malformed", () => {
  const config = {
    features: {
      chat: {
        model: "gpt-4o",
        max_input: 300,
        max_output: 100,
        on_exceed: "summarize",
        summarize_with: "digest",
      },
      digest: { model: "gpt-4o-mini", max_input: 100_000, max_output: 200, on_exceed: "reject" },
    },
    tiers: { free: { daily_tokens: 1_000_000 } },
    default_tier: "free",
    global: { tokens_per_minute: 1_000_000 },
  };
  const summary = "The user and the assistant discussed forty earlier things.";
  const history = (): ChatMessage[] => [
    ...Array.from({ length: 40 }, (_, i) => ({
      role: i % 2 ? "assistant" : "user",
      content: `turn ${i}: ${"some earlier words ".repeat(8)}`,
    })),
    { role: "user", content: "and now?" },
  ];

  for (const [name, usage] of [
    ["missing", null],
    ["malformed", { prompt_tokens: "many" }],
  ] as const) {
    it(`${name} usage: the summary call is charged its input and the counted summary`, async () => {
      const store = createMemoryStore();
      let digestInput = 0;
      const tf = createTokenfuse({
        config,
        store,
        logger: silentLogger,
        summarizer: async ({ messages }) => {
          digestInput = getChatTokenizer("o200k_base").countChat(messages);
          return { text: summary, usage: usage as never };
        },
      });
      const a = await tf.admit({ feature: "chat", user: "s1", messages: history() });
      expect(a.summarized).toBe(true);
      await a.settle({ prompt_tokens: a.inputTokens, completion_tokens: 10 });
      const report = await tf.remaining({ user: "s1" });
      const summaryCharge = digestInput + getChatTokenizer("o200k_base").countText(summary);
      expect(report.features.digest?.used_today).toBe(summaryCharge);
      expect(report.user.day.used).toBe(a.inputTokens + 10 + summaryCharge);
      expect(report.user.day.reserved).toBe(0);
    });
  }
});

describe("request ids", () => {
  it("a reused requestId is a new request, reserved and charged again (never a free duplicate)", async () => {
    const store = createMemoryStore();
    const tf = createTokenfuse({ config: baseConfig, store, logger: silentLogger });
    const req = { requestId: "order-7", feature: "chat", user: "g", messages: msgs("hi") };
    let charged = 0;
    for (let i = 0; i < 3; i++) {
      const a = await tf.admit(req);
      expect(a.id).toBe("order-7");
      const s = await a.settle({ prompt_tokens: a.inputTokens, completion_tokens: 3 });
      expect(s).toMatchObject({ status: "settled", chargedTokens: a.inputTokens + 3 });
      charged += a.inputTokens + 3;
    }
    expect((await tf.remaining({ user: "g" })).user.day).toMatchObject({ used: charged, reserved: 0 });
    // And the memory store keeps no per-request memory for them (every store id is generated).
    expect(store.settledIdCount).toBe(0);
  });
});

describe("absurd usage", () => {
  it("a usage whose total passes 2^53 is refused and changes nothing; a huge cost saturates; the caller can still settle", async () => {
    const tf = make();
    const a = await tf.admit({ feature: "chat", user: "big", messages: msgs("hi") });
    await expect(a.settle({ prompt_tokens: Number.MAX_SAFE_INTEGER, completion_tokens: 10 })).rejects.toThrow(
      /too large/,
    );
    // Still settleable: 1e12 output tokens of gpt-4o cost more than 2^53 nano-USD, which saturates.
    const s = await a.settle({ prompt_tokens: a.inputTokens, completion_tokens: 1e12 });
    expect(s.status).toBe("settled");
    expect(s.costNanoUsd).toBe(Number.MAX_SAFE_INTEGER);
    expect((await tf.remaining({ user: "big" })).user.day).toMatchObject({
      used: a.inputTokens + 1e12,
      reserved: 0,
    });
  });
});

describe("huge caps", () => {
  it("a max_output meaning 'no cap' never turns a request into an internal error", async () => {
    const tf = createTokenfuse({
      config: {
        features: { open: { model: "gpt-4o", max_input: 4000, max_output: 2 ** 52, on_exceed: "trim" } },
        tiers: { free: { daily_tokens: 10_000 } },
        default_tier: "free",
      },
      store: createMemoryStore(),
      logger: silentLogger,
    });
    // Reserving 2^52 × 3 output tokens is more than any budget: a clear refusal, not a RangeError.
    await expectCode(
      tf.admit({ feature: "open", user: "h", messages: msgs("hi"), n: 3 }),
      "user_budget_exceeded",
    );
    // A caller's own cap brings it within the budget.
    const a = await tf.admit({ feature: "open", user: "h", messages: msgs("hi"), maxTokens: 100 });
    expect(a.reservedTokens).toBe(a.inputTokens + 100);
  });
});

describe("usage with one side missing", () => {
  it("a total and one side charge the other side as the difference; a total below the side is refused", async () => {
    const tf = make();
    const a = await tf.admit({ feature: "chat", user: "half", messages: msgs("hi") });
    await expect(a.settle({ prompt_tokens: 50, total_tokens: 20 })).rejects.toThrow(/less than the prompt/);
    expect(await a.settle({ prompt_tokens: 8, total_tokens: 108 })).toMatchObject({
      chargedTokens: 108,
      usage: { inputTokens: 8, outputTokens: 100 },
    });
    const b = await tf.admit({ feature: "chat", user: "half", messages: msgs("hi") });
    expect(await b.settle({ completion_tokens: 5, total_tokens: 20 })).toMatchObject({
      usage: { inputTokens: 15, outputTokens: 5 },
    });
  });

  it("a total alone is split by the request's own input count (not all priced as input)", async () => {
    const tf = make();
    const a = await tf.admit({ feature: "chat", user: "total", messages: msgs("hi") });
    const r = await a.settle({ total_tokens: a.inputTokens + 1000 });
    expect(r).toMatchObject({
      chargedTokens: a.inputTokens + 1000,
      usage: { inputTokens: a.inputTokens, outputTokens: 1000 },
    });
    // gpt-4o: $2.50 / 1M input, $10 / 1M output.
    expect(r.costNanoUsd).toBe(a.inputTokens * 2500 + 1000 * 10_000);
    const b = await tf.admit({ feature: "chat", user: "total", messages: msgs("hi") });
    expect(await b.settle({ total_tokens: 3 })).toMatchObject({ usage: { inputTokens: 3, outputTokens: 0 } });
  });

  it("feature names that are not own config keys read as disabled, never as something truthy", () => {
    const tf = make();
    for (const name of ["__proto__", "constructor", "toString", "hasOwnProperty"]) {
      expect(tf.isFeatureEnabled(name)).toBe(false);
    }
  });
});
