/**
 * Reservations are applied in the order they were made, also on the first connection.
 * The comment on MAX_BATCHES_IN_FLIGHT promises "Order is kept", and the contract suite says N
 * concurrent reservations must give the results of the same calls made one by one.
 */
import { describe, expect, inject, it } from "vitest";
import { createRedisStore } from "../src/stores/redis/redis-store.js";
import type { ScopeCharge } from "../src/stores/types.js";
import { testKeyPrefix } from "./helpers/redis-keys.js";

const T0 = Date.now();
const scope: ScopeCharge = {
  key: "u",
  kind: "user",
  window: "day",
  limit: 1000,
  resetAtMs: T0 + 3_600_000,
  expireAtMs: T0 + 7_200_000,
};

describe("first connection", () => {
  it("a reservation made while connecting is applied before one made after the connection is ready", async () => {
    const store = createRedisStore({ url: inject("redisUrl"), keyPrefix: testKeyPrefix("r5-order") });
    try {
      // A is made first: it is queued, and its batch waits for the connection (and the server check).
      const ready = new Promise<void>((r) => store.redis.once("ready", () => r()));
      const a = store.reserve({ id: "A", tokens: 600, scopes: [scope], nowMs: T0, ttlMs: 60_000 });
      await ready;
      // B is made after A (the connection is ready now, the server check is still running).
      const b = store.reserve({ id: "B", tokens: 600, scopes: [scope], nowMs: T0, ttlMs: 60_000 });
      const [ra, rb] = await Promise.all([a, b]);
      // One by one, in the order made: A fits (600 of 1000), B does not.
      expect({ A: ra.ok, B: rb.ok }).toEqual({ A: true, B: false });
    } finally {
      await store.close();
    }
  });
});
