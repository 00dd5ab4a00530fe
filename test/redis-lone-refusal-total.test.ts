/**
 * A refusal reports the refusing counter's total (`committed`) exactly, as the
 * memory store and the batch script do, also for a reservation near 2^53 (the engine saturates a
 * "no cap" reservation at Number.MAX_SAFE_INTEGER, so such reservations reach the store).
 */
import { describe, expect, inject, it } from "vitest";
import { createMemoryStore } from "../src/stores/memory-store.js";
import { createRedisStore } from "../src/stores/redis/redis-store.js";
import type { ScopeCharge, Store } from "../src/stores/types.js";
import { testKeyPrefix } from "./helpers/redis-keys.js";

const T0 = Date.now();
const scope: ScopeCharge = {
  key: "u",
  kind: "user",
  window: "day",
  limit: 1_000_000,
  resetAtMs: T0 + 3_600_000,
  expireAtMs: T0 + 7_200_000,
};

async function scenario(store: Store) {
  await store.reserve({ id: "small", tokens: 10, scopes: [scope], nowMs: T0, ttlMs: 60_000 });
  // A lone reservation (nothing else in flight): refused, the counter holds 10.
  return store.reserve({
    id: "huge",
    tokens: Number.MAX_SAFE_INTEGER,
    scopes: [scope],
    nowMs: T0,
    ttlMs: 60_000,
  });
}

describe("refusal of a reservation near 2^53", () => {
  it("reports the counter's total as the memory store does (10)", async () => {
    const memory = await scenario(createMemoryStore());
    const redis = createRedisStore({ url: inject("redisUrl"), keyPrefix: testKeyPrefix("r5-lone") });
    try {
      const r = await scenario(redis);
      expect(memory).toEqual({ ok: false, scopeIndex: 0, committed: 10 });
      expect(r).toEqual(memory);
    } finally {
      await redis.close();
    }
  });
});
