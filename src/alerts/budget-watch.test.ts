import { describe, expect, it } from "vitest";
import type { Logger } from "../core/logger.js";
import type { ChatMessage } from "../core/types.js";
import { createMemoryStore } from "../stores/memory-store.js";
import { StoreUnavailableError } from "../stores/types.js";
import { createTokenfuse } from "../tokenfuse.js";

function capture(): { logger: Logger; warnings: string[] } {
  const warnings: string[] = [];
  return { warnings, logger: { info() {}, warn: (_o, m) => void warnings.push(m ?? ""), error() {} } };
}

describe("decision alerts through the configured sinks", () => {
  it("a user's daily budget alerts once at 80 % and once when exhausted", async () => {
    const { logger, warnings } = capture();
    const tf = createTokenfuse({
      config: {
        features: { chat: { model: "gpt-4o", max_input: 1000, max_output: 100, on_exceed: "trim" } },
        tiers: { free: { daily_tokens: 1000 } },
        default_tier: "free",
        alerts: { daily_budget_thresholds: [0.8, 1], sinks: [{ type: "log" }] },
      },
      store: createMemoryStore(),
      logger,
    });
    let refused = 0;
    for (let i = 0; i < 30; i++) {
      try {
        const a = await tf.admit({
          feature: "chat",
          user: "carol",
          messages: [{ role: "user", content: `q${i}` }],
        });
        await a.settle({ prompt_tokens: a.inputTokens, completion_tokens: 50 });
      } catch {
        refused++;
      }
    }
    expect(refused).toBeGreaterThan(1);
    await tf.close();
    expect(
      warnings.filter((w) => /user "carol" has committed 80 % of its daily budget/.test(w)),
    ).toHaveLength(1);
    expect(
      warnings.filter((w) => /user "carol" (exhausted its daily budget|has committed all)/.test(w)),
    ).toHaveLength(1);
  });

  it("a request larger than the whole budget is refused without a wait and without an 'exhausted' alert", async () => {
    const { logger, warnings } = capture();
    const tf = createTokenfuse({
      config: {
        features: { chat: { model: "gpt-4o", max_input: 1000, max_output: 900, on_exceed: "trim" } },
        tiers: { free: { daily_tokens: 500 }, fast: { daily_tokens: 100_000, tokens_per_minute: 300 } },
        default_tier: "free",
        alerts: { daily_budget_thresholds: [0.8, 1], sinks: [{ type: "log" }] },
      },
      store: createMemoryStore(),
      logger,
    });
    for (const tier of ["free", "fast"]) {
      const e = await tf
        .admit({ feature: "chat", user: `big-${tier}`, tier, messages: [{ role: "user", content: "hi" }] })
        .catch((x: unknown) => x);
      expect(e).toMatchObject({ code: "user_budget_exceeded", retryAfterMs: undefined });
      expect((e as Error).message).toMatch(/can never fit; lower max_tokens or the input/);
    }
    // The budget is untouched: a request that fits is admitted at once.
    const ok = await tf.admit({
      feature: "chat",
      user: "big-free",
      messages: [{ role: "user", content: "hi" }],
      maxTokens: 100,
    });
    await ok.settle({ prompt_tokens: ok.inputTokens, completion_tokens: 10 });
    await tf.close();
    expect(warnings.filter((w) => /big-free/.test(w))).toEqual([]);
  });

  it("the runaway detector is wired: a conversation re-sending its history raises one alert", async () => {
    const { logger, warnings } = capture();
    let now = Date.parse("2026-11-24T09:00:00Z");
    const tf = createTokenfuse({
      config: {
        features: { chat: { model: "gpt-4o", max_input: 8000, max_output: 200, on_exceed: "trim" } },
        tiers: { free: { daily_tokens: 1_000_000 } },
        default_tier: "free",
      },
      store: createMemoryStore(),
      logger,
      clock: { nowMs: () => now },
    });
    const history: ChatMessage[] = [];
    for (let turn = 0; turn < 8; turn++) {
      history.push({ role: "user", content: `turn ${turn} ${"and the whole history again ".repeat(20)}` });
      const a = await tf.admit({ feature: "chat", user: "dave", messages: history });
      await a.settle({ prompt_tokens: a.inputTokens, completion_tokens: 20 });
      history.push({ role: "assistant", content: "ok ".repeat(30) });
      now += 5000;
    }
    await tf.close();
    expect(
      warnings.filter((w) =>
        /conversation of user "dave" on feature "chat" re-sends a growing history/.test(w),
      ),
    ).toHaveLength(1);
  });

  it("a daily budget alert whose claim failed with a store error is claimed again on a later decision, and sent once", async () => {
    const { logger, warnings } = capture();
    const errors: string[] = [];
    logger.error = (_o, m) => void errors.push(m ?? "");
    const mem = createMemoryStore();
    const claims: string[] = [];
    const store = new Proxy(mem, {
      get(t, p) {
        if (p === "claimOnce")
          return (key: string, exp: number, now: number) => {
            claims.push(key);
            // The first ask of the 80 % alert fails (a store blip); every other ask reaches the store.
            return key.endsWith(":80") && claims.filter((k) => k === key).length === 1
              ? Promise.reject(new StoreUnavailableError("blip"))
              : t.claimOnce(key, exp, now);
          };
        const v = t[p as keyof typeof t];
        return typeof v === "function" ? v.bind(t) : v;
      },
    });
    const tf = createTokenfuse({
      config: {
        features: { chat: { model: "gpt-4o", max_input: 1000, max_output: 100, on_exceed: "trim" } },
        tiers: { free: { daily_tokens: 1000 } },
        default_tier: "free",
        alerts: { daily_budget_thresholds: [0.8, 1], sinks: [{ type: "log" }] },
      },
      store,
      logger,
    });
    for (let i = 0; i < 30; i++) {
      try {
        const a = await tf.admit({
          feature: "chat",
          user: "erin",
          messages: [{ role: "user", content: `q${i}` }],
        });
        await a.settle({ prompt_tokens: a.inputTokens, completion_tokens: 50 });
      } catch {
        // refused once the budget is exhausted
      }
    }
    await tf.close();
    expect(errors).toContain("alert claim failed; will ask again on the next decision");
    expect(claims.filter((k) => k.endsWith(":80")).length).toBe(2); // failed once, won, never again
    expect(warnings.filter((w) => /user "erin" has committed 80 % of its daily budget/.test(w))).toHaveLength(
      1,
    );
  });
});
