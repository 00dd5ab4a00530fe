import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { dayWindow, hourWindow, isValidTimeZone, localDate, minuteWindow } from "./windows.js";

/** Zones with DST, half- and quarter-hour offsets, DST at midnight, and a skipped calendar day. */
const ZONES = [
  "UTC",
  "America/New_York",
  "Europe/London",
  "Europe/Paris",
  "America/Santiago", // DST changes at midnight: some days start at 01:00
  "America/Havana", // DST at midnight too
  "Asia/Beirut",
  "Asia/Kolkata", // +05:30
  "Asia/Kathmandu", // +05:45
  "Australia/Adelaide", // +09:30 with DST
  "Australia/Lord_Howe", // 30-minute DST shift
  "Pacific/Chatham", // +12:45 / +13:45
  "America/St_Johns", // -03:30 with DST
  "Asia/Tehran",
  "Africa/Casablanca",
  "Pacific/Apia", // skipped 2011-12-30 entirely
  "Pacific/Kiritimati", // +14
  "Pacific/Pago_Pago", // -11
];

const instants = fc.integer({ min: Date.UTC(1972, 0, 1), max: Date.UTC(2100, 0, 1) });

describe("day windows", () => {
  it("every instant falls in exactly one local day, which starts and ends where the local date changes", () => {
    fc.assert(
      fc.property(instants, fc.constantFrom(...ZONES), (t, tz) => {
        const w = dayWindow(t, tz);
        expect(w.startMs).toBeLessThanOrEqual(t);
        expect(w.endMs).toBeGreaterThan(t);
        expect(w.id).toBe(localDate(t, tz));
        expect(localDate(w.startMs, tz)).toBe(w.id);
        expect(localDate(w.startMs - 1, tz)).not.toBe(w.id);
        expect(localDate(w.endMs - 1, tz)).toBe(w.id);
        expect(localDate(w.endMs, tz)).not.toBe(w.id);
        // Days tile time: the next day starts where this one ends.
        expect(dayWindow(w.endMs, tz).startMs).toBe(w.endMs);
        const hours = (w.endMs - w.startMs) / 3_600_000;
        expect(hours).toBeGreaterThanOrEqual(22);
        expect(hours).toBeLessThanOrEqual(26);
      }),
      { numRuns: 3000 },
    );
  });

  it("resets at local midnight, DST days included", () => {
    const ny = dayWindow(Date.parse("2026-03-08T12:00:00Z"), "America/New_York");
    expect([ny.id, new Date(ny.startMs).toISOString(), new Date(ny.endMs).toISOString()]).toEqual([
      "2026-03-08",
      "2026-03-08T05:00:00.000Z",
      "2026-03-09T04:00:00.000Z",
    ]);
    const fall = dayWindow(Date.parse("2026-11-01T12:00:00Z"), "America/New_York");
    expect((fall.endMs - fall.startMs) / 3_600_000).toBe(25);
    const kolkata = dayWindow(Date.parse("2026-11-24T20:00:00Z"), "Asia/Kolkata");
    expect([kolkata.id, new Date(kolkata.startMs).toISOString()]).toEqual([
      "2026-11-25",
      "2026-11-24T18:30:00.000Z",
    ]);
    // Chile: on 2026-09-06 clocks jump from 00:00 to 01:00, so the day starts at 01:00 local (04:00Z).
    const cl = dayWindow(Date.parse("2026-09-06T12:00:00Z"), "America/Santiago");
    expect([cl.id, new Date(cl.startMs).toISOString(), (cl.endMs - cl.startMs) / 3_600_000]).toEqual([
      "2026-09-06",
      "2026-09-06T04:00:00.000Z",
      23,
    ]);
  });

  it("a day that does not exist locally is skipped (Samoa, 2011-12-30)", () => {
    const before = dayWindow(Date.parse("2011-12-30T09:00:00Z"), "Pacific/Apia");
    expect(before.id).toBe("2011-12-29");
    expect(dayWindow(before.endMs, "Pacific/Apia").id).toBe("2011-12-31");
  });

  it("minute and hour windows are aligned UTC windows", () => {
    fc.assert(
      fc.property(instants, (t) => {
        const m = minuteWindow(t);
        const h = hourWindow(t);
        expect(m.startMs % 60_000).toBe(0);
        expect(m.startMs <= t && t < m.endMs).toBe(true);
        expect(h.startMs % 3_600_000).toBe(0);
        expect(h.startMs <= t && t < h.endMs).toBe(true);
        expect(m.id).toBe(new Date(m.startMs).toISOString().slice(0, 16));
      }),
    );
  });

  it("validates time zone names", () => {
    expect(isValidTimeZone("Europe/Paris")).toBe(true);
    expect(isValidTimeZone("Mars/Olympus")).toBe(false);
  });
});
