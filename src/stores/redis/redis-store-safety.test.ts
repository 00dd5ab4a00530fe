import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, inject, it, vi } from "vitest";
import { type OwnRedis, startRedisServer } from "../../../test/helpers/redis-server.js";
import type { Logger } from "../../core/logger.js";
import type { ScopeCharge } from "../types.js";
import { createRedisStore } from "./redis-store.js";

// What the Redis store must keep true whatever the other processes, the server or the clocks do:
// TTLs that never shrink below what their contents need, counters that survive a lagging clock, and
// a server that cannot run the scripts named as such (never a silent half-working store).

const prefix = () => `${inject("redisPrefix")}${randomUUID()}:`;
const DAY = 86_400_000;

/** User u's day at `now`: a budget nothing here reaches, kept `keepMs`. */
const userDay = (now: number, keepMs: number): ScopeCharge => ({
  key: "u",
  kind: "user",
  window: "day",
  limit: 1e9,
  resetAtMs: now + DAY,
  expireAtMs: now + keepMs,
});

describe("redis store: TTLs", () => {
  it("a short reservation never shortens the TTL of the expiry index a longer one needs", async () => {
    const p = prefix();
    const store = createRedisStore({ url: inject("redisUrl"), keyPrefix: p });
    try {
      const now = Date.now();
      const scopes = [userDay(now, 9 * DAY)];
      const longTtl = 3 * DAY; // a feature whose upstream timeout is 3 days
      await store.reserve({ id: "long", tokens: 100, scopes, nowMs: now, ttlMs: longTtl });
      // Lone and batched reservations both.
      await store.reserve({ id: "short", tokens: 1, scopes, nowMs: now, ttlMs: 61_000 });
      await Promise.all(
        ["b1", "b2", "b3"].map((id) => store.reserve({ id, tokens: 1, scopes, nowMs: now, ttlMs: 61_000 })),
      );
      for (const k of ["exp", "rec"])
        expect(await store.redis.pttl(`${p}${k}`), k).toBeGreaterThan(longTtl + DAY - 60_000);
    } finally {
      await store.close();
    }
  });

  it("a key without a TTL gets one from the next reservation", async () => {
    const p = prefix();
    const store = createRedisStore({ url: inject("redisUrl"), keyPrefix: p });
    try {
      const now = Date.now();
      const scopes = [userDay(now, 2 * DAY)];
      await store.reserve({ id: "a", tokens: 1, scopes, nowMs: now, ttlMs: 60_000 });
      await store.redis.persist(`${p}exp`);
      await store.redis.persist(`${p}rec`);
      await store.reserve({ id: "b", tokens: 1, scopes, nowMs: now, ttlMs: 60_000 });
      for (const k of ["exp", "rec"]) expect(await store.redis.pttl(`${p}${k}`), k).toBeGreaterThan(DAY);
    } finally {
      await store.close();
    }
  });

  it("reading the switches pushes their TTL back out, so a switch set by hand never lapses by itself", async () => {
    const p = prefix();
    const writer = createRedisStore({ url: inject("redisUrl"), keyPrefix: p });
    const reader = createRedisStore({ url: inject("redisUrl"), keyPrefix: p });
    try {
      await writer.setSwitch("chat", false);
      await writer.redis.pexpire(`${p}switches`, 5_000); // as if 400 days had passed since the write
      expect(await reader.getSwitches()).toEqual({ chat: false });
      expect(await reader.redis.pttl(`${p}switches`)).toBeGreaterThan(399 * DAY);
    } finally {
      await writer.close();
      await reader.close();
    }
  });
});

describe("redis store: clocks", () => {
  it("a process whose clock lags the server's still keeps its minute counters (TTLs are relative)", async () => {
    const p = prefix();
    const store = createRedisStore({ url: inject("redisUrl"), keyPrefix: p });
    try {
      // This process believes it is 150 s earlier than the server does: the end of its minute
      // window plus a minute of retention is already past by the server's clock.
      const now = Date.now() - 150_000;
      const minuteEnd = Math.ceil(now / 60_000) * 60_000;
      const scopes: ScopeCharge[] = [
        {
          key: "g:m",
          kind: "global",
          window: "minute",
          limit: 500,
          resetAtMs: minuteEnd,
          expireAtMs: minuteEnd + 60_000,
        },
      ];
      let admitted = 0;
      for (let i = 0; i < 10; i++) {
        const r = await store.reserve({ id: `r${i}`, tokens: 110, scopes, nowMs: now, ttlMs: 60_000 });
        if (r.ok) admitted++;
      }
      expect(admitted).toBe(4); // 4 × 110 ≤ 500 < 5 × 110
      const ttl = await store.redis.pttl(`${p}c:g:m`);
      expect(ttl).toBeGreaterThan(0);
      expect(ttl).toBeLessThanOrEqual(minuteEnd + 60_000 - now);
    } finally {
      await store.close();
    }
  });
});

describe("redis store: a server that cannot run the scripts", () => {
  let own: OwnRedis;
  beforeAll(async () => {
    own = await startRedisServer(["--rename-command", "ZMSCORE", ""]);
  });
  afterAll(async () => {
    await own?.stop();
  });

  it("is named as such for every reservation, lone or batched, and for readiness", async () => {
    const store = createRedisStore({ url: own.url, keyPrefix: prefix() });
    try {
      const now = Date.now();
      const scopes = [userDay(now, 2 * DAY)];
      const one = store.reserve({ id: "lone", tokens: 1, scopes, nowMs: now, ttlMs: 60_000 });
      await expect(one).rejects.toThrow(/ZMSCORE/);
      const many = await Promise.allSettled(
        ["a", "b", "c"].map((id) => store.reserve({ id, tokens: 1, scopes, nowMs: now, ttlMs: 60_000 })),
      );
      for (const r of many) {
        expect(r.status).toBe("rejected");
        expect(String((r as PromiseRejectedResult).reason)).toMatch(/StoreUnavailableError.*ZMSCORE/);
      }
      await expect(store.read([], now)).rejects.toThrow(/ZMSCORE/);
      expect(await store.ping()).toBe(false);
      // Nothing was written.
      expect(await store.redis.dbsize()).toBe(0);
    } finally {
      await store.close();
    }
  });
});

