/**
 * Time windows. A window's start is part of every counter's key (`day:2026-11-24`, `minute:…`), so a
 * budget resets by construction when the window changes — no reset job (SPEC §4).
 */

/** A window: its id (used in keys) and its bounds [startMs, endMs). Shared (cached): never mutated. */
export interface Window {
  readonly id: string;
  readonly startMs: number;
  readonly endMs: number;
}

const MINUTE_MS = 60_000;
const HOUR_MS = 3_600_000;

/** The last minute and hour handed out: the hot path asks for the same one thousands of times. */
let lastMinute: Window = { id: "", startMs: 0, endMs: 0 };
let lastHour: Window = { id: "", startMs: 0, endMs: 0 };

/** The UTC minute containing `nowMs`, id like `2026-11-24T10:05`. */
export function minuteWindow(nowMs: number): Window {
  if (nowMs >= lastMinute.startMs && nowMs < lastMinute.endMs) return lastMinute;
  const startMs = Math.floor(nowMs / MINUTE_MS) * MINUTE_MS;
  const w = { id: new Date(startMs).toISOString().slice(0, 16), startMs, endMs: startMs + MINUTE_MS };
  lastMinute = w;
  return w;
}

/** The UTC hour containing `nowMs`, id like `2026-11-24T10`. */
export function hourWindow(nowMs: number): Window {
  if (nowMs >= lastHour.startMs && nowMs < lastHour.endMs) return lastHour;
  const startMs = Math.floor(nowMs / HOUR_MS) * HOUR_MS;
  const w = { id: new Date(startMs).toISOString().slice(0, 13), startMs, endMs: startMs + HOUR_MS };
  lastHour = w;
  return w;
}

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatterFor(timeZone: string): Intl.DateTimeFormat {
  let f = formatters.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat("en-CA", { timeZone, year: "numeric", month: "2-digit", day: "2-digit" });
    formatters.set(timeZone, f);
  }
  return f;
}

/** The local calendar date (YYYY-MM-DD) of instant `ms` in `timeZone`. */
export function localDate(ms: number, timeZone: string): string {
  // en-CA formats as YYYY-MM-DD; formatToParts keeps this independent of that detail.
  const parts = formatterFor(timeZone).formatToParts(ms);
  let y = "";
  let m = "";
  let d = "";
  for (const p of parts) {
    if (p.type === "year") y = p.value;
    else if (p.type === "month") m = p.value;
    else if (p.type === "day") d = p.value;
  }
  return `${y.padStart(4, "0")}-${m}-${d}`;
}

/**
 * The first instant (ms) at or after `fromMs` whose local date differs from `date`.
 * Why a search and not "midnight minus offset": in some zones midnight does not exist on DST days
 * (the clock jumps 00:00 → 01:00) or occurs twice; the day starts at the first instant whose local
 * date is the next date, whatever the clock shows. Offsets change at most a few hours, so the next
 * day starts within (0, 27h] of any instant of the day; binary search to the millisecond.
 */
function nextDayStart(fromMs: number, date: string, timeZone: string): number {
  let lo = fromMs; // localDate(lo) === date
  let hi = fromMs + 27 * HOUR_MS;
  while (localDate(hi, timeZone) === date) hi += 24 * HOUR_MS; // defensive; never taken for real zones
  while (hi - lo > 1) {
    const mid = lo + Math.floor((hi - lo) / 2);
    if (localDate(mid, timeZone) === date) lo = mid;
    else hi = mid;
  }
  return hi;
}

/** The first instant whose local date is `date` (searching back from `atMs`, which lies on `date`). */
function dayStart(atMs: number, date: string, timeZone: string): number {
  let lo = atMs - 27 * HOUR_MS;
  while (localDate(lo, timeZone) === date) lo -= 24 * HOUR_MS;
  let hi = atMs; // localDate(hi) === date, localDate(lo) !== date
  while (hi - lo > 1) {
    const mid = lo + Math.floor((hi - lo) / 2);
    if (localDate(mid, timeZone) === date) hi = mid;
    else lo = mid;
  }
  return hi;
}

const dayCache = new Map<string, Window>();

/**
 * The calendar day containing `nowMs` in IANA zone `timeZone`: id `YYYY-MM-DD` (local date),
 * bounds in UTC ms. Cached per zone, so the hot path formats one date only when the day changes.
 */
export function dayWindow(nowMs: number, timeZone: string): Window {
  const cached = dayCache.get(timeZone);
  if (cached && nowMs >= cached.startMs && nowMs < cached.endMs) return cached;
  const id = localDate(nowMs, timeZone);
  const w: Window = { id, startMs: dayStart(nowMs, id, timeZone), endMs: nextDayStart(nowMs, id, timeZone) };
  // Only cache the window of "now"-like instants; tests probing random instants still compute exactly.
  dayCache.set(timeZone, w);
  return w;
}

/** True when `timeZone` is an IANA zone name this runtime knows. */
export function isValidTimeZone(timeZone: string): boolean {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone });
    return true;
  } catch {
    return false;
  }
}
