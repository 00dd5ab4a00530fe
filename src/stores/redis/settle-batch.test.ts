import { randomUUID } from "node:crypto";
import { describe, expect, inject, it } from "vitest";
import { createRandom } from "../../tokenizers/test-samples.js";
import { isStoreUnavailable, type ScopeCharge, type SettleRequest, type SettleStatus } from "../types.js";
import { createRedisStore, type RedisStore } from "./redis-store.js";

/**
 * Settlements sent together share one script call (scripts/settle-many.ts). These tests hold it to
 * the lone script's results: the same settlements, one store settling them together (batched) and
 * another one by one (each awaited: the lone script), must answer the same statuses and leave the
 * same keys, values and TTLs.
 */

const T0 = (Math.floor(Date.now() / 3_600_000) + 1) * 3_600_000;
const scope = (key: string): ScopeCharge => ({
  key,
  kind: "user",
  window: "day",
  limit: Number.MAX_SAFE_INTEGER,
  resetAtMs: T0 + 1e7,
  expireAtMs: T0 + 2e7,
});

interface Scenario {
  /** Reservations made before the settlements: id, tokens, scope keys. */
  reserves: Array<{ id: string; tokens: number; scopes: ScopeCharge[] }>;
  settles: SettleRequest[];
}

function scenario(seed: number): Scenario {
  const r = createRandom(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)] as T;
  const users = ["u:a", "u:b", "u:c", "u:d"];
  const spendKeys = ["spend:f:h", "spend:g:h", "spend:u:a", "spend:u:b"];
  const reserves: Scenario["reserves"] = [];
  const settles: SettleRequest[] = [];
  for (let i = 0; i < 60; i++) {
    const id = `r${i}`;
    const scopes = [scope(pick(users)), scope("feature"), scope("global")];
    const tokens = 1 + Math.floor(r() * 500);
    const kind = r();
    // ~15 % never reserved (settled "expired"), the rest reserved first.
    if (kind >= 0.15) reserves.push({ id, tokens, scopes });
    // ~10 % describe the reservation differently (its stored record is released instead).
    const describedTokens = r() < 0.1 ? tokens + 7 : tokens;
    const describedScopes = r() < 0.05 ? [scope("u:other"), scope("feature")] : scopes;
    const abandon = r() < 0.1;
    const actual = abandon ? 0 : r() < 0.15 ? 0 : Math.floor(r() * (describedTokens + 1));
    const spendCounters = [pick(spendKeys), "spend:global:h"].map((key) => ({ key, expireAtMs: T0 + 3e7 }));
    const req: SettleRequest = {
      id,
      actualTokens: actual,
      reservedTokens: describedTokens,
      scopes: describedScopes,
      nowMs: T0 + Math.floor(r() * 50),
      ...(abandon
        ? { abandon: true }
        : actual > 0 || r() < 0.5
          ? {
              spend: {
                costNanoUsd: Math.floor(r() * 1e6),
                inputTokens: Math.floor(actual / 2),
                outputTokens: actual - Math.floor(actual / 2),
                counters: spendCounters,
              },
            }
          : {}),
    };
    settles.push(req);
    // ~20 % sent twice (a resend): right after, or somewhere else in the run.
    const twice = r();
    if (twice < 0.1) settles.push(req);
    else if (twice < 0.2) settles.splice(Math.floor(r() * settles.length), 0, req);
  }
  return { reserves, settles };
}

/** Every key under the prefix: its value (hash fields equal to "0" left out) and whether it has a TTL. */
async function dump(store: RedisStore, prefix: string): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  let cursor = "0";
  do {
    const [next, keys] = await store.redis.scan(cursor, "MATCH", `${prefix}*`, "COUNT", "1000");
    cursor = next;
    for (const k of keys) {
      const name = k.slice(prefix.length);
      const type = await store.redis.type(k);
      const ttl = await store.redis.pttl(k);
      let value: unknown;
      if (type === "hash") {
        const h = await store.redis.hgetall(k);
        value = Object.fromEntries(Object.entries(h).filter(([, v]) => v !== "0"));
        if (Object.keys(value as object).length === 0) continue;
      } else if (type === "zset") value = await store.redis.zrange(k, "0", "-1", "WITHSCORES");
      else value = await store.redis.get(k);
      out[name] = { type, value, hasTtl: ttl > 0 };
    }
  } while (cursor !== "0");
  return out;
}

