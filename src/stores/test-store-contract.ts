import { randomUUID } from "node:crypto";
import { afterAll, describe, expect, it } from "vitest";
import { STORE_VECTORS, type StoreVector } from "./contract-vectors.js";
import { createMemoryStore } from "./memory-store.js";
import type { ScopeCharge, Store, StoredApiKey } from "./types.js";

/** Makes a fresh, empty store (for Redis: a unique key prefix on a real server). */
export type StoreFactory = () => Promise<Store>;

/**
 * The tests' "now": the start of the next hour of the real clock. Why not a fixed date: Redis expires
 * keys by its own clock, so expiry instants computed from a fixed past date would delete the keys
 * the moment they are written, and the tests would start failing once that date had passed.
 */
const T0 = (Math.floor(Date.now() / 3_600_000) + 1) * 3_600_000;

function chargesFor(v: StoreVector, names: string[], ns: string): ScopeCharge[] {
  return names.map((n) => {
    const s = v.scopes[n];
    if (!s) throw new Error(`vector ${v.name} names unknown scope ${n}`);
    return {
      key: `${ns}:${n}`,
      kind: "user",
      window: "day",
      limit: s.limit,
      resetAtMs: T0 + s.resetAtMs,
      expireAtMs: T0 + s.resetAtMs + 3_600_000,
    };
  });
}

/**
 * The store contract: every Store implementation must pass this suite unchanged.
 * Call it from a test file with a factory for the implementation under test.
 */
