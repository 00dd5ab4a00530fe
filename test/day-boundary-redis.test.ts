/**
 * Issue #3 item 8 on the real Redis store, through the engine: every instant is in exactly one local
 * day, and a user's daily budget resets at the first instant of the next local date — in zones with
 * half- and quarter-hour offsets, on 23 h and 25 h DST days, on half-hour DST days, and where midnight
 * does not exist (the clock jumps from 24:00 to 01:00).
 *
 * The days are found from today's date (the next DST days of each zone), never hard-coded: Redis
 * expires the counters by its own clock, so a date in the past would delete them on write. Where the
 * days start is computed here with Intl and a search of its own, independently of src/core/windows.ts.
 */
import { Redis } from "ioredis";
import { afterAll, describe, expect, inject, it } from "vitest";
import type { Admission } from "../src/core/engine.js";
import { isTokenBudgetError } from "../src/core/errors.js";
import { silentLogger } from "../src/core/logger.js";
import { createRedisStore } from "../src/stores/redis/redis-store.js";
import { createTokenfuse } from "../src/tokenfuse.js";
import { deleteKeys, testKeyPrefix } from "./helpers/redis-keys.js";

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

const formatters = new Map<string, Intl.DateTimeFormat>();
/** The local date (YYYY-MM-DD) of instant `ms` in `tz`. */
function localDate(ms: number, tz: string): string {
  let f = formatters.get(tz);
  if (!f) {
    f = new Intl.DateTimeFormat("en-US", { timeZone: tz, year: "numeric", month: "2-digit", day: "2-digit" });
    formatters.set(tz, f);
  }
  const p = Object.fromEntries(f.formatToParts(ms).map((x) => [x.type, x.value]));
  return `${p.year}-${p.month}-${p.day}`;
}

/** The first instant after `fromMs` whose local date differs from that of `fromMs`: 15-min steps, then to the ms. */
function nextDateStart(fromMs: number, tz: string): number {
  const date = localDate(fromMs, tz);
  let lo = fromMs;
  let hi = fromMs + 15 * 60_000;
  while (localDate(hi, tz) === date) {
    lo = hi;
    hi += 15 * 60_000;
  }
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (localDate(mid, tz) === date) lo = mid;
    else hi = mid;
  }
  return hi;
}

/** The next local day of `tz` (from today) whose length `fits`: its first instant and its length. */
function nextDay(tz: string, fits: (lengthMs: number) => boolean): { startMs: number; lengthMs: number } {
  let start = nextDateStart(Date.now(), tz);
  for (let i = 0; i < 400; i++) {
    const end = nextDateStart(start, tz);
    if (fits(end - start)) return { startMs: start, lengthMs: end - start };
    start = end;
  }
  throw new Error(`no such day in ${tz} within 400 days`);
}

const cases: Array<[string, string, (lengthMs: number) => boolean]> = [
  ["Asia/Kolkata", "+05:30, no DST", (l) => l === DAY],
  ["Asia/Kathmandu", "+05:45, no DST", (l) => l === DAY],
  ["America/New_York", "a 23 h DST day", (l) => l === DAY - HOUR],
  ["America/New_York", "a 25 h DST day", (l) => l === DAY + HOUR],
  ["America/Santiago", "the DST day that starts at 01:00 (no midnight)", (l) => l < DAY],
  ["America/Santiago", "the day that ends with a repeated hour", (l) => l > DAY],
  ["Pacific/Chatham", "+12:45/+13:45, a 23 h day", (l) => l < DAY],
  ["Pacific/Chatham", "+12:45/+13:45, a 25 h day", (l) => l > DAY],
  ["Australia/Lord_Howe", "a 23.5 h day (half-hour DST)", (l) => l === DAY - HOUR / 2],
  ["Australia/Lord_Howe", "a 24.5 h day (half-hour DST)", (l) => l === DAY + HOUR / 2],
  ["America/St_Johns", "-03:30/-02:30, a 23 h day", (l) => l < DAY],
];

const redis = new Redis(inject("redisUrl"));
const prefixes: string[] = [];
afterAll(async () => {
  // The counters of a day months ahead live until 8 days after it: do not leave them to the TTL.
  for (const p of prefixes) await deleteKeys(redis, p);
  redis.disconnect();
});

