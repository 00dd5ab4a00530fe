import { randomUUID } from "node:crypto";
import { Redis } from "ioredis";
import { describe, expect, inject, it } from "vitest";
import { deleteKeys } from "../../test/helpers/redis-keys.js";
import { createMemoryStore } from "../stores/memory-store.js";
import { createRedisStore } from "../stores/redis/redis-store.js";
import { type Store, StoreUnavailableError } from "../stores/types.js";
import { createTokenfuse } from "../tokenfuse.js";
import { isTokenBudgetError, type TokenBudgetError } from "./errors.js";
import type { Logger } from "./logger.js";

const msgs = [{ role: "user", content: "review this code please" }];

/** gpt-4.1: $2 / 1M input, $8 / 1M output, so each request below (1000 in, 500 out) costs $0.006. */
const capConfig = (extra: Record<string, unknown> = {}) => ({
  features: {
    a: { model: "gpt-4.1", max_input: 32000, max_output: 2000, on_exceed: "reject" },
    b: { model: "gpt-4.1", max_input: 32000, max_output: 2000, on_exceed: "reject" },
  },
  tiers: { free: { daily_tokens: 1_000_000_000 } },
  default_tier: "free",
  global: { tokens_per_minute: 1_000_000_000, hourly_cost_usd: 0.02 },
  ...extra,
});

const quiet = (warnings: string[] = []): Logger => ({
  info() {},
  warn: (_o, m) => void warnings.push(m ?? ""),
  error() {},
});

