import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { describe, expect, it } from "vitest";
import { isTokenBudgetError } from "../core/errors.js";
import type { Logger } from "../core/logger.js";
import { createMemoryStore } from "../stores/memory-store.js";
import { createTokenfuse } from "../tokenfuse.js";
import type { Alert, AlertSink } from "./types.js";

const msgs = [{ role: "user", content: "review this code please" }];

/** gpt-4.1: $2 / 1M input, $8 / 1M output, so each request below (1000 in, 500 out) costs $0.006. */
const breakerConfig = (extra: Record<string, unknown> = {}) => ({
  features: {
    code_review: {
      model: "gpt-4.1",
      max_input: 32000,
      max_output: 2000,
      on_exceed: "reject",
      hourly_cost_usd: 0.02,
    },
  },
  tiers: { free: { daily_tokens: 1_000_000 } },
  default_tier: "free",
  ...extra,
});

describe("hourly cost breaker", () => {
  it("trips on the request that crosses the feature's hourly cost; the next gets feature_disabled; by hand or at the next hour it is back", async () => {
    let now = Date.parse("2026-11-24T10:15:00Z");
    const warnings: string[] = [];
    const logger: Logger = { info() {}, warn: (_o, m) => void warnings.push(m ?? ""), error() {} };
    const tf = createTokenfuse({
      config: breakerConfig({ alerts: { sinks: [{ type: "log" }] } }),
      store: createMemoryStore(),
      logger,
      clock: { nowMs: () => now },
    });
    const one = async () => {
      const a = await tf.admit({ feature: "code_review", user: "dev", messages: msgs });
      return a.settle({ prompt_tokens: 1000, completion_tokens: 500 });
    };
    for (let i = 1; i <= 3; i++) expect((await one()).costNanoUsd).toBe(6_000_000); // $0.018 so far
    expect(tf.isFeatureEnabled("code_review")).toBe(true);
    await one(); // $0.024: this request crosses $0.02 — it is served, and trips the breaker
    const e = await tf
      .admit({ feature: "code_review", user: "dev", messages: msgs })
      .catch((x: unknown) => x);
    expect(isTokenBudgetError(e) && e.code).toBe("feature_disabled");
    await tf.close(); // drains the alert queue
    expect(
      warnings.some((w) =>
        /feature code_review spent \$0\.0240 .*threshold \$0\.02.*switched off until 11:00Z/.test(w),
      ),
    ).toBe(true);

    // Switching it back on by hand works within the same hour.
    const tf2 = createTokenfuse({
      config: breakerConfig(),
      store: createMemoryStore(),
      logger,
      clock: { nowMs: () => now },
    });
    for (let i = 0; i < 4; i++) {
      const a = await tf2.admit({ feature: "code_review", user: "dev", messages: msgs });
      await a.settle({ prompt_tokens: 1000, completion_tokens: 500 });
    }
    expect(tf2.isFeatureEnabled("code_review")).toBe(false);
    await tf2.setFeatureEnabled("code_review", true);
    expect(tf2.isFeatureEnabled("code_review")).toBe(true);
    await tf2.setFeatureEnabled("code_review", false);
    await tf2.setFeatureEnabled("code_review", true);
    // …and a tripped breaker lapses by itself at the next hour.
    const tf3store = createMemoryStore();
    const tf3 = createTokenfuse({
      config: breakerConfig(),
      store: tf3store,
      logger,
      clock: { nowMs: () => now },
    });
    for (let i = 0; i < 4; i++) {
      const a = await tf3.admit({ feature: "code_review", user: "dev", messages: msgs });
      await a.settle({ prompt_tokens: 1000, completion_tokens: 500 });
    }
    expect(tf3.isFeatureEnabled("code_review")).toBe(false);
    now = Date.parse("2026-11-24T11:00:00Z");
    expect(tf3.isFeatureEnabled("code_review")).toBe(true);
    await tf3.admit({ feature: "code_review", user: "dev", messages: msgs });
    await tf2.close();
    await tf3.close();
  });

  it("a webhook that hangs never delays or fails a request", async () => {
    let received = 0;
    const server = createServer(() => {
      received++; // never answers
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
    const tf = createTokenfuse({
      config: {
        features: {
          chat: {
            model: "gpt-4o",
            max_input: 4000,
            max_output: 1000,
            on_exceed: "trim",
            hourly_cost_usd: 0.001,
          },
        },
        tiers: { free: { daily_tokens: 1_000_000 } },
        default_tier: "free",
        alerts: { hourly_cost_usd: 0.001, sinks: [{ type: "webhook", url }] },
      },
      store: createMemoryStore(),
      logger: { info() {}, warn() {}, error() {} },
    });
    const a = await tf.admit({ feature: "chat", user: "u", messages: msgs });
    const s = await a.settle({ prompt_tokens: 1000, completion_tokens: 1000 }); // $0.0125: crosses both
    expect(s.status).toBe("settled");
    // The request finished while the webhook still has not answered.
    await new Promise((r) => setTimeout(r, 100));
    expect(received).toBeGreaterThanOrEqual(1);
    server.closeAllConnections();
    server.close();
    await tf.close();
  });
});

describe("alert sinks of the caller's own (plugins, SPEC §7)", () => {
  it("get every alert beside the config's sinks; one that fails is logged and harms nothing", async () => {
    const got: Alert[] = [];
    const errors: string[] = [];
    const warnings: string[] = [];
    const logger: Logger = {
      info() {},
      warn: (_o, m) => void warnings.push(m ?? ""),
      error: (o, m) => void errors.push(`${(o as { sink?: string }).sink}: ${m ?? ""}`),
    };
    const mine: AlertSink = { name: "mine", send: async (a) => void got.push(a) };
    const broken: AlertSink = {
      name: "broken",
      send: async () => {
        throw new Error("pager down");
      },
    };
    const tf = createTokenfuse({
      config: breakerConfig({ alerts: { sinks: [{ type: "log" }] } }),
      store: createMemoryStore(),
      logger,
      clock: { nowMs: () => Date.parse("2026-11-24T10:15:00Z") },
      alertSinks: [broken, mine],
    });
    for (let i = 0; i < 4; i++) {
      const a = await tf.admit({ feature: "code_review", user: "dev", messages: msgs });
      await a.settle({ prompt_tokens: 1000, completion_tokens: 500 });
    }
    await tf.close(); // drains the alert queue
    const breaker = got.filter((a) => a.scope === "feature:code_review");
    expect(breaker.length).toBe(1);
    expect(breaker[0]?.message).toMatch(/switched off until 11:00Z/);
    // The config's log sink still got it, and the broken sink's failure was said.
    expect(warnings.some((w) => /switched off until 11:00Z/.test(w))).toBe(true);
    expect(errors).toContain("broken: alert could not be delivered");
  });

  it("a sink without a name or a send function is refused when tokenfuse is created, naming it", () => {
    const make = (alertSinks: unknown) => () =>
      createTokenfuse({
        config: breakerConfig(),
        store: createMemoryStore(),
        alertSinks: alertSinks as AlertSink[],
      });
    expect(make([{ send: async () => {} }])).toThrow(/alertSinks\[0\] needs a non-empty string name/);
    expect(make([{ name: "x" }])).toThrow(/alertSinks\[0\] \(x\) needs a send\(alert, signal\) function/);
    expect(make({ name: "x" })).toThrow(/alertSinks must be an array/);
  });
});

describe("hourly cost caps in the budget report", () => {
  it("remaining() shows each feature's and the global hourly cost cap against this hour's spend", async () => {
    let now = Date.parse("2026-11-24T10:15:00Z");
    const tf = createTokenfuse({
      config: breakerConfig({ global: { tokens_per_minute: 1_000_000, hourly_cost_usd: 1 } }),
      store: createMemoryStore(),
      clock: { nowMs: () => now },
    });
    const before = await tf.remaining({ user: "dev" });
    expect(before.features.code_review?.hourly_cost).toEqual({
      limit_usd: 0.02,
      spent_usd: 0,
      remaining_usd: 0.02,
      resets_at: "2026-11-24T11:00:00Z",
    });
    for (let i = 0; i < 3; i++) {
      const a = await tf.admit({ feature: "code_review", user: "dev", messages: msgs });
      await a.settle({ prompt_tokens: 1000, completion_tokens: 500 }); // $0.006 each
    }
    const after = await tf.remaining({ user: "dev" });
    expect(after.features.code_review?.hourly_cost).toEqual({
      limit_usd: 0.02,
      spent_usd: 0.018,
      remaining_usd: 0.002,
      resets_at: "2026-11-24T11:00:00Z",
    });
    expect(after.global.hourly_cost).toEqual({
      limit_usd: 1,
      spent_usd: 0.018,
      remaining_usd: 0.982,
      resets_at: "2026-11-24T11:00:00Z",
    });
    // The next hour starts from nothing.
    now = Date.parse("2026-11-24T11:00:00Z");
    expect((await tf.remaining({ user: "dev" })).global.hourly_cost?.spent_usd).toBe(0);
    await tf.close();
  });

  it("a report without cost caps has no hourly_cost entries", async () => {
    const config = breakerConfig();
    delete (config.features.code_review as { hourly_cost_usd?: number }).hourly_cost_usd;
    const tf = createTokenfuse({ config, store: createMemoryStore() });
    const r = await tf.remaining({ user: "dev" });
    expect(r.features.code_review).not.toHaveProperty("hourly_cost");
    expect(r.global).not.toHaveProperty("hourly_cost");
    await tf.close();
  });
});