async function run(
  s: Scenario,
  together: boolean,
  between?: (store: RedisStore, prefix: string) => Promise<unknown>,
): Promise<{ statuses: SettleStatus[]; keys: Record<string, unknown> }> {
  const prefix = `${inject("redisPrefix")}${randomUUID()}:`;
  const store = createRedisStore({ url: inject("redisUrl"), keyPrefix: prefix });
  try {
    for (const r of s.reserves) {
      const res = await store.reserve({
        id: r.id,
        tokens: r.tokens,
        scopes: r.scopes,
        nowMs: T0,
        ttlMs: 600_000,
      });
      expect(res.ok).toBe(true);
    }
    await between?.(store, prefix);
    let statuses: SettleStatus[];
    if (together) statuses = await Promise.all(s.settles.map((q) => store.settle(q)));
    else {
      statuses = [];
      for (const q of s.settles) statuses.push(await store.settle(q));
    }
    return { statuses, keys: await dump(store, prefix) };
  } finally {
    await store.close();
  }
}

describe("redis store: settlements sent together", () => {
  for (const seed of [1, 2, 3, 4, 5, 6]) {
    it(`answer and write what the same settlements one by one do (seed ${seed})`, async () => {
      const s = scenario(seed);
      const one = await run(s, false);
      const batched = await run(s, true);
      expect(batched.statuses).toEqual(one.statuses);
      expect(batched.keys).toEqual(one.keys);
      // The scenario reaches every path: live, expired and duplicate settlements, and counters.
      expect(new Set(one.statuses)).toEqual(new Set(["settled", "expired", "duplicate"]));
      for (const [k, v] of Object.entries(one.keys))
        expect({ k, ttl: (v as { hasTtl: boolean }).hasTtl }).toEqual({ k, ttl: true });
    });
  }

  it("cut a batch where a sum would no longer be exact on doubles", async () => {
    // Each pair of these sums to 2^53 + 3, which a double cannot hold: sent in one script call, the
    // counter would be off by one.
    const big = [2 ** 52 + 1, 2 ** 52 + 2, 2 ** 52 + 1, 2 ** 52 + 2];
    const s: Scenario = {
      reserves: [],
      settles: big.map((n, i) => ({
        id: `big${i}`,
        actualTokens: n,
        reservedTokens: 0,
        scopes: [scope("u:big")],
        nowMs: T0,
      })),
    };
    const batched = await run(s, true);
    expect(batched.statuses).toEqual(["expired", "expired", "expired", "expired"]);
    const exact = big.reduce((a, b) => a + BigInt(b), 0n).toString();
    expect(batched.keys["c:u:big"]).toMatchObject({ value: { t: exact, u: exact } });
  });

  it("a settlement releasing a record it does not describe sees the counters written earlier in its batch", async () => {
    // "m" was reserved on u:z, whose counter then expired (deleted here). In the batch, "e" (never
    // reserved) charges u:z first, creating the counter again; then "m", describing other tokens,
    // releases its record's own counters, which only touches counters that exist: u:z does by then.
    const s: Scenario = {
      reserves: [{ id: "m", tokens: 10, scopes: [scope("u:z")] }],
      settles: [
        { id: "e", actualTokens: 5, reservedTokens: 5, scopes: [scope("u:z")], nowMs: T0 },
        { id: "m", actualTokens: 3, reservedTokens: 99, scopes: [scope("u:y")], nowMs: T0 },
        // Four queued together go out as two batches of two (two slots): "e" and "m" share one.
        { id: "f1", actualTokens: 1, reservedTokens: 1, scopes: [scope("u:f")], nowMs: T0 },
        { id: "f2", actualTokens: 1, reservedTokens: 1, scopes: [scope("u:f")], nowMs: T0 },
      ],
    };
    const drop = (store: RedisStore, prefix: string) => store.redis.del(`${prefix}c:u:z`);
    const one = await run(s, false, drop);
    const batched = await run(s, true, drop);
    expect(one.statuses).toEqual(["expired", "settled", "expired", "expired"]);
    expect(batched.statuses).toEqual(one.statuses);
    expect(batched.keys).toEqual(one.keys);
    expect(one.keys["c:u:z"]).toMatchObject({ value: { t: "-5", u: "5" } });
    // The counter the batch created again, like every key, has its TTL (lone and batched alike).
    for (const keys of [one.keys, batched.keys])
      for (const [k, v] of Object.entries(keys))
        expect({ k, ttl: (v as { hasTtl: boolean }).hasTtl }).toEqual({ k, ttl: true });
  });

  it("a counter and a spend counter that expired before the settlement come back with their TTL", async () => {
    const spend = (id: string) => ({
      costNanoUsd: 5,
      inputTokens: 2,
      outputTokens: 1,
      counters: [{ key: `spend:${id}`, expireAtMs: T0 + 3e7 }],
    });
    const s: Scenario = {
      reserves: ["a", "b", "c", "d"].map((id) => ({ id, tokens: 10, scopes: [scope(`u:${id}`)] })),
      settles: ["a", "b", "c", "d"].map((id) => ({
        id,
        actualTokens: 3,
        reservedTokens: 10,
        scopes: [scope(`u:${id}`)],
        nowMs: T0,
        spend: spend(id),
      })),
    };
    // The counters go (their window ended) while the reservations are still live.
    const drop = (store: RedisStore, prefix: string) =>
      Promise.all(["a", "b", "c", "d"].map((id) => store.redis.del(`${prefix}c:u:${id}`)));
    for (const together of [false, true]) {
      const r = await run(s, together, drop);
      expect(r.statuses).toEqual(["settled", "settled", "settled", "settled"]);
      for (const id of ["a", "b", "c", "d"]) {
        expect(r.keys[`c:u:${id}`]).toEqual({ type: "hash", value: { t: "-7", u: "3" }, hasTtl: true });
        expect(r.keys[`c:spend:${id}`]).toEqual({
          type: "hash",
          value: { c: "5", i: "2", o: "1", r: "1" },
          hasTtl: true,
        });
      }
    }
  });
});

