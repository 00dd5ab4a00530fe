import { describe, expect, it } from "vitest";
import { createMemoryStore } from "./memory-store.js";
import { describeStoreContract } from "./test-store-contract.js";

describeStoreContract("memory", async () => createMemoryStore());

describe("memory store housekeeping", () => {
  it("reports reservations that expire unsettled", async () => {
    const expired: string[] = [];
    const store = createMemoryStore({ onReservationExpired: (id) => expired.push(id) });
    const scopes = [
      { key: "u", kind: "user", window: "day", limit: 10, resetAtMs: 100, expireAtMs: 200 },
    ] as const;
    await store.reserve({ id: "r1", tokens: 5, scopes, nowMs: 0, ttlMs: 50 });
    await store.reserve({ id: "r2", tokens: 5, scopes, nowMs: 0, ttlMs: 500 });
    expect(await store.read(["u"], 49)).toEqual([{ used: 0, reserved: 10 }]);
    expect(await store.read(["u"], 50)).toEqual([{ used: 0, reserved: 5 }]);
    expect(expired).toEqual(["r1"]);
    expect(store.reservationCount).toBe(1);
  });
});
