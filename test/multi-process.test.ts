import { randomUUID } from "node:crypto";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { dayWindow, minuteWindow } from "../src/core/windows.js";
import { runLoadWorker, type WorkerLedger } from "./helpers/load-worker.js";

const WORKERS = 4;
const REQUESTS_PER_WORKER = 150;
const CONCURRENCY = 64;
const users = ["u0", "u1", "u2", "u3", "u4", "u5"];
const features = ["chat", "summarize"];
const config = {
  features: {
    chat: { model: "gpt-4o", max_input: 2000, max_output: 300, on_exceed: "trim", daily_tokens: 40_000 },
    summarize: { model: "gpt-4o-mini", max_input: 4000, max_output: 200, on_exceed: "reject" },
  },
  tiers: { free: { daily_tokens: 10_000 } },
  default_tier: "free",
  global: { tokens_per_minute: 1_000_000 },
};

describe("multi-process: 4 processes share one Redis budget", () => {
  const prefix = `${inject("redisPrefix")}mp-${randomUUID()}:`;
  const redis = new Redis(inject("redisUrl"), { lazyConnect: true });
  const nowMs = Date.now();
  let ledgers: WorkerLedger[] = [];

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
          features,
          seed: 1000 + w,
          config,
        }),
      ),
    );
  }, 120_000);
  afterAll(() => redis.disconnect());

  it("counters equal the sum of settled usage exactly, and no scope exceeds its limit", async () => {
    const day = dayWindow(nowMs, "UTC").id;
    const minute = minuteWindow(nowMs).id;
    const byUser = new Map<string, number>();
    const byFeature = new Map<string, number>();
    let total = 0;
    for (const l of ledgers) {
      for (const [k, v] of Object.entries(l.charged)) {
        const [u, f] = k.split("|") as [string, string];
        byUser.set(u, (byUser.get(u) ?? 0) + v);
        byFeature.set(f, (byFeature.get(f) ?? 0) + v);
        total += v;
      }
    }
    for (const u of users) {
      const h = await redis.hgetall(`${prefix}c:user:{${u}}:day:${day}`);
      expect(Number(h.u ?? 0), `user ${u} used`).toBe(byUser.get(u) ?? 0);
      expect(Number(h.t ?? 0), `user ${u} used + reserved`).toBe(byUser.get(u) ?? 0);
      expect(Number(h.u ?? 0)).toBeLessThanOrEqual(10_000);
    }
    for (const f of features) {
      const h = await redis.hgetall(`${prefix}c:feature:{${f}}:day:${day}`);
      expect(Number(h.u ?? 0), `feature ${f} used`).toBe(byFeature.get(f) ?? 0);
      expect(Number(h.t ?? 0), `feature ${f} used + reserved`).toBe(byFeature.get(f) ?? 0);
    }
    expect(Number((await redis.hgetall(`${prefix}c:feature:{chat}:day:${day}`)).u ?? 0)).toBeLessThanOrEqual(
      40_000,
    );
    const g = await redis.hgetall(`${prefix}c:global:minute:${minute}`);
    expect(Number(g.u)).toBe(total);
    expect(Number(g.t)).toBe(total);
  });

  it("the limits were really hit: many requests were refused, none failed for another reason", () => {
    const admitted = ledgers.reduce((s, l) => s + l.admitted, 0);
    const refused: Record<string, number> = {};
    for (const l of ledgers)
      for (const [c, n] of Object.entries(l.refused)) refused[c] = (refused[c] ?? 0) + n;
    expect(admitted + Object.values(refused).reduce((s, n) => s + n, 0)).toBe(WORKERS * REQUESTS_PER_WORKER);
    expect(
      Object.keys(refused).every((c) => c === "user_budget_exceeded" || c === "feature_budget_exceeded"),
    ).toBe(true);
    expect(refused.user_budget_exceeded ?? 0).toBeGreaterThan(100);
    expect(admitted).toBeGreaterThan(50);
  });

  it("no reservation is left and no key lacks a TTL", async () => {
    expect(await redis.zcard(`${prefix}exp`)).toBe(0);
    let cursor = "0";
    let keys = 0;
    do {
      const [next, batch] = await redis.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 1000);
      for (const k of batch) {
        keys++;
        expect(k.startsWith(`${prefix}r:`), `leftover reservation ${k}`).toBe(false);
        const ttl = await redis.pttl(k);
        expect(ttl, `TTL of ${k}`).toBeGreaterThan(0);
      }
      cursor = next;
    } while (cursor !== "0");
    expect(keys).toBeGreaterThan(0);
  });
});
