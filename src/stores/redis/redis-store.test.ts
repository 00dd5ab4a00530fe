import { randomUUID } from "node:crypto";
import { describe, expect, inject, it } from "vitest";
import { createMemoryStore } from "../memory-store.js";
import { describeStoreContract } from "../test-store-contract.js";
import { isStoreUnavailable, type ScopeCharge, type Store, type StoredApiKey } from "../types.js";
import { batchResults, createRedisStore } from "./redis-store.js";

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

describe("redis store: reading the batch reply", () => {
  const req = (id: string, tokens: number, n: number) => ({
    req: { id, tokens, scopes: Array.from({ length: n }, (_, i) => scope(`k${i}`)), nowMs: T0, ttlMs: 1000 },
  });

  it("replays the batch in order from the counters' starting totals", () => {
    // counters: 0 = shared (100 before the batch), 1 = a's own (5), 2 = c's own (0)
    const batch = [req("a", 10, 2), req("b", 7, 1), req("c", 3, 2), req("d", 1, 2)];
    const counters = [0, 1, 0, 0, 2, 0, 1];
    const reply = [100, 5, 0, 1, 2, 0, 1, 1];
    expect(batchResults(batch, reply, counters, 3)).toEqual([
      { ok: true, duplicate: false, committed: [110, 15] },
      { ok: true, duplicate: true, committed: [110] },
      { ok: false, scopeIndex: 1, committed: 0 },
      { ok: true, duplicate: false, committed: [111, 16] },
    ]);
  });

  it("refuses a reply of the wrong shape instead of guessing", () => {
    const batch = [req("a", 10, 1), req("b", 7, 1)];
    const counters = [0, 0];
    for (const reply of [
      [0, 1],
      [0, 1, 1, 1],
      [0, 3, 1],
      [0, 0, 1, 1],
      [0, 0, 5, 1],
      [Number.NaN, 1, 1],
    ])
      expect(() => batchResults(batch, reply, counters, 1), JSON.stringify(reply)).toThrow(/malformed reply/);
  });

  it("a malformed reply is a store failure for every caller of the batch, and the store goes on", async () => {
    const store = freshRedisStore();
    try {
      const origEvalsha = store.redis.evalsha.bind(store.redis);
      let broken = true;
      (store.redis as unknown as { evalsha: unknown }).evalsha = (...a: Parameters<typeof origEvalsha>) =>
        broken ? Promise.resolve("1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1") : origEvalsha(...a);
      const reqs = ["x", "y", "z"].map((id) => ({
        id,
        tokens: 5,
        scopes: [scope("m")],
        nowMs: T0,
        ttlMs: 1000,
      }));
      const results = await Promise.allSettled(reqs.map((r) => store.reserve(r)));
      for (const r of results) {
        expect(r.status).toBe("rejected");
        expect(isStoreUnavailable((r as PromiseRejectedResult).reason)).toBe(true);
      }
      broken = false;
      expect(await store.reserve({ ...(reqs[0] as (typeof reqs)[0]), id: "w" })).toEqual({
        ok: true,
        duplicate: false,
        committed: [5],
      });
    } finally {
      await store.close();
    }
  });
});

describe("redis store: run-time tables (user tiers, API keys)", () => {
  const DAY_MS = 86_400_000;
  const key: StoredApiKey = {
    hash: `sha256:${"c".repeat(64)}`,
    user: "carol",
    tier: "pro",
    trusted: false,
    createdAtMs: T0,
  };

  it("are hashes under the prefix with a 400-day TTL, set again by every write", async () => {
    const prefix = `${inject("redisPrefix")}${randomUUID()}:`;
    const store = freshRedisStore(prefix);
    try {
      await store.setUserTier("carol", "pro");
      expect(await store.addApiKey(key)).toBe(true);
      for (const k of [`${prefix}user-tiers`, `${prefix}api-keys`]) {
        expect(await store.redis.type(k)).toBe("hash");
        const ttl = await store.redis.pttl(k);
        expect(ttl).toBeGreaterThan(399 * DAY_MS);
        expect(ttl).toBeLessThanOrEqual(400 * DAY_MS);
        await store.redis.pexpire(k, 60_000);
      }
      await store.setUserTier("dave", "free");
      await store.deleteApiKey(key.hash);
      for (const k of [`${prefix}user-tiers`, `${prefix}api-keys`])
        expect(await store.redis.pttl(k)).toBeGreaterThan(399 * DAY_MS);
      // The stored value holds the entry, never a key: the hash is the field name.
      expect(await store.redis.hgetall(`${prefix}user-tiers`)).toMatchObject({ carol: "pro", dave: "free" });
    } finally {
      await store.close();
    }
  });

  it("a reading process renews the TTL (a key written once must not lapse while gateways use it)", async () => {
    const prefix = `${inject("redisPrefix")}${randomUUID()}:`;
    const writer = freshRedisStore(prefix);
    const reader = freshRedisStore(prefix);
    try {
      await writer.addApiKey(key);
      await writer.redis.pexpire(`${prefix}api-keys`, 60_000);
      const r = await reader.readApiKeys();
      expect(r.entries).toEqual([key]);
      expect(await writer.redis.pttl(`${prefix}api-keys`)).toBeGreaterThan(399 * DAY_MS);
      // At most once an hour per process: a second read does not write again.
      await writer.redis.pexpire(`${prefix}api-keys`, 60_000);
      expect(await reader.readApiKeys(r.revision)).toEqual({ revision: r.revision });
      expect(await writer.redis.pttl(`${prefix}api-keys`)).toBeLessThanOrEqual(60_000);
    } finally {
      await writer.close();
      await reader.close();
    }
  });

  it("two stores on one prefix see each other's writes; a malformed entry is reported, not returned", async () => {
    const prefix = `${inject("redisPrefix")}${randomUUID()}:`;
    const a = freshRedisStore(prefix);
    const b = freshRedisStore(prefix);
    try {
      const before = await b.readUserTiers();
      await a.setUserTier("carol", "enterprise");
      const after = await b.readUserTiers(before.revision);
      expect(after.revision).not.toBe(before.revision);
      expect({ ...after.entries }).toEqual({ carol: "enterprise" });
      await a.addApiKey(key);
      await a.redis.hset(`${prefix}api-keys`, `sha256:${"d".repeat(64)}`, "{not json");
      await a.redis.hset(`${prefix}api-keys`, `sha256:${"e".repeat(64)}`, '{"user":"x"}');
      const keys = await b.readApiKeys();
      expect(keys.entries).toEqual([key]);
      expect(keys.unreadable?.sort()).toEqual([`sha256:${"d".repeat(64)}`, `sha256:${"e".repeat(64)}`]);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it("a table that was deleted and written again gets a revision no reader holds", async () => {
    const prefix = `${inject("redisPrefix")}${randomUUID()}:`;
    const store = freshRedisStore(prefix);
    try {
      await store.setUserTier("carol", "pro");
      const r1 = await store.readUserTiers();
      await store.redis.del(`${prefix}user-tiers`);
      await store.setUserTier("carol", "free");
      const r2 = await store.readUserTiers(r1.revision);
      expect(r2.revision).not.toBe(r1.revision);
      expect({ ...r2.entries }).toEqual({ carol: "free" });
    } finally {
      await store.close();
    }
  });
});
