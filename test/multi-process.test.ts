/**
 * Issue #3 item 6: four OS processes share one Redis, a few hundred requests in flight, users and
 * features near their limits, every request settled with a random actual usage below its cap.
 * Afterwards Redis must equal the workers' own ledger exactly — budget counters and spend counters —
 * no scope may exceed its limit, nothing may be left reserved, and every key must have a TTL.
 * The limits are set so that each kind of scope refuses: users (first scope), a feature's daily
 * budget (a later scope, after the user's fit) and the global per-minute limit (the last scope).
 */
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { fixedTestNow } from "./helpers/clock.js";
import { runLoadWorker, type WorkerLedger } from "./helpers/load-worker.js";
import { scanKeys, testKeyPrefix } from "./helpers/redis-keys.js";

const WORKERS = 4;
const REQUESTS_PER_WORKER = 150;
const CONCURRENCY = 64;
const FREE_DAILY = 4_000;
const PRO_DAILY = 1_000_000;
const SUMMARIZE_DAILY = 10_000;
const GLOBAL_PER_MINUTE = 40_000;
/** Free users run out first; pro users never do, so their refusals come from a later scope. */
const freeUsers = ["f0", "f1", "f2", "f3"];
const proUsers = ["p0", "p1"];
const users = [...freeUsers, ...proUsers];
const features = ["chat", "summarize"];
const models: Record<string, string> = { chat: "gpt-4o", summarize: "gpt-4o-mini" };
/**
 * Prices in whole nano-USD per token (USD per 1M tokens × 1000), so the cost of a request is linear
 * in its tokens and the expected spend can be computed from the ledger's token sums, independently of
 * the library's cost arithmetic.
 */
const nanoUsdPerToken: Record<string, { input: number; output: number }> = {
  "gpt-4o": { input: 2500, output: 10_000 },
  "gpt-4o-mini": { input: 150, output: 600 },
};
const config = {
  features: {
    chat: { model: "gpt-4o", max_input: 2000, max_output: 300, on_exceed: "trim" },
    summarize: {
      model: "gpt-4o-mini",
      max_input: 4000,
      max_output: 200,
      on_exceed: "reject",
      daily_tokens: SUMMARIZE_DAILY,
    },
  },
  tiers: { free: { daily_tokens: FREE_DAILY }, pro: { daily_tokens: PRO_DAILY } },
  default_tier: "free",
  global: { tokens_per_minute: GLOBAL_PER_MINUTE },
  prices: Object.fromEntries(
    Object.entries(nanoUsdPerToken).map(([m, p]) => [m, { input: p.input / 1000, output: p.output / 1000 }]),
  ),
};