describe("redis store: a server that restarted", () => {
  it("says so at error level when it reconnects: what the server did not persist is lost", async () => {
    const own = await startRedisServer();
    const errors: string[] = [];
    const logger = {
      info() {},
      debug() {},
      warn() {},
      error: (_o: unknown, m: string) => errors.push(m),
      child: () => logger,
    } as unknown as Logger;
    const store = createRedisStore({ url: own.url, keyPrefix: prefix(), logger, commandTimeoutMs: 300 });
    try {
      expect(await store.ping()).toBe(true);
      expect(errors).toEqual([]);
      await own.kill();
      await own.restart();
      const until = Date.now() + 10_000;
      while (!errors.some((m) => /restarted or replaced/.test(m)) && Date.now() < until)
        await new Promise((r) => setTimeout(r, 50));
      expect(errors.filter((m) => /restarted or replaced/.test(m))).toHaveLength(1);
    } finally {
      await store.close();
      await own.stop();
    }
  });
});

describe("redis store: a clock far from the server's", () => {
  it("refuses every command while the clock is more than 60 s off, says why, and resumes when it agrees", async () => {
    const p = prefix();
    const lines: Array<[string, string]> = [];
    const logger = {
      info: (_o: unknown, m: string) => lines.push(["info", m]),
      debug() {},
      warn: (_o: unknown, m: string) => lines.push(["warn", m]),
      error: (_o: unknown, m: string) => lines.push(["error", m]),
      child: () => logger,
    } as unknown as Logger;
    const realNow = Date.now.bind(Date);
    let offsetMs = 3 * 60_000; // this process's clock 3 minutes ahead of Redis's
    const spy = vi.spyOn(Date, "now").mockImplementation(() => realNow() + offsetMs);
    const store = createRedisStore({ url: inject("redisUrl"), keyPrefix: p, logger, clockCheckMs: 50 });
    try {
      const now = realNow();
      const scopes = [userDay(now, 2 * DAY)];
      const lone = store.reserve({ id: "lone", tokens: 1, scopes, nowMs: now, ttlMs: 60_000 });
      await expect(lone).rejects.toThrow(/clock is 18\d s ahead of the Redis server's/);
      const many = await Promise.allSettled(
        ["a", "b"].map((id) => store.reserve({ id, tokens: 1, scopes, nowMs: now, ttlMs: 60_000 })),
      );
      for (const r of many)
        expect(String((r as PromiseRejectedResult).reason)).toMatch(/StoreUnavailableError.*clock/);
      await expect(store.read(["u"], now)).rejects.toThrow(/clock/);
      expect(await store.ping()).toBe(false);
      expect(store.clockSkewMs).toBeGreaterThan(170_000);
      expect(lines.filter(([l, m]) => l === "error" && /clock/.test(m))).toHaveLength(1);
      // Nothing was written.
      expect(await store.redis.exists(`${p}exp`, `${p}rec`, `${p}c:u`)).toBe(0);

      // NTP fixes the clock: the periodic check sees it and the store works again.
      offsetMs = 0;
      const until = realNow() + 5_000;
      while (!(await store.ping()) && realNow() < until) await new Promise((r) => setTimeout(r, 20));
      expect(await store.ping()).toBe(true);
      expect(lines.some(([l, m]) => l === "info" && /agrees with the Redis server's again/.test(m))).toBe(
        true,
      );
      const ok = await store.reserve({ id: "after", tokens: 1, scopes, nowMs: now, ttlMs: 60_000 });
      expect(ok.ok).toBe(true);

      // A smaller skew (10 s) is only warned about, once, and the store keeps working.
      offsetMs = 10_000;
      const until2 = realNow() + 5_000;
      while (!lines.some(([l]) => l === "warn") && realNow() < until2)
        await new Promise((r) => setTimeout(r, 20));
      await new Promise((r) => setTimeout(r, 200)); // several more checks
      expect(lines.filter(([l, m]) => l === "warn" && /clock differs/.test(m))).toHaveLength(1);
      expect((await store.reserve({ id: "skewed", tokens: 1, scopes, nowMs: now, ttlMs: 60_000 })).ok).toBe(
        true,
      );
    } finally {
      spy.mockRestore();
      await store.close();
      await store.redis.del(`${p}exp`, `${p}rec`, `${p}c:u`).catch(() => {});
    }
  });
});

describe("redis store: a server that cannot be reached", () => {
  it("names the connection's own error (ECONNREFUSED), not only ioredis's 'Connection is closed'", async () => {
    const { createServer } = await import("node:net");
    // A port nothing listens on: bound, then closed.
    const srv = createServer();
    await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
    const port = (srv.address() as { port: number }).port;
    await new Promise<void>((r) => srv.close(() => r()));
    const store = createRedisStore({
      url: `redis://127.0.0.1:${port}`,
      keyPrefix: prefix(),
      connectTimeoutMs: 500,
    });
    try {
      const err = await store
        .reserve({ id: "r", tokens: 1, scopes: [userDay(Date.now(), DAY)], nowMs: Date.now(), ttlMs: 1000 })
        .catch((e: unknown) => e as Error);
      expect((err as Error).message).toMatch(/redis store unavailable: .*ECONNREFUSED/);
    } finally {
      await store.close();
    }
  });
});
