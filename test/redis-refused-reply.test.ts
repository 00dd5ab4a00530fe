/**
 * An error reply by which Redis refused the settle script before it changed anything (here
 * READONLY: the URL reaches a server that became a replica, e.g. after a failover; the script's
 * first write is refused, so nothing ran) means the call was not applied. The guarded store must
 * retry such a settlement until it is applied; before the fix it was counted "may have been
 * applied" and given up after maxUnsureRetryMs (55 min by default), so its usage was never charged.
 * Scaled down with maxUnsureRetryMs = 300 ms. Private redis-server, stopped by pid.
 */
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Logger } from "../src/core/logger.js";
import { GuardedStore } from "../src/stores/guarded-store.js";
import { createRedisStore } from "../src/stores/redis/redis-store.js";
import type { ScopeCharge } from "../src/stores/types.js";
import { type OwnRedis, startRedisServer } from "./helpers/redis-server.js";

let own: OwnRedis;
beforeAll(async () => {
  own = await startRedisServer();
}, 20_000);
afterAll(async () => {
  await own?.stop();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A user's day scope, a guarded store over a fresh prefix on the private server, and a raw client. */
function setup(user: string, keyPrefix: string) {
  const now = Date.now();
  const scope: ScopeCharge = {
    key: `user:{${user}}:day:x`,
    kind: "user",
    window: "day",
    limit: 10_000,
    resetAtMs: now + 3_600_000,
    expireAtMs: now + 7_200_000,
  };
  const errors: string[] = [];
  const logger: Logger = { info() {}, warn() {}, error: (_o, m = "") => void errors.push(m) };
  const primary = createRedisStore({ url: own.url, keyPrefix, commandTimeoutMs: 1000 });
  const store = new GuardedStore({
    primary,
    onError: "allow",
    logger,
    retryMs: 3_600_000,
    maxUnsureRetryMs: 300,
  });
  return { now, scope, errors, primary, store, direct: new Redis(own.url) };
}

describe("redis store: a settlement Redis refused to run", () => {
  it("is retried until applied, not given up as possibly applied", async () => {
    const { now, scope, errors, primary, store, direct } = setup("u", "r5ro:");
    try {
      expect(await primary.ping()).toBe(true);
      await direct.replicaof("127.0.0.1", "1"); // read-only from now on (its master is unreachable)
      const err = await primary
        .settle({ id: "probe", actualTokens: 1, reservedTokens: 1, scopes: [scope], nowMs: now })
        .catch((e: unknown) => e as { message: string; notSent: boolean });
      expect((err as { message: string }).message).toMatch(/READONLY/);
      expect(await direct.exists("r5ro:c:user:{u}:day:x", "r5ro:s:probe")).toBe(0); // nothing ran
      // An admission made without the store (on_error: allow) settles 500 tokens: refused.
      const status = await store.settle({
        id: "req-1",
        actualTokens: 500,
        reservedTokens: 600,
        scopes: [scope],
        nowMs: now,
      });
      expect(status).toBe("deferred");
      await sleep(400);
      await direct.replicaof("NO", "ONE"); // promoted: writable again
      await store.flush();
      const used = Number(await direct.hget("r5ro:c:user:{u}:day:x", "u"));
      expect({ used, unconfirmed: store.unconfirmedSettlements, errors }).toEqual({
        used: 500,
        unconfirmed: 0,
        errors: [],
      });
    } finally {
      await direct.replicaof("NO", "ONE").catch(() => {});
      direct.disconnect();
      await store.close();
    }
  });

  it("NOREPLICAS (min-replicas-to-write unmet): lone and batched settlements are deferred, then applied once", async () => {
    const { now, scope, errors, primary, store, direct } = setup("v", "norep:");
    try {
      expect(await primary.ping()).toBe(true);
      await direct.config("SET", "min-replicas-to-write", "1"); // no replica: every write refused
      const err = await primary
        .settle({ id: "probe", actualTokens: 1, reservedTokens: 1, scopes: [scope], nowMs: now })
        .catch((e: unknown) => e as { message: string; notSent: boolean });
      expect(err).toMatchObject({ message: expect.stringMatching(/NOREPLICAS/), notSent: true });
      // Four settlements together (two batches) and one alone, all refused: deferred, not lost.
      const req = (id: string) => ({
        id,
        actualTokens: 100,
        reservedTokens: 100,
        scopes: [scope],
        nowMs: now,
      });
      const statuses = await Promise.all(["b1", "b2", "b3", "b4"].map((id) => store.settle(req(id))));
      statuses.push(await store.settle(req("alone")));
      expect(statuses).toEqual(Array(5).fill("deferred"));
      expect(await direct.exists("norep:c:user:{v}:day:x")).toBe(0); // nothing ran
      await sleep(400); // past maxUnsureRetryMs: a refused call is still retried
      await direct.config("SET", "min-replicas-to-write", "0");
      await store.flush();
      const used = Number(await direct.hget("norep:c:user:{v}:day:x", "u"));
      expect({ used, unconfirmed: store.unconfirmedSettlements, errors }).toEqual({
        used: 500,
        unconfirmed: 0,
        errors: [],
      });
    } finally {
      await direct.config("SET", "min-replicas-to-write", "0").catch(() => {});
      direct.disconnect();
      await store.close();
    }
  });

  it("OOM met by the sweep's release fails the call: the expired reservation is released later, not dropped unreleased", async () => {
    const now = Date.now();
    const scope: ScopeCharge = {
      key: "user:{w}:day:x",
      kind: "user",
      window: "day",
      limit: 10_000,
      resetAtMs: now + 3_600_000,
      expireAtMs: now + 7_200_000,
    };
    const store = createRedisStore({ url: own.url, keyPrefix: "oomsweep:", commandTimeoutMs: 1000 });
    const direct = new Redis(own.url);
    try {
      expect(
        await store.reserve({ id: "old", tokens: 10, scopes: [scope], nowMs: now, ttlMs: 1000 }),
      ).toMatchObject({
        ok: true,
      });
      const used = Number(/used_memory:(\d+)/.exec(await direct.info("memory"))?.[1]);
      await direct.config("SET", "maxmemory-policy", "noeviction");
      await direct.config("SET", "maxmemory", String(used - 100_000));
      // Two seconds on, "old" has expired: the next reservation's script sweeps it first.
      const err = await store
        .reserve({ id: "new", tokens: 1, scopes: [scope], nowMs: now + 2000, ttlMs: 600_000 })
        .catch((e: unknown) => e as Error);
      expect(err).toBeInstanceOf(Error);
      expect((err as Error).message).toMatch(/OOM/);
      await direct.config("SET", "maxmemory", "0");
      expect(await store.read([scope.key], now + 2010)).toEqual([{ used: 0, reserved: 0 }]);
      expect(await direct.zcard("oomsweep:exp")).toBe(0);
    } finally {
      await direct.config("SET", "maxmemory", "0").catch(() => {});
      direct.disconnect();
      await store.close();
    }
  });
});