describe("redis store: a key of another type under the prefix", () => {
  const fresh = () => {
    const prefix = `${inject("redisPrefix")}${randomUUID()}:`;
    return { prefix, store: createRedisStore({ url: inject("redisUrl"), keyPrefix: prefix }) };
  };
  /** Writes a value under the prefix as another writer might (a hash field, or a string), with a TTL. */
  const plant = async (store: RedisStore, key: string, field: string | undefined, value: string) => {
    if (field === undefined) await store.redis.set(key, value, "PX", 60_000);
    else await store.redis.multi().hset(key, field, value).pexpire(key, 60_000).exec();
  };
  const settleOf = (id: string, spendKey: string): SettleRequest => ({
    id,
    actualTokens: 3,
    reservedTokens: 10,
    scopes: [scope("u:p")],
    nowMs: T0,
    spend: {
      costNanoUsd: 7,
      inputTokens: 2,
      outputTokens: 1,
      counters: [{ key: spendKey, expireAtMs: T0 + 3e7 }],
    },
  });

  it("fails only the settlement that names it, applying nothing for it; its batch's others are applied once", async () => {
    const { prefix, store } = fresh();
    try {
      const ids = ["x0", "x1", "a", "b"];
      for (const id of ids)
        expect(
          (await store.reserve({ id, tokens: 10, scopes: [scope("u:p")], nowMs: T0, ttlMs: 600_000 })).ok,
        ).toBe(true);
      await plant(store, `${prefix}c:spend:poisoned`, undefined, "a string");
      // Four queued together go out as two batches, [x0, x1] and [a, b]; b names the string key.
      const results = await Promise.allSettled(
        ids.map((id) => store.settle(settleOf(id, id === "b" ? "spend:poisoned" : "spend:ok"))),
      );
      expect(results.map((r) => r.status)).toEqual(["fulfilled", "fulfilled", "fulfilled", "rejected"]);
      const failure = (results[3] as PromiseRejectedResult).reason as Error;
      expect(isStoreUnavailable(failure)).toBe(false); // final: not queued for a retry
      expect(failure.message).toMatch(/not a counter, so nothing was applied and it is not retried/);
      // x0, x1 and a: settled once (3 used each, their 7 unused released); b: still reserved (10).
      expect(await store.redis.hgetall(`${prefix}c:u:p`)).toEqual({ t: String(3 * 3 + 10), u: "9" });
      expect(await store.redis.hgetall(`${prefix}c:spend:ok`)).toEqual({ c: "21", i: "6", o: "3", r: "3" });
      // Sent again (as a guarded store would not, but a caller might), a is a duplicate: nothing twice.
      expect(await store.settle(settleOf("a", "spend:ok"))).toBe("duplicate");
      expect(await store.redis.hget(`${prefix}c:u:p`, "u")).toBe("9");
    } finally {
      await store.close();
    }
  });

  it("a lone settlement naming a field HINCRBY refuses ('05') fails before writing anything, every time", async () => {
    const { prefix, store } = fresh();
    try {
      expect(
        (await store.reserve({ id: "z", tokens: 10, scopes: [scope("u:p")], nowMs: T0, ttlMs: 600_000 })).ok,
      ).toBe(true);
      await plant(store, `${prefix}c:u:z`, "u", "05");
      const req: SettleRequest = {
        id: "z",
        actualTokens: 3,
        reservedTokens: 10,
        scopes: [scope("u:p"), scope("u:z")],
        nowMs: T0,
      };
      for (let i = 0; i < 3; i++) await expect(store.settle(req)).rejects.toThrow(/TFCORRUPT/);
      expect(await store.redis.hgetall(`${prefix}c:u:p`)).toEqual({ t: "10" });
    } finally {
      await store.close();
    }
  });

  it("a lone settlement naming it fails before writing anything", async () => {
    const { prefix, store } = fresh();
    try {
      expect(
        (await store.reserve({ id: "l", tokens: 10, scopes: [scope("u:p")], nowMs: T0, ttlMs: 600_000 })).ok,
      ).toBe(true);
      await plant(store, `${prefix}c:spend:poisoned`, undefined, "a string");
      await expect(store.settle(settleOf("l", "spend:poisoned"))).rejects.toThrow(
        /not a counter, so nothing was applied and it is not retried/,
      );
      expect(await store.redis.hgetall(`${prefix}c:u:p`)).toEqual({ t: "10" });
      expect(await store.redis.zscore(`${prefix}exp`, "l")).not.toBeNull(); // still live, released at expiry
    } finally {
      await store.close();
    }
  });

  it("a reservation record naming it is still swept, and later reservations still work", async () => {
    const { prefix, store } = fresh();
    try {
      await store.ping();
      // A record (tokens + scope keys) whose second scope is a string key, expired already.
      await plant(store, `${prefix}c:u:q`, "t", "5");
      await plant(store, `${prefix}c:u:str`, undefined, "a string");
      await store.redis.zadd(`${prefix}exp`, T0 - 1, "old");
      await plant(store, `${prefix}c:u:zero`, "t", "05"); // a value HINCRBY refuses
      await store.redis.hset(`${prefix}rec`, "old", "5\nu:q\nu:str\nu:zero");
      const r = await store.reserve({
        id: "n",
        tokens: 1,
        scopes: [scope("u:q")],
        nowMs: T0,
        ttlMs: 600_000,
      });
      expect(r).toMatchObject({ ok: true, committed: [1] }); // the old 5 released, then 1 reserved
      expect(await store.redis.zscore(`${prefix}exp`, "old")).toBeNull();
      expect(await store.redis.hget(`${prefix}c:u:zero`, "t")).toBe("05"); // skipped, untouched
    } finally {
      await store.close();
    }
  });

  for (const bad of ["not-a-number", "05", "-0", "1.5"])
    it(`a counter with a field HINCRBY refuses (${bad}) fails only its settlement, nothing applied for it`, async () => {
      const { prefix, store } = fresh();
      try {
        const ids = ["x0", "x1", "a", "b"];
        for (const id of ids)
          expect(
            (await store.reserve({ id, tokens: 10, scopes: [scope("u:p")], nowMs: T0, ttlMs: 600_000 })).ok,
          ).toBe(true);
        await plant(store, `${prefix}c:u:bad`, "u", bad);
        const results = await Promise.allSettled(
          ids.map((id) =>
            store.settle({
              id,
              actualTokens: 3,
              reservedTokens: 10,
              scopes: id === "b" ? [scope("u:p"), scope("u:bad")] : [scope("u:p")],
              nowMs: T0,
            }),
          ),
        );
        expect(results.map((r) => r.status)).toEqual(["fulfilled", "fulfilled", "fulfilled", "rejected"]);
        expect(((results[3] as PromiseRejectedResult).reason as Error).message).toMatch(/TFCORRUPT/);
        // x0, x1, a settled once; b untouched: still live, its 10 still reserved, no marker.
        expect(await store.redis.hgetall(`${prefix}c:u:p`)).toEqual({ t: "19", u: "9" });
        expect(await store.redis.zscore(`${prefix}exp`, "b")).not.toBeNull();
        expect(await store.redis.get(`${prefix}s:b`)).toBeNull();
      } finally {
        await store.close();
      }
    });

  it("a record whose token count is not an integer is skipped by the sweep, and nothing else is released twice", async () => {
    const { prefix, store } = fresh();
    try {
      await store.ping();
      const now = T0;
      expect(
        (await store.reserve({ id: "r1", tokens: 100, scopes: [scope("u:a")], nowMs: now, ttlMs: 1000 })).ok,
      ).toBe(true);
      expect(
        (await store.reserve({ id: "r2", tokens: 200, scopes: [scope("u:b")], nowMs: now, ttlMs: 1000 })).ok,
      ).toBe(true);
      await store.redis.hset(`${prefix}rec`, "r2", "abc\nu:b");
      for (let i = 0; i < 3; i++)
        expect(
          (
            await store.reserve({
              id: `n${i}`,
              tokens: 1,
              scopes: [scope("u:c")],
              nowMs: now + 2000,
              ttlMs: 600_000,
            })
          ).ok,
        ).toBe(true);
      expect(await store.redis.hget(`${prefix}c:u:a`, "t")).toBe("0"); // r1 released once
      expect(await store.redis.zscore(`${prefix}exp`, "r2")).toBeNull(); // swept, its bad record skipped
    } finally {
      await store.close();
    }
  });

  it("a reservation naming a counter whose value HINCRBY refuses writes nothing, lone or batched", async () => {
    const { prefix, store } = fresh();
    try {
      await store.ping();
      await plant(store, `${prefix}c:u:bad`, "t", "05");
      const req = (id: string) => ({
        id,
        tokens: 100,
        scopes: [scope("u:a"), scope("u:bad")],
        nowMs: T0,
        ttlMs: 600_000,
      });
      await expect(store.reserve(req("lone"))).rejects.toThrow(/TFCORRUPT/);
      const batch = await Promise.allSettled(["b1", "b2", "b3", "b4"].map((id) => store.reserve(req(id))));
      expect(batch.map((r) => r.status)).toEqual(["rejected", "rejected", "rejected", "rejected"]);
      expect(await store.redis.exists(`${prefix}c:u:a`)).toBe(0);
      expect(await store.redis.zcard(`${prefix}exp`)).toBe(0);
      await expect(store.reserve(req("lone"))).rejects.toThrow(/TFCORRUPT/); // not a duplicate now
    } finally {
      await store.close();
    }
  });
});
