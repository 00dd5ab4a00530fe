import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { loadConfig } from "../config/load.js";
import { createScopeCache, scopesFor, spendCountersFor } from "./scopes.js";

describe("scope cache", () => {
  const config = loadConfig(
    {
      features: {
        chat: { model: "gpt-4o", max_input: 1000, max_output: 100, on_exceed: "trim", daily_tokens: 5000 },
      },
      tiers: {
        free: { daily_tokens: 10_000, tokens_per_minute: 1000, time_zone: "America/New_York" },
        kat: { daily_tokens: 10_000, time_zone: "Asia/Kathmandu" },
      },
      default_tier: "free",
      global: { tokens_per_minute: 100_000 },
    },
    {},
  );
  const feature = config.features.chat;
  if (!feature) throw new Error("no feature");

  it("always answers exactly what scopesFor and spendCountersFor compute, across windows, zones and users", () => {
    const start = Date.UTC(2026, 2, 7, 0, 0, 0); // spans the US DST change of 2026-03-08
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            step: fc.integer({ min: 0, max: 3 * 3_600_000 }),
            tier: fc.constantFrom("free", "kat"),
            user: fc.constantFrom("a", "b", "c/d", "é"),
            model: fc.constantFrom("gpt-4o", "gpt-4o-mini"),
          }),
          { minLength: 1, maxLength: 80 },
        ),
        fc.integer({ min: 1, max: 5 }),
        (steps, maxEntries) => {
          const cache = createScopeCache(config, maxEntries);
          let now = start;
          for (const s of steps) {
            now += s.step;
            const tier = config.tiers[s.tier];
            if (!tier) throw new Error("no tier");
            expect(cache.scopes(feature, s.user, tier, now)).toEqual(
              scopesFor(config, feature, s.user, tier, now),
            );
            expect(cache.spendCounters(feature, s.model, s.user, tier, now)).toEqual(
              spendCountersFor(feature.name, s.model, s.user, tier, now),
            );
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});