describe("global.hourly_cost_usd", () => {
  it("refuses every feature with global_rate_limited once the hour's spend reached the cap, alerts once, and admits again at the next hour", async () => {
    let now = Date.parse("2026-11-24T10:15:00Z");
    const warnings: string[] = [];
    const tf = createTokenfuse({
      config: capConfig({ alerts: { sinks: [{ type: "log" }] } }),
      store: createMemoryStore(),
      logger: quiet(warnings),
      clock: { nowMs: () => now },
    });
    const one = async (feature: string) => {
      const a = await tf.admit({ feature, user: "dev", messages: msgs });
      return a.settle({ prompt_tokens: 1000, completion_tokens: 500 });
    };
    // $0.018 over two features: under the cap, all admitted.
    for (const f of ["a", "b", "a"]) expect((await one(f)).costNanoUsd).toBe(6_000_000);
    await one("b"); // $0.024: admitted (it was under the cap when it came), and reaches the cap
    for (const f of ["a", "b"]) {
      const e = (await tf
        .admit({ feature: f, user: "dev", messages: msgs })
        .catch((x: unknown) => x)) as TokenBudgetError;
      expect(isTokenBudgetError(e)).toBe(true);
      expect(e.code).toBe("global_rate_limited");
      expect(e.status).toBe(429);
      expect(e.scope).toBe("global");
      expect(e.retryAfterMs).toBe(45 * 60_000); // until 11:00Z
      expect(e.message).toMatch(
        /global hourly cost cap of \$0\.02 is reached \(\$0\.0240 spent this hour\).*until 11:00Z/,
      );
    }
    // The next hour starts from nothing.
    now = Date.parse("2026-11-24T11:00:00Z");
    expect((await one("a")).costNanoUsd).toBe(6_000_000);
    await tf.close(); // drains the alert queue
    const capAlerts = warnings.filter((w) => /global hourly cost cap of \$0\.02 is reached/.test(w));
    expect(capAlerts).toHaveLength(1);
    expect(capAlerts[0]).toMatch(
      /all features spent \$0\.0240 in the hour from 2026-11-24T10:00Z.*refused until 11:00Z/,
    );
  });

  it("without the cap, the same spend is never refused (the cap is what refuses)", async () => {
    const tf = createTokenfuse({
      config: capConfig({ global: { tokens_per_minute: 1_000_000_000 } }),
      store: createMemoryStore(),
      logger: quiet(),
      clock: { nowMs: () => Date.parse("2026-11-24T10:15:00Z") },
    });
    for (let i = 0; i < 6; i++) {
      const a = await tf.admit({ feature: "a", user: "dev", messages: msgs });
      await a.settle({ prompt_tokens: 1000, completion_tokens: 500 });
    }
    await tf.close();
  });

  it("is shared through Redis: a process that spent nothing refuses once another reached the cap", async () => {
    const prefix = `${inject("redisPrefix")}${randomUUID()}:`;
    const url = inject("redisUrl");
    const now = Date.now();
    const open = () =>
      createTokenfuse({
        config: capConfig(),
        store: createRedisStore({ url, keyPrefix: prefix }),
        logger: quiet(),
        clock: { nowMs: () => now },
      });
    const spender = open();
    const other = open();
    try {
      for (let i = 0; i < 4; i++) {
        const a = await spender.admit({ feature: "a", user: "dev", messages: msgs });
        await a.settle({ prompt_tokens: 1000, completion_tokens: 500 });
      }
      const refused = async (tf: ReturnType<typeof open>) =>
        tf.admit({ feature: "b", user: "u2", messages: msgs }).then(
          async (a) => {
            await a.settle({ prompt_tokens: 0, completion_tokens: 0 });
            return false;
          },
          (e: unknown) => isTokenBudgetError(e) && e.code === "global_rate_limited",
        );
      expect(await refused(spender)).toBe(true);
      // The other process learns of it from its poll (every 500 ms).
      const until = Date.now() + 5_000;
      while (!(await refused(other)) && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
      expect(await refused(other)).toBe(true);
    } finally {
      await spender.close();
      await other.close();
      const redis = new Redis(url);
      await deleteKeys(redis, prefix);
      redis.disconnect();
    }
  });
  it("its alert is sent once the cap refuses requests, even if the crossing settlement's read failed", async () => {
    const mem = createMemoryStore();
    let failReads = false;
    // A shared-store stand-in (kind "redis": polled every 500 ms) whose readSpend can blip.
    const store = new Proxy(mem, {
      get(t, p) {
        if (p === "kind") return "redis";
        if (p === "readSpend")
          return async (keys: readonly string[]) => {
            if (failReads) throw new StoreUnavailableError("blip");
            return t.readSpend(keys);
          };
        const v = Reflect.get(t, p);
        return typeof v === "function" ? v.bind(t) : v;
      },
    }) as Store;
    const warnings: string[] = [];
    const logger: Logger = { info() {}, warn: (_o, m) => void warnings.push(m ?? ""), error() {} };
    const now = Date.parse("2026-11-24T10:15:00Z");
    const tf = createTokenfuse({
      config: {
        features: { a: { model: "gpt-4.1", max_input: 32000, max_output: 2000, on_exceed: "reject" } },
        tiers: { free: { daily_tokens: 1_000_000_000 } },
        default_tier: "free",
        global: { tokens_per_minute: 1_000_000_000, hourly_cost_usd: 0.02 },
        alerts: { sinks: [{ type: "log" }] },
      },
      store,
      logger,
      clock: { nowMs: () => now },
    });
    const one = async () => {
      const a = await tf.admit({ feature: "a", user: "dev", messages: msgs });
      return a.settle({ prompt_tokens: 1000, completion_tokens: 500 });
    };
    for (let i = 0; i < 3; i++) await one(); // $0.018
    failReads = true;
    await one(); // $0.024: crosses the cap; the cost watch's read of the total fails
    failReads = false;
    await new Promise((r) => setTimeout(r, 1200)); // the 500 ms poll reads the total
    const refused = await tf.admit({ feature: "a", user: "dev", messages: msgs }).then(
      () => false,
      (e: unknown) => isTokenBudgetError(e) && e.code === "global_rate_limited",
    );
    expect(refused).toBe(true); // the cap is in force...
    await tf.close(); // drains the alert queue
    // ...and the alert went out although the crossing settlement's read failed (the poll raised it).
    expect(warnings.filter((w) => /global hourly cost cap .* is reached/.test(w))).toHaveLength(1);
  }, 15_000);
});
