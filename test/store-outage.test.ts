import { randomUUID } from "node:crypto";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import type { Logger } from "../src/core/logger.js";
import { silentLogger } from "../src/core/logger.js";
import { createGuardedStore } from "../src/stores/guarded-store.js";
import { createRedisStore } from "../src/stores/redis/redis-store.js";
import type { ScopeCharge } from "../src/stores/types.js";
import { createTokenfuse } from "../src/tokenfuse.js";
import { freePort, type OwnRedis, startRedisServer } from "./helpers/redis-server.js";
import { startFaultProxy } from "./helpers/tcp-proxy.js";

// What an outage of the shared store must never cost: usage settled meanwhile, budget held by
// requests that were refused, or a fail-open nobody is told about (SPEC §4 on_error).

const config = {
  features: { chat: { model: "gpt-4o", max_input: 2000, max_output: 100, on_exceed: "trim" } },
  tiers: { free: { daily_tokens: 10_000 } },
  default_tier: "free",
  global: { tokens_per_minute: 1_000_000 },
};
const messages = [{ role: "user", content: "hello there" }];

async function until(cond: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}`);
}

/** Every hash under `pattern` (the day in a counter's name is the engine's, whatever time it is now). */
async function hashes(redis: Redis, pattern: string): Promise<Array<Record<string, string>>> {
  const out: Array<Record<string, string>> = [];
  let cursor = "0";
  do {
    const [next, keys] = await redis.scan(cursor, "MATCH", pattern, "COUNT", 1000);
    for (const k of keys) out.push(await redis.hgetall(k));
    cursor = next;
  } while (cursor !== "0");
  return out;
}

describe("Redis killed during an outage with on_error: deny", () => {
  let own: OwnRedis;
  beforeAll(async () => {
    own = await startRedisServer();
  });
  afterAll(async () => {
    await own?.stop();
  });

  it("usage settled during the outage is charged when Redis is back, however many requests were refused meanwhile", async () => {
    const prefix = `${inject("redisPrefix")}${randomUUID()}:`;
    const primary = createRedisStore({
      url: own.url,
      keyPrefix: prefix,
      commandTimeoutMs: 300,
      connectTimeoutMs: 300,
    });
    // A small queue, so that refused requests would overflow it if they queued anything.
    const store = createGuardedStore({
      primary,
      onError: "deny",
      logger: silentLogger,
      retryMs: 50,
      maxPending: 50,
    });
    const now = Date.now();
    const scope = (u: string): ScopeCharge[] => [
      {
        key: `user:{${u}}:day:x`,
        kind: "user",
        window: "day",
        limit: 1e9,
        resetAtMs: now + 864e5,
        expireAtMs: now + 2 * 864e5,
      },
    ];
    try {
      expect(
        (
          await store.reserve({
            id: "paid",
            tokens: 20_000,
            scopes: scope("paying"),
            nowMs: now,
            ttlMs: 660_000,
          })
        ).ok,
      ).toBe(true);
      await own.kill();
      const settled = {
        id: "paid",
        actualTokens: 12_345,
        reservedTokens: 20_000,
        scopes: scope("paying"),
        nowMs: now,
      };
      expect(await store.settle(settled)).toBe("deferred");
      // Refused while the connection is down: their commands never left the process, nothing to undo.
      for (let i = 0; i < 500; i++) {
        const r = store.reserve({
          id: `refused-${i}`,
          tokens: 10,
          scopes: scope("other"),
          nowMs: now,
          ttlMs: 660_000,
        });
        await expect(r).rejects.toThrow(/unavailable/);
      }
      expect(store.pendingSettlements).toBe(1);
      expect(store.droppedSettlements).toBe(0);
      await own.restart();
      await until(() => store.pendingSettlements === 0, 15_000, "the queued settlement to be applied");
      const direct = new Redis(own.url);
      try {
        expect(await direct.hgetall(`${prefix}c:user:{paying}:day:x`)).toEqual({ t: "12345", u: "12345" });
      } finally {
        direct.disconnect();
      }
    } finally {
      await store.close();
    }
  }, 30_000);
});

describe("a reservation that ran in Redis but whose reply was lost, then refused", () => {
  const direct = new Redis(inject("redisUrl"));
  afterAll(() => direct.disconnect());

  for (const mode of ["deny", "local"] as const) {
    it(`leaves nothing reserved in Redis once the store answers again (on_error: ${mode})`, async () => {
      const proxy = await startFaultProxy(Number(new URL(inject("redisUrl")).port || 6379));
      const prefix = `${inject("redisPrefix")}${randomUUID()}:`;
      const primary = createRedisStore({
        url: proxy.url,
        keyPrefix: prefix,
        commandTimeoutMs: 300,
        connectTimeoutMs: 300,
      });
      // With local: this process may admit 50 of the 10 000 tokens on its own, so its fallback
      // refuses the request (~110 tokens) and nobody will ever settle it.
      const store = createGuardedStore({
        primary,
        onError: mode,
        logger: silentLogger,
        retryMs: 50,
        localLimitFraction: 0.005,
      });
      const tf = createTokenfuse({ config, store, logger: silentLogger });
      try {
        await (await tf.admit({ feature: "chat", user: "warm", messages })).settle();
        proxy.loseNextReply();
        const refused = await tf.admit({ feature: "chat", user: "victim", messages }).then(
          () => "admitted",
          (e: { code?: string }) => e.code,
        );
        expect(refused).toBe(mode === "deny" ? "budget_store_unavailable" : "user_budget_exceeded");
        await until(() => primary.ready, 5000, "the store to reconnect");
        await until(() => store.pendingSettlements === 0, 5000, "the abandon to be applied");
        const counters = await hashes(direct, `${prefix}c:user:{victim}:day:*`);
        expect(counters.length).toBe(1); // the reservation did run: the test exercises what it claims
        expect(counters.map((h) => Number(h.t))).toEqual([0]);
        expect(await direct.zcard(`${prefix}exp`)).toBe(0);
      } finally {
        await tf.close();
        await proxy.close();
      }
    });
  }
});

describe("admitted without the store (on_error: allow)", () => {
  it("raises an alert, once per process and hour, besides the log line", async () => {
    const lines: Array<{ obj: Record<string, unknown>; msg: string }> = [];
    const rec = (obj: unknown, msg?: string) =>
      lines.push({ obj: (obj ?? {}) as Record<string, unknown>, msg: msg ?? "" });
    const logger = { info: rec, warn: rec, error: rec, debug() {}, child: () => logger } as unknown as Logger;
    const port = await freePort(); // nothing listens there
    const tf = createTokenfuse({
      config: {
        ...config,
        store: { url: `redis://127.0.0.1:${port}`, on_error: "allow" },
        alerts: { sinks: [{ type: "log" }] },
      },
      logger,
    });
    try {
      for (let i = 0; i < 3; i++) {
        const a = await tf.admit({ feature: "chat", user: "u", messages });
        expect(a.storeStatus).toBe("store_unavailable");
        await a.settle({ prompt_tokens: 5, completion_tokens: 5 });
      }
      await until(() => lines.some((l) => "alert" in l.obj), 3000, "the alert");
    } finally {
      await tf.close();
    }
    const alerts = lines
      .filter((l) => "alert" in l.obj)
      .map((l) => l.obj.alert as { kind: string; scope: string });
    expect(alerts.map((a) => [a.kind, a.scope])).toEqual([["store_unavailable", "store"]]);
  });
});
