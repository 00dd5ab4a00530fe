import { randomUUID } from "node:crypto";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { OnStoreError } from "../src/config/types.js";
import { isTokenBudgetError } from "../src/core/errors.js";
import { silentLogger } from "../src/core/logger.js";
import { createGuardedStore, type GuardedStore } from "../src/stores/guarded-store.js";
import { createRedisStore } from "../src/stores/redis/redis-store.js";
import { createTokenfuse, type Tokenfuse } from "../src/tokenfuse.js";
import { type OwnRedis, pingRedis, startRedisServer } from "./helpers/redis-server.js";
import { startFaultProxy } from "./helpers/tcp-proxy.js";

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

function make(url: string, onError: OnStoreError, prefix: string): { tf: Tokenfuse; store: GuardedStore } {
  const store = createGuardedStore({
    primary: createRedisStore({ url, keyPrefix: prefix, commandTimeoutMs: 300, connectTimeoutMs: 300 }),
    onError,
    logger: silentLogger,
    retryMs: 50,
    localLimitFraction: 0.5,
  });
  return { tf: createTokenfuse({ config, store, logger: silentLogger }), store };
}

const unhandled: unknown[] = [];
const onUnhandled = (e: unknown) => unhandled.push(e);

describe("Redis faults", () => {
  let redis: OwnRedis;
  let direct: Redis;
  beforeAll(async () => {
    process.on("unhandledRejection", onUnhandled);
    redis = await startRedisServer();
    direct = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
    await direct.connect();
  });
  afterAll(async () => {
    process.off("unhandledRejection", onUnhandled);
    direct.disconnect();
    await redis.stop();
    expect(unhandled).toEqual([]);
  });

  const userDay = (prefix: string, user: string) =>
    `${prefix}c:user:{${user}}:day:${new Date().toISOString().slice(0, 10)}`;

  it("a reply lost after the reservation ran: refused (deny), then released — never held or charged twice", async () => {
    const proxy = await startFaultProxy(redis.port);
    const prefix = `lost-${randomUUID()}:`;
    const { tf, store } = make(proxy.url, "deny", prefix);
    try {
      // Connect and load the scripts first, so the lost reply is the reservation's own.
      const warm = await tf.admit({ feature: "chat", user: "warm", messages });
      await warm.settle();
      proxy.loseNextReply();
      const e = await tf.admit({ feature: "chat", user: "lr", messages }).catch((err: unknown) => err);
      expect(isTokenBudgetError(e) && e.code).toBe("budget_store_unavailable");
      expect(proxy.lostReplies).toBe(1);
      // The reservation did run on the server; the queued release undoes it once Redis answers again.
      await until(async () => store.pendingSettlements === 0, 5000, "the queued release");
      const h = await direct.hgetall(userDay(prefix, "lr"));
      expect(Number(h.t ?? 0)).toBe(0);
      expect(await direct.zcard(`${prefix}exp`)).toBe(0);

      // A settlement whose reply is lost is deferred, retried, and charged exactly once.
      await until(
        () => (store as unknown as { opts: { primary: { ready: boolean } } }).opts.primary.ready,
        5000,
        "reconnect",
      );
      const a = await tf.admit({ feature: "chat", user: "lr", messages });
      proxy.loseNextReply();
      const s = await a.settle({ prompt_tokens: a.inputTokens, completion_tokens: 40 });
      expect(s.status).toBe("deferred");
      await until(async () => store.pendingSettlements === 0, 5000, "the deferred settlement");
      const after = await direct.hgetall(userDay(prefix, "lr"));
      expect(Number(after.u)).toBe(a.inputTokens + 40);
      expect(Number(after.t)).toBe(a.inputTokens + 40);
    } finally {
      await tf.close();
      await proxy.close();
    }
  });

  it("a retry with the same requestId after a refused reservation is reserved and charged (deny)", async () => {
    const proxy = await startFaultProxy(redis.port);
    const prefix = `retry-${randomUUID()}:`;
    const { tf, store } = make(proxy.url, "deny", prefix);
    try {
      const warm = await tf.admit({ feature: "chat", user: "warm", messages });
      await warm.settle();
      proxy.loseNextReply();
      const req = { requestId: "order-42", feature: "chat", user: "rt", messages };
      const e = await tf.admit(req).catch((err: unknown) => err);
      expect(isTokenBudgetError(e) && e.code).toBe("budget_store_unavailable");
      await until(async () => store.pendingSettlements === 0, 5000, "the queued release");
      await until(
        () => (store as unknown as { opts: { primary: { ready: boolean } } }).opts.primary.ready,
        5000,
        "reconnect",
      );
      // The caller retries with its idempotency key: a new request, since the first never ran.
      const a = await tf.admit(req);
      expect(Number((await direct.hgetall(userDay(prefix, "rt"))).t)).toBe(a.reservedTokens);
      const s = await a.settle({ prompt_tokens: a.inputTokens, completion_tokens: 60 });
      expect(s).toMatchObject({ status: "settled", chargedTokens: a.inputTokens + 60 });
      const h = await direct.hgetall(userDay(prefix, "rt"));
      expect([Number(h.u), Number(h.t)]).toEqual([a.inputTokens + 60, a.inputTokens + 60]);
      // A later call with the same requestId is a new provider call: charged again, never free.
      const again = await tf.admit(req);
      const s2 = await again.settle({ prompt_tokens: a.inputTokens, completion_tokens: 60 });
      expect(s2).toMatchObject({ status: "settled", chargedTokens: a.inputTokens + 60 });
      expect(Number((await direct.hgetall(userDay(prefix, "rt"))).u)).toBe(2 * (a.inputTokens + 60));
    } finally {
      await tf.close();
      await proxy.close();
    }
  });

  it("SCRIPT FLUSH under load causes no errors (EVALSHA falls back to EVAL)", async () => {
    const prefix = `flush-${randomUUID()}:`;
    const { tf } = make(redis.url, "deny", prefix);
    try {
      let errors = 0;
      let ok = 0;
      const load = async (lane: number) => {
        for (let i = 0; i < 60; i++) {
          try {
            const a = await tf.admit({ feature: "chat", user: `s${lane}`, messages, maxTokens: 10 });
            await a.settle({ prompt_tokens: a.inputTokens, completion_tokens: 5 });
            ok++;
          } catch {
            errors++;
          }
        }
      };
      const flusher = (async () => {
        for (let i = 0; i < 10; i++) {
          await direct.script("FLUSH");
          await new Promise((r) => setTimeout(r, 5));
        }
      })();
      await Promise.all([load(1), load(2), load(3), load(4), flusher]);
      expect(errors).toBe(0);
      expect(ok).toBe(240);
    } finally {
      await tf.close();
    }
  });

  for (const mode of ["deny", "allow", "local"] as const) {
    it(`Redis killed mid-load and restarted: on_error=${mode} behaves as configured and service resumes`, async () => {
      const prefix = `kill-${mode}-${randomUUID()}:`;
      const { tf, store } = make(redis.url, mode, prefix);
      const outcomes: string[] = [];
      const one = async (user: string) => {
        try {
          const a = await tf.admit({ feature: "chat", user, messages, maxTokens: 100 });
          const s = await a.settle({ prompt_tokens: a.inputTokens, completion_tokens: 50 });
          outcomes.push(`${a.storeStatus}/${s.status}`);
        } catch (e) {
          if (!isTokenBudgetError(e)) throw e;
          outcomes.push(e.code);
        }
      };
      try {
        for (let i = 0; i < 20; i++) await one("k");
        expect(outcomes.every((o) => o === "ok/settled")).toBe(true);
        await redis.kill();
        outcomes.length = 0;
        for (let i = 0; i < 20; i++) await one("k");
        if (mode === "deny") expect(outcomes.every((o) => o === "budget_store_unavailable")).toBe(true);
        if (mode === "allow") expect(outcomes.every((o) => o === "store_unavailable/deferred")).toBe(true);
        if (mode === "local") {
          // Within the per-process cap (half of 10 000 here), then refused.
          expect(outcomes.some((o) => o === "local/deferred")).toBe(true);
          expect(outcomes.filter((o) => o === "local/deferred").length).toBeLessThanOrEqual(20);
        }
        const deferred = outcomes.filter((o) => o.endsWith("/deferred")).length;
        await redis.restart();
        const restartedAt = Date.now();
        // Service resumes within seconds of Redis returning.
        await until(
          async () => {
            outcomes.length = 0;
            await one("k2");
            return outcomes[0] === "ok/settled";
          },
          8000,
          "service to resume",
        );
        expect(Date.now() - restartedAt).toBeLessThan(8000);
        // Usage recorded during the outage reaches Redis once it is back (allow/local): nothing lost.
        await until(async () => store.pendingSettlements === 0, 5000, "deferred settlements to flush");
        const h = await direct.hgetall(userDay(prefix, "k"));
        const perRequest =
          (await tf.admit({ feature: "chat", user: "probe", messages, maxTokens: 100 })).inputTokens + 50;
        expect(Number(h.u ?? 0)).toBe(mode === "deny" ? 0 : deferred * perRequest);
      } finally {
        await tf.close();
        if (!(await pingRedis("127.0.0.1", redis.port))) await redis.restart();
      }
    });
  }
});