describe("multi-process: 4 processes share one Redis budget", () => {
  const prefix = testKeyPrefix("mp");
  const redis = new Redis(inject("redisUrl"), { lazyConnect: true });
  // One fixed instant for every worker (helpers/clock.ts): the windows below are the ones written.
  const nowMs = fixedTestNow();
  const iso = new Date(nowMs).toISOString();
  const day = iso.slice(0, 10); // every tier is on UTC
  const hour = iso.slice(0, 13);
  const minute = iso.slice(0, 16);
  let ledgers: WorkerLedger[] = [];
  /** Sums of the workers' spend ledgers, by user, by feature and in total. */
  type Sum = { tokens: number; input: number; output: number; cost: number; requests: number };
  const zero = (): Sum => ({ tokens: 0, input: 0, output: 0, cost: 0, requests: 0 });
  const byUser = new Map<string, Sum>();
  const byFeature = new Map<string, Sum>();
  const total = zero();
  const add = (to: Sum, s: Sum) => {
    for (const k of Object.keys(to) as Array<keyof Sum>) to[k] += s[k];
  };

  beforeAll(async () => {
    await redis.connect();
    ledgers = await Promise.all(
      Array.from({ length: WORKERS }, (_, w) =>
        runLoadWorker({
          redisUrl: inject("redisUrl"),
          keyPrefix: prefix,
          nowMs,
          requests: REQUESTS_PER_WORKER,
          concurrency: CONCURRENCY,
          users,
          userTiers: Object.fromEntries(proUsers.map((u) => [u, "pro"])),
          features,
          seed: 1000 + w,
          config,
        }),
      ),
    );
    for (const l of ledgers) {
      for (const [k, s] of Object.entries(l.spend)) {
        const [u, f] = k.split("|") as [string, string];
        if (!byUser.has(u)) byUser.set(u, zero());
        if (!byFeature.has(f)) byFeature.set(f, zero());
        add(byUser.get(u) as Sum, s);
        add(byFeature.get(f) as Sum, s);
        add(total, s);
      }
    }
  }, 120_000);
  afterAll(() => redis.disconnect());

  const counter = async (key: string) => {
    const h = await redis.hgetall(`${prefix}c:${key}`);
    return { used: Number(h.u ?? 0), committed: Number(h.t ?? 0) };
  };
  const spendOf = async (key: string) => {
    const h = await redis.hgetall(`${prefix}c:${key}`);
    return {
      cost: Number(h.c ?? 0),
      input: Number(h.i ?? 0),
      output: Number(h.o ?? 0),
      requests: Number(h.r ?? 0),
    };
  };

  it("the limits were really hit, at every kind of scope; nothing failed for another reason", () => {
    const admitted = ledgers.reduce((s, l) => s + l.admitted, 0);
    const refused: Record<string, number> = {};
    for (const l of ledgers)
      for (const [c, n] of Object.entries(l.refused)) refused[c] = (refused[c] ?? 0) + n;
    expect(admitted + Object.values(refused).reduce((s, n) => s + n, 0)).toBe(WORKERS * REQUESTS_PER_WORKER);
    expect(Object.keys(refused).sort()).toEqual([
      "feature_budget_exceeded",
      "global_rate_limited",
      "user_budget_exceeded",
    ]);
    // The user's day is the first scope; the feature's day and the global minute are checked after it,
    // so their refusals are of requests whose earlier scopes all fit.
    expect(refused.user_budget_exceeded).toBeGreaterThan(10);
    expect(refused.feature_budget_exceeded).toBeGreaterThan(10);
    expect(refused.global_rate_limited).toBeGreaterThan(10);
    expect(admitted).toBeGreaterThan(50);
    expect(total.requests).toBe(admitted);
  });

  it("budget counters equal the sum of settled usage exactly, and no scope exceeds its limit", async () => {
    for (const u of users) {
      const c = await counter(`user:{${u}}:day:${day}`);
      const expected = byUser.get(u)?.tokens ?? 0;
      expect(c, `user ${u}`).toEqual({ used: expected, committed: expected });
      expect(c.used).toBeLessThanOrEqual(freeUsers.includes(u) ? FREE_DAILY : PRO_DAILY);
    }
    for (const f of features) {
      const c = await counter(`feature:{${f}}:day:${day}`);
      const expected = byFeature.get(f)?.tokens ?? 0;
      expect(c, `feature ${f}`).toEqual({ used: expected, committed: expected });
    }
    expect((await counter(`feature:{summarize}:day:${day}`)).used).toBeLessThanOrEqual(SUMMARIZE_DAILY);
    const g = await counter(`global:minute:${minute}`);
    expect(g, "global minute").toEqual({ used: total.tokens, committed: total.tokens });
    expect(g.used).toBeLessThanOrEqual(GLOBAL_PER_MINUTE);
  });

  it("spend counters (cost, input, output, requests) equal the workers' ledger exactly", async () => {
    const priced = (f: string, s: Sum) => {
      const p = nanoUsdPerToken[models[f] as string] as { input: number; output: number };
      return s.input * p.input + s.output * p.output;
    };
    let totalCost = 0;
    for (const f of features) {
      const s = byFeature.get(f) ?? zero();
      expect(s.requests, `requests of ${f}`).toBeGreaterThan(0);
      // The library's cost of each request, summed, is the price table's cost of the tokens.
      expect(s.cost, `cost of ${f} reported by the settlements`).toBe(priced(f, s));
      totalCost += s.cost;
      const want = { cost: s.cost, input: s.input, output: s.output, requests: s.requests };
      expect(await spendOf(`spend:feature:{${f}}:hour:${hour}`), `spend of feature ${f}`).toEqual(want);
      expect(await spendOf(`spend:model:{${models[f]}}:hour:${hour}`), `spend of model ${models[f]}`).toEqual(
        want,
      );
    }
    expect(await spendOf(`spend:global:hour:${hour}`)).toEqual({
      cost: totalCost,
      input: total.input,
      output: total.output,
      requests: total.requests,
    });
    for (const u of users) {
      const s = byUser.get(u) ?? zero();
      expect(await spendOf(`spend:user:{${u}}:day:${day}`), `spend of user ${u}`).toEqual({
        cost: s.cost,
        input: s.input,
        output: s.output,
        requests: s.requests,
      });
    }
  });

  it("no reservation or record is left, every key has a TTL, and no key is unaccounted for", async () => {
    // Live reservations are in the expiry zset and their records in the record hash (scripts/sweep.ts).
    expect(await redis.zcard(`${prefix}exp`), "live reservations").toBe(0);
    expect(await redis.hlen(`${prefix}rec`), "reservation records").toBe(0);
    const expectedKeys = new Set([
      ...users.map((u) => `c:user:{${u}}:day:${day}`),
      ...features.map((f) => `c:feature:{${f}}:day:${day}`),
      `c:global:minute:${minute}`,
      ...features.map((f) => `c:spend:feature:{${f}}:hour:${hour}`),
      ...features.map((f) => `c:spend:model:{${models[f]}}:hour:${hour}`),
      `c:spend:global:hour:${hour}`,
      ...users.map((u) => `c:spend:user:{${u}}:day:${day}`),
    ]);
    // The alerts of daily budgets crossing their thresholds, claimed once across the processes.
    const alertClaim = new RegExp(
      `^claim:alert:daily_budget:(user|feature):\\{[a-z0-9]+\\}:day:${day}:\\d+$`,
    );
    const keys = await scanKeys(redis, `${prefix}*`);
    const markers = keys.filter((k) => k.startsWith(`${prefix}s:`));
    const others = keys.filter((k) => !k.startsWith(`${prefix}s:`)).map((k) => k.slice(prefix.length));
    // Each admitted request was settled exactly once, which leaves one settled marker.
    expect(markers.length).toBe(total.requests);
    expect(
      others.filter((k) => !expectedKeys.has(k) && !alertClaim.test(k)),
      "unexpected keys",
    ).toEqual([]);
    expect(others.length).toBeGreaterThan(0);
    for (const k of keys) expect(await redis.pttl(k), `TTL of ${k}`).toBeGreaterThan(0);
  });
});