describe.each(cases)("day boundaries in %s (%s)", (tz, _what, fits) => {
  it("each instant is charged to its own local day; the budget resets at the next date's first instant, not 24 h later", async () => {
    const { startMs: S, lengthMs: L } = nextDay(tz, fits);
    const E = S + L;
    const [prev, day, next] = [localDate(S - 1, tz), localDate(S, tz), localDate(E, tz)];
    expect(new Set([prev, day, next]).size).toBe(3);
    expect(localDate(E - 1, tz)).toBe(day);

    const prefix = testKeyPrefix("day");
    prefixes.push(prefix);
    let now = S - 1;
    const tf = createTokenfuse({
      config: {
        features: { chat: { model: "gpt-4o", max_input: 500, max_output: 100, on_exceed: "trim" } },
        tiers: { free: { daily_tokens: 400, time_zone: tz } },
        default_tier: "free",
      },
      store: createRedisStore({ url: inject("redisUrl"), keyPrefix: prefix }),
      logger: silentLogger,
      clock: { nowMs: () => now },
    });
    // A small request reserves ~108 tokens (three fit in 400), a big one ~300.
    const admit = (size: "small" | "big") =>
      tf.admit({
        feature: "chat",
        user: "z",
        messages: [{ role: "user", content: size === "small" ? "hello" : "hello ".repeat(200) }],
      });
    const refusal = (size: "small" | "big") =>
      admit(size).then(
        (a) => {
          throw new Error(`admitted ${a.reservedTokens} tokens at ${new Date(now).toISOString()}`);
        },
        (e: unknown) => {
          if (!isTokenBudgetError(e)) throw e;
          return { code: e.code, retryAfterMs: e.retryAfterMs };
        },
      );
    const full = (a: Admission) => a.settle({ prompt_tokens: a.inputTokens, completion_tokens: 100 });
    try {
      // The last instant of the previous date: a reservation made then and settled after midnight
      // is charged to the day it was made in.
      const r0 = await admit("small");
      now = S;
      await r0.settle({ prompt_tokens: r0.inputTokens, completion_tokens: 10 });

      // The first instant of the date: a fresh budget. Two requests use 216 of 400; the big one
      // does not fit, until the end of the day, which is L away.
      const a1 = await admit("small");
      const a2 = await admit("small");
      expect(a1.userDay.remaining).toBe(400 - a1.reservedTokens);
      await full(a1);
      await full(a2);
      expect(await refusal("big")).toEqual({ code: "user_budget_exceeded", retryAfterMs: L });
      if (L > DAY) {
        // 24 h later it is still the same local date: no reset yet.
        now = S + DAY;
        expect(await refusal("big")).toEqual({ code: "user_budget_exceeded", retryAfterMs: L - DAY });
      }
      // The last instant of the date: the same day's counter (a third request fits, a fourth does not).
      now = E - 1;
      const a3 = await admit("small");
      expect(a3.userDay.remaining).toBe(400 - 3 * a3.reservedTokens);
      expect(await refusal("small")).toEqual({ code: "user_budget_exceeded", retryAfterMs: 1 });

      // The first instant of the next date: a fresh budget; the reservation made the instant
      // before is settled now, and charged to the day it was made in.
      now = E;
      await full(a3);
      const b = await admit("big");
      expect(b.userDay.remaining).toBe(400 - b.reservedTokens);
      await b.settle({ prompt_tokens: b.inputTokens, completion_tokens: 1 });

      const counter = async (date: string) => {
        const key = `${prefix}c:user:{z}:day:${date}`;
        const h = await redis.hgetall(key);
        return { used: Number(h.u ?? 0), committed: Number(h.t ?? 0), ttl: (await redis.pttl(key)) > 0 };
      };
      const r0Tokens = r0.inputTokens + 10;
      const dayTokens = a1.inputTokens + a2.inputTokens + a3.inputTokens + 300;
      const bTokens = b.inputTokens + 1;
      expect(await counter(prev)).toEqual({ used: r0Tokens, committed: r0Tokens, ttl: true });
      expect(await counter(day)).toEqual({ used: dayTokens, committed: dayTokens, ttl: true });
      expect(await counter(next)).toEqual({ used: bTokens, committed: bTokens, ttl: true });
      expect(await redis.zcard(`${prefix}exp`)).toBe(0);
    } finally {
      await tf.close();
    }
  });
});
