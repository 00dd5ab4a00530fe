import { randomUUID } from "node:crypto";
import { describe, expect, inject, it } from "vitest";
import { createMemoryStore } from "../memory-store.js";
import { describeStoreContract } from "../test-store-contract.js";
import type { ScopeCharge, Store } from "../types.js";
import { createRedisStore } from "./redis-store.js";

describeStoreContract("redis", async () =>
  createRedisStore({ url: inject("redisUrl"), keyPrefix: `${inject("redisPrefix")}${randomUUID()}:` }),
);

/**
 * The tests' "now": the start of the next hour of the real clock. Why not a fixed date: Redis expires
 * keys by its own clock, so expiry instants computed from a fixed past date would delete the keys
 * the moment they are written, and the tests would start failing once that date had passed.
 */
const T0 = (Math.floor(Date.now() / 3_600_000) + 1) * 3_600_000;
const scope = (key: string): ScopeCharge => ({
  key,
  kind: "user",
  window: "day",
  limit: 10_000,
  resetAtMs: T0 + 1e7,
  expireAtMs: T0 + 2e7,
});

const freshRedisStore = (prefix = `${inject("redisPrefix")}${randomUUID()}:`) =>
  createRedisStore({ url: inject("redisUrl"), keyPrefix: prefix });

/** Runs the same scenario on a memory store and on a fresh Redis store; returns both results. */
async function onBothStores<T>(run: (store: Store) => Promise<T>): Promise<{ memory: T; redis: T }> {
  const memoryStore = createMemoryStore();
  const redisStore = freshRedisStore();
  try {
    return { memory: await run(memoryStore), redis: await run(redisStore) };
  } finally {
    await redisStore.close();
    await memoryStore.close();
  }
}

describe("redis store: stored records", () => {
  it("releases a reservation record written by an earlier version (record as the zset member)", async () => {
    const prefix = `${inject("redisPrefix")}${randomUUID()}:`;
    const store = freshRedisStore(prefix);
    try {
      await store.ping();
      // The old layout: member "<tokens>\n<id>\n<full counter key>", no entry in P rec.
      await store.redis.hset(`${prefix}c:u`, "t", "300");
      await store.redis.pexpireat(`${prefix}c:u`, Date.now() + 60_000);
      await store.redis.zadd(`${prefix}exp`, T0 + 1000, `300\nold-id\n${prefix}c:u`);
      expect(await store.read(["u"], T0)).toEqual([{ used: 0, reserved: 300 }]);
      expect(await store.read(["u"], T0 + 1000)).toEqual([{ used: 0, reserved: 0 }]);
      expect(await store.redis.zcard(`${prefix}exp`)).toBe(0);
    } finally {
      await store.close();
    }
  });

  it("a settlement that describes the reservation differently releases what was really held, like the memory store", async () => {
    const { memory, redis } = await onBothStores(async (store) => {
      await store.reserve({
        id: "a",
        tokens: 300,
        scopes: [scope("u"), scope("g")],
        nowMs: T0,
        ttlMs: 60_000,
      });
      const status = await store.settle({
        id: "a",
        actualTokens: 100,
        reservedTokens: 200,
        scopes: [scope("u")],
        nowMs: T0,
      });
      return { status, states: await store.read(["u", "g"], T0) };
    });
    expect(memory).toEqual({
      status: "settled",
      states: [
        { used: 100, reserved: 0 },
        { used: 0, reserved: 0 },
      ],
    });
    expect(redis).toEqual(memory);
  });

  it("keeps ids and keys outside ASCII exact (JSON argument to the scripts)", async () => {
    const id = 'ünï-😀-\u0001-"quote"-\\';
    const scopes = [scope("user:{张伟}:day"), scope("feature:{😀}:day")];
    const { memory, redis } = await onBothStores(async (store) => [
      await store.reserve({ id, tokens: 300, scopes, nowMs: T0, ttlMs: 60_000 }),
      await store.reserve({ id, tokens: 300, scopes, nowMs: T0, ttlMs: 60_000 }),
      await Promise.all([
        store.reserve({ id: `${id}-2`, tokens: 5, scopes, nowMs: T0, ttlMs: 60_000 }),
        store.reserve({ id: `${id}-2`, tokens: 5, scopes, nowMs: T0, ttlMs: 60_000 }),
      ]),
      await store.settle({ id, actualTokens: 120, reservedTokens: 300, scopes, nowMs: T0 }),
      await store.read(
        scopes.map((s) => s.key),
        T0 + 120_000,
      ),
    ]);
    expect(memory[4]).toEqual([
      { used: 120, reserved: 0 },
      { used: 120, reserved: 0 },
    ]);
    expect(redis).toEqual(memory);
  });
});
