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

describe("memory store: settled ids", () => {
  const scopes = [
    {
      key: "u",
      kind: "user" as const,
      window: "day" as const,
      limit: 1000,
      resetAtMs: 2e12,
      expireAtMs: 2e12,
    },
  ];
  it("remembers a caller's id once settled (a resent request is a duplicate), not a generated one", async () => {
    const store = createMemoryStore();
    const run = async (id: string, generatedId: boolean) => {
      await store.reserve({ id, tokens: 100, scopes, nowMs: 1, ttlMs: 60_000 });
      await store.settle({ id, actualTokens: 40, reservedTokens: 100, scopes, nowMs: 2, generatedId });
      return store.reserve({ id, tokens: 100, scopes, nowMs: 3, ttlMs: 60_000 });
    };
    expect(await run("from-caller", false)).toMatchObject({ ok: true, duplicate: true });
    // A generated id is never sent again by anyone: nothing to remember (and no memory per request).
    expect(await run("generated", true)).toMatchObject({ ok: true, duplicate: false });
    expect(store.settledIdCount).toBe(1);
  });
});

describe("memory store: expiry of unsettled reservations", () => {
  it("releases exactly the unsettled reservations whose time has come, whatever the order of settles", async () => {
    const { default: fc } = await import("fast-check");
    const scope = [
      {
        key: "k",
        kind: "user" as const,
        window: "day" as const,
        limit: 1e12,
        resetAtMs: 2e12,
        expireAtMs: 2e12,
      },
    ];
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.record({
            ttl: fc.integer({ min: 1, max: 50 }),
            settleAt: fc.option(fc.integer({ min: 0, max: 60 })),
          }),
          {
            minLength: 1,
            maxLength: 60,
          },
        ),
        async (plan) => {
          const expired: string[] = [];
          const store = createMemoryStore({ onReservationExpired: (id) => expired.push(id) });
          for (const [i, p] of plan.entries())
            await store.reserve({ id: `r${i}`, tokens: 1, scopes: scope, nowMs: 0, ttlMs: p.ttl });
          // Walk time forward; at each instant settle what the plan settles then, before housekeeping.
          const expected: string[] = [];
          for (let t = 0; t <= 61; t++) {
            for (const [i, p] of plan.entries()) {
              if (p.settleAt === t && p.settleAt < p.ttl)
                await store.settle({
                  id: `r${i}`,
                  actualTokens: 1,
                  reservedTokens: 1,
                  scopes: scope,
                  nowMs: t,
                });
            }
            await store.read(["k"], t); // runs housekeeping at t
          }
          for (const [i, p] of plan.entries())
            if (p.settleAt === null || p.settleAt >= p.ttl) expected.push(`r${i}`);
          expect([...expired].sort()).toEqual(expected.sort());
          expect(store.reservationCount).toBe(0);
          const settledCount = plan.filter((p) => p.settleAt !== null && p.settleAt < p.ttl).length;
          expect(await store.read(["k"], 62)).toEqual([{ used: settledCount, reserved: 0 }]);
        },
      ),
      { numRuns: 200 },
    );
  });
});