export function describeStoreContract(name: string, factory: StoreFactory): void {
  describe(`Store contract: ${name}`, () => {
    const opened: Store[] = [];
    const open = async () => {
      const s = await factory();
      opened.push(s);
      return s;
    };
    afterAll(async () => {
      await Promise.all(opened.map((s) => s.close()));
    });

    for (const v of STORE_VECTORS) {
      it(`vector: ${v.name}`, async () => {
        const store = await open();
        const ns = `v-${randomUUID()}`;
        const reservedById = new Map<string, number>();
        for (const [i, step] of v.steps.entries()) {
          const where = `step ${i} (${step.op})`;
          if (step.op === "reserve") {
            if (!reservedById.has(step.id)) reservedById.set(step.id, step.tokens);
            const r = await store.reserve({
              id: `${ns}-${step.id}`,
              tokens: step.tokens,
              scopes: chargesFor(v, step.scopes, ns),
              nowMs: T0 + step.at,
              ttlMs: step.ttl ?? 600_000,
            });
            expect(r.ok, where).toBe(step.expect.ok);
            if (r.ok && step.expect.ok) {
              expect(r.duplicate, where).toBe(step.expect.duplicate ?? false);
              if (step.expect.committed) expect(r.committed, where).toEqual(step.expect.committed);
            }
            if (!r.ok && !step.expect.ok) {
              expect(r.scopeIndex, where).toBe(step.expect.scopeIndex);
              if (step.expect.committed !== undefined) expect(r.committed, where).toBe(step.expect.committed);
            }
          } else if (step.op === "settle") {
            const status = await store.settle({
              id: `${ns}-${step.id}`,
              actualTokens: step.actual,
              reservedTokens: reservedById.get(step.id) ?? 0,
              scopes: chargesFor(v, step.scopes, ns),
              nowMs: T0 + step.at,
              ...(step.abandon ? { abandon: true } : {}),
            });
            expect(status, where).toBe(step.expect);
          } else {
            const states = await store.read(
              step.keys.map((k) => `${ns}:${k}`),
              T0 + step.at,
            );
            expect(
              states.map((s) => [s.used, s.reserved]),
              where,
            ).toEqual(step.expect);
          }
        }
      });
    }

    it("releases every expired reservation before deciding, however many a crash left behind", async () => {
      // A crashed process left 300 reservations of 50 tokens (more than the whole budget would
      // allow together: they were made over time), all expired by now: the whole budget is free.
      const store = await open();
      const ns = `x-${randomUUID()}`;
      const scopes: ScopeCharge[] = [
        {
          key: `${ns}:u`,
          kind: "user",
          window: "day",
          limit: 15_000,
          resetAtMs: T0 + 1e7,
          expireAtMs: T0 + 2e7,
        },
      ];
      for (let i = 0; i < 300; i++)
        expect(
          (await store.reserve({ id: `${ns}-${i}`, tokens: 50, scopes, nowMs: T0, ttlMs: 1000 })).ok,
        ).toBe(true);
      const r = await store.reserve({
        id: `${ns}-next`,
        tokens: 15_000,
        scopes,
        nowMs: T0 + 2000,
        ttlMs: 60_000,
      });
      expect(r).toEqual({ ok: true, duplicate: false, committed: [15_000] });
      expect(await store.read([`${ns}:u`], T0 + 2000)).toEqual([{ used: 0, reserved: 15_000 }]);
    });

    it("never admits more than the limit under 200 concurrent reservations", async () => {
      const store = await open();
      const ns = `c-${randomUUID()}`;
      const scopes: ScopeCharge[] = [
        {
          key: `${ns}:u`,
          kind: "user",
          window: "day",
          limit: 10_000,
          resetAtMs: T0 + 1e6,
          expireAtMs: T0 + 2e6,
        },
        {
          key: `${ns}:g`,
          kind: "global",
          window: "minute",
          limit: 7_000,
          resetAtMs: T0 + 1e5,
          expireAtMs: T0 + 2e5,
        },
      ];
      const results = await Promise.all(
        Array.from({ length: 200 }, (_, i) =>
          store.reserve({ id: `${ns}-${i}`, tokens: 97, scopes, nowMs: T0, ttlMs: 60_000 }),
        ),
      );
      const admitted = results.filter((r) => r.ok).length;
      expect(admitted).toBe(Math.floor(7_000 / 97));
      const [u, g] = await store.read([`${ns}:u`, `${ns}:g`], T0);
      expect(u).toEqual({ used: 0, reserved: admitted * 97 });
      expect(g).toEqual({ used: 0, reserved: admitted * 97 });
    });

    it("concurrent reservations give exactly the results of the same calls made one by one", async () => {
      // Why: a store may share round trips between concurrent callers (the Redis store batches
      // them, several batches on the wire). Whatever it does, the outcome of N reservations issued
      // together must equal the outcome of the same N calls made in that order, one by one: here
      // against a memory store driven sequentially. Tight limits (refusals), ids repeated inside a
      // round and across rounds (duplicates, re-reserve after settle), partial settles and expiry.
      const store = await open();
      const reference = createMemoryStore();
      const ns = `d-${randomUUID()}`;
      let seed = 0x2f6e2b1;
      const rand = (n: number) => {
        seed = (Math.imul(seed, 1_103_515_245) + 12_345) >>> 0;
        return (seed >>> 8) % n;
      };
      const names = ["u1", "u2", "f", "g"];
      const limits = [3_000, 4_000, 6_000, 5_000];
      const charge = (i: number): ScopeCharge => ({
        key: `${ns}:${names[i]}`,
        kind: "user",
        window: "day",
        limit: limits[i] as number,
        resetAtMs: T0 + 1e7,
        expireAtMs: T0 + 2e7,
      });
      const reserved = new Map<string, { tokens: number; scopes: ScopeCharge[] }>();
      for (let round = 0; round < 12; round++) {
        const nowMs = T0 + round * 20_000;
        const reqs = Array.from({ length: 60 }, () => {
          const first = rand(4);
          const count = 1 + rand(3);
          const scopes = Array.from({ length: Math.min(count, 4 - first) }, (_, k) => charge(first + k));
          return { id: `${ns}-${rand(90)}`, tokens: rand(400), scopes, nowMs, ttlMs: 30_000 };
        });
        const together = await Promise.all(reqs.map((r) => store.reserve(r)));
        for (const [i, r] of reqs.entries()) {
          const expected = await reference.reserve(r);
          expect(together[i], `round ${round}, call ${i}`).toEqual(expected);
          if (expected.ok && !expected.duplicate)
            reserved.set(r.id, { tokens: r.tokens, scopes: [...r.scopes] });
        }
        for (const [id, held] of [...reserved].filter(() => rand(3) === 0)) {
          const settle = {
            id,
            actualTokens: rand(held.tokens + 1),
            reservedTokens: held.tokens,
            scopes: held.scopes,
            nowMs,
          };
          expect(await store.settle(settle), `round ${round}, settle ${id}`).toBe(
            await reference.settle(settle),
          );
          reserved.delete(id);
        }
        const keys = names.map((n) => `${ns}:${n}`);
        expect(await store.read(keys, nowMs), `round ${round}, read`).toEqual(
          await reference.read(keys, nowMs),
        );
      }
      await reference.close();
    });

    it("refuses malformed amounts and changes nothing", async () => {
      const store = await open();
      const ns = `m-${randomUUID()}`;
      const scopes: ScopeCharge[] = [
        {
          key: `${ns}:u`,
          kind: "user",
          window: "day",
          limit: 100,
          resetAtMs: T0 + 1e6,
          expireAtMs: T0 + 2e6,
        },
      ];
      for (const tokens of [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
        await expect(
          store.reserve({ id: `${ns}-x`, tokens, scopes, nowMs: T0, ttlMs: 1000 }),
        ).rejects.toThrow();
      }
      await expect(
        store.settle({ id: `${ns}-x`, actualTokens: -5, reservedTokens: 0, scopes, nowMs: T0 }),
      ).rejects.toThrow();
      await expect(
        store.settle({ id: `${ns}-x`, actualTokens: 5, reservedTokens: 0, scopes, nowMs: T0, abandon: true }),
      ).rejects.toThrow(/abandoned/);
      await expect(store.reserve({ id: "a\nb", tokens: 1, scopes, nowMs: T0, ttlMs: 1000 })).rejects.toThrow(
        /line breaks/,
      );
      await expect(
        store.reserve({ id: "a\uD800b", tokens: 1, scopes, nowMs: T0, ttlMs: 1000 }),
      ).rejects.toThrow(/unpaired surrogate/);
      const badKey = [{ ...(scopes[0] as ScopeCharge), key: `${ns}:u\nx` }];
      await expect(
        store.reserve({ id: `${ns}-y`, tokens: 1, scopes: badKey, nowMs: T0, ttlMs: 1000 }),
      ).rejects.toThrow(/line break/);
      expect(await store.read([`${ns}:u`], T0)).toEqual([{ used: 0, reserved: 0 }]);
    });

    it("adds spend with the settlement, exactly once, and not for a release", async () => {
      const store = await open();
      const ns = `s-${randomUUID()}`;
      const scopes: ScopeCharge[] = [
        {
          key: `${ns}:u`,
          kind: "user",
          window: "day",
          limit: 10_000,
          resetAtMs: T0 + 1e6,
          expireAtMs: T0 + 2e6,
        },
      ];
      const counters = [
        { key: `${ns}:spend:f`, expireAtMs: T0 + 3e6 },
        { key: `${ns}:spend:g`, expireAtMs: T0 + 3e6 },
      ];
      const spend = { costNanoUsd: 1_234_567, inputTokens: 100, outputTokens: 20, counters };
      await store.reserve({ id: `${ns}-a`, tokens: 200, scopes, nowMs: T0, ttlMs: 60_000 });
      expect(
        await store.settle({
          id: `${ns}-a`,
          actualTokens: 120,
          reservedTokens: 200,
          scopes,
          nowMs: T0,
          spend,
        }),
      ).toBe("settled");
      expect(
        await store.settle({
          id: `${ns}-a`,
          actualTokens: 120,
          reservedTokens: 200,
          scopes,
          nowMs: T0,
          spend,
        }),
      ).toBe("duplicate");
      // A settlement for a reservation the store never saw (it expired, or the store was down) still counts.
      expect(
        await store.settle({
          id: `${ns}-b`,
          actualTokens: 120,
          reservedTokens: 200,
          scopes,
          nowMs: T0,
          spend,
        }),
      ).toBe("expired");
      // A release (no usage) adds no spend.
      await store.reserve({ id: `${ns}-c`, tokens: 200, scopes, nowMs: T0, ttlMs: 60_000 });
      await store.settle({ id: `${ns}-c`, actualTokens: 0, reservedTokens: 200, scopes, nowMs: T0, spend });
      const totals = { costNanoUsd: 2_469_134, inputTokens: 200, outputTokens: 40, requests: 2 };
      expect(await store.readSpend([`${ns}:spend:f`, `${ns}:spend:g`, `${ns}:spend:none`])).toEqual([
        totals,
        totals,
        { costNanoUsd: 0, inputTokens: 0, outputTokens: 0, requests: 0 },
      ]);
    });

    it("claimOnce with an owner: the winner asking again still wins (a lost reply is recovered), others never", async () => {
      const store = await open();
      const key = `claim-owner-${randomUUID()}`;
      const until = Date.now() + 60_000;
      expect(await store.claimOnce(key, until, Date.now(), "process-a")).toBe(true);
      expect(await store.claimOnce(key, until, Date.now(), "process-a")).toBe(true);
      expect(await store.claimOnce(key, until, Date.now(), "process-b")).toBe(false);
      expect(await store.claimOnce(key, until, Date.now())).toBe(false);
      expect(await store.claimOnce(key, until, Date.now(), "")).toBe(false);
      // Without an owner, a claim is won once only.
      const plain = `${key}:plain`;
      expect(await store.claimOnce(plain, until, Date.now())).toBe(true);
      expect(await store.claimOnce(plain, until, Date.now())).toBe(false);
      expect(await store.claimOnce(plain, until, Date.now(), "")).toBe(false);
    });

    it("claimOnce: one winner per key among concurrent callers, again after the claim expires", async () => {
      const store = await open();
      const key = `alert:${randomUUID()}`;
      const results = await Promise.all(
        Array.from({ length: 20 }, () => store.claimOnce(key, Date.now() + 200, Date.now())),
      );
      expect(results.filter(Boolean)).toHaveLength(1);
      expect(await store.claimOnce(`${key}:other`, Date.now() + 200, Date.now())).toBe(true);
      await new Promise((r) => setTimeout(r, 260));
      expect(await store.claimOnce(key, Date.now() + 200, Date.now())).toBe(true);
    });

    it("keeps run-time feature switches", async () => {
      const store = await open();
      const f = `feat-${randomUUID()}`;
      await store.setSwitch(f, false);
      expect((await store.getSwitches())[f]).toBe(false);
      await store.setSwitch(f, true);
      expect((await store.getSwitches())[f]).toBe(true);
      await store.setSwitch(f, undefined);
      expect((await store.getSwitches())[f]).toBeUndefined();
      // A switch with an end lapses by itself (the hourly-cost breaker).
      await store.setSwitch(f, false, T0 + 1000);
      expect((await store.getSwitches(T0 + 999))[f]).toBe(false);
      expect((await store.getSwitches(T0 + 1000))[f]).toBeUndefined();
    });

    it("a breaker's trip never shortens an off switch already in force", async () => {
      const store = await open();
      const trip = (f: string, until: number) => store.setSwitch(f, false, until, { keepLongerOff: true });
      const [byHand, later, on, none] = ["hand", "later", "on", "none"].map(
        (n) => `feat-${n}-${randomUUID()}`,
      );
      await store.setSwitch(byHand as string, false); // off by hand, no end
      await trip(byHand as string, T0 + 1000);
      expect((await store.getSwitches(T0 + 5000))[byHand as string]).toBe(false);
      await store.setSwitch(later as string, false, T0 + 9000);
      await trip(later as string, T0 + 1000);
      expect((await store.getSwitches(T0 + 5000))[later as string]).toBe(false);
      expect((await store.getSwitches(T0 + 9000))[later as string]).toBeUndefined();
      // On by hand, or not set: the breaker switches it off until its end, then it lapses.
      await store.setSwitch(on as string, true);
      await trip(on as string, T0 + 1000);
      await trip(none as string, T0 + 1000);
      for (const f of [on, none] as string[]) {
        expect((await store.getSwitches(T0 + 999))[f]).toBe(false);
        expect((await store.getSwitches(T0 + 1000))[f]).toBeUndefined();
      }
    });

    it("keeps run-time user tiers, with a revision that changes on every write", async () => {
      const store = await open();
      expect(await store.readUserTiers()).toEqual({ revision: "", entries: {} });
      expect(await store.readUserTiers("")).toEqual({ revision: "" });
      await store.setUserTier("alice", "pro");
      await store.setUserTier("backend/u-1", "enterprise");
      const r1 = await store.readUserTiers("");
      expect(r1.revision).not.toBe("");
      expect({ ...r1.entries }).toEqual({ alice: "pro", "backend/u-1": "enterprise" });
      // Unchanged since the revision the caller holds: no entries sent.
      expect(await store.readUserTiers(r1.revision)).toEqual({ revision: r1.revision });
      await store.setUserTier("alice", undefined);
      const r2 = await store.readUserTiers(r1.revision);
      expect(r2.revision).not.toBe(r1.revision);
      expect({ ...r2.entries }).toEqual({ "backend/u-1": "enterprise" });
      // Bad input is refused and changes nothing (not even the revision).
      for (const [user, tier] of [
        ["", "pro"],
        ["#rev", "pro"],
        ["a b", "pro"],
        ["a\nb", "pro"],
        ["carol", ""],
      ] as const) {
        await expect(store.setUserTier(user, tier)).rejects.toThrow(TypeError);
      }
      expect(await store.readUserTiers(r2.revision)).toEqual({ revision: r2.revision });
    });

    it("keeps run-time API keys by hash: add once, list, delete once", async () => {
      const store = await open();
      const hash = (c: string) => `sha256:${c.repeat(64)}`;
      const alice: StoredApiKey = {
        hash: hash("a"),
        user: "alice",
        tier: "pro",
        features: ["chat", "summarize"],
        defaultFeature: "chat",
        trusted: false,
        createdAtMs: T0,
      };
      const backend: StoredApiKey = { hash: hash("b"), user: "backend", trusted: true, createdAtMs: T0 + 1 };
      expect(await store.readApiKeys()).toEqual({ revision: "", entries: [] });
      expect(await store.addApiKey(alice)).toBe(true);
      expect(await store.addApiKey(backend)).toBe(true);
      // A second entry with the same hash is refused and the first is kept as it was.
      expect(await store.addApiKey({ ...alice, user: "mallory", tier: "enterprise" })).toBe(false);
      const r1 = await store.readApiKeys();
      const byHash = (ks: StoredApiKey[] = []) => [...ks].sort((x, y) => x.hash.localeCompare(y.hash));
      expect(byHash(r1.entries)).toEqual([alice, backend]);
      expect(await store.readApiKeys(r1.revision)).toEqual({ revision: r1.revision });
      // What a caller does with the entries it was given does not change the store.
      r1.entries?.[0]?.features?.push("code_review");
      expect(byHash((await store.readApiKeys()).entries)).toEqual([alice, backend]);
      for (const bad of [
        { ...alice, hash: "sha256:abc" },
        { ...alice, hash: hash("c"), user: "" },
        { ...alice, hash: hash("c"), trusted: "yes" as unknown as boolean },
        { ...alice, hash: hash("c"), createdAtMs: -1 },
      ]) {
        await expect(store.addApiKey(bad)).rejects.toThrow(TypeError);
      }
      expect(await store.deleteApiKey(alice.hash)).toBe(true);
      expect(await store.deleteApiKey(alice.hash)).toBe(false);
      const r2 = await store.readApiKeys(r1.revision);
      expect(r2.revision).not.toBe(r1.revision);
      expect(r2.entries).toEqual([backend]);
    });
  });
}
