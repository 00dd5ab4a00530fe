import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { scaleDecimal, usdPerMillionToPicoUsdPerToken, usdToNanoUsd } from "./decimal-units.js";

describe("usdToNanoUsd", () => {
  it.each([
    [0.1, 100_000_000],
    [0.3, 300_000_000],
    [0.2, 200_000_000],
    [20, 20_000_000_000],
    [50, 50_000_000_000],
    [0.000000001, 1],
    [1.000000001, 1_000_000_001],
    [1e-7, 100],
    [999999.999999999, 999_999_999_999_999],
    [9007199.25474099, 9_007_199_254_740_990],
  ])("%s USD is exactly %s nano-USD", (usd, nano) => {
    expect(usdToNanoUsd(usd)).toBe(nano);
  });

  it("is exact where float multiplication is not", () => {
    // The naive conversions this module exists to avoid really are off:
    expect(Math.floor(1.005 * 1e9)).toBe(1_004_999_999);
    expect(usdToNanoUsd(1.005)).toBe(1_005_000_000);
    expect(Math.floor(8.2 * 1e9)).toBe(8_199_999_999);
    expect(usdToNanoUsd(8.2)).toBe(8_200_000_000);
  });

  it("converts the value the float holds, so 0.1 + 0.2 is not 0.3", () => {
    // 0.1 + 0.2 is 0.30000000000000004: more than 9 decimals, so not exactly convertible.
    expect(usdToNanoUsd(0.1 + 0.2)).toBeUndefined();
    expect(usdToNanoUsd(0.3)).toBe(300_000_000);
  });

  it("refuses more precision than nano-USD, negatives, non-finite and unsafe results", () => {
    expect(scaleDecimal(0.0000000001, 9)).toEqual({ ok: false, reason: "too_precise" });
    expect(scaleDecimal(-1, 9)).toEqual({ ok: false, reason: "negative" });
    expect(scaleDecimal(Number.POSITIVE_INFINITY, 9)).toEqual({ ok: false, reason: "not_finite" });
    expect(scaleDecimal(Number.NaN, 9)).toEqual({ ok: false, reason: "not_finite" });
    expect(scaleDecimal(1e7, 9)).toEqual({ ok: false, reason: "too_large" });
    // 16 significant digits: the double may not be what was written (this one reads back shorter).
    expect(scaleDecimal(1234567.123456789, 9)).toEqual({ ok: false, reason: "too_many_digits" });
    expect(scaleDecimal(1e21, 0)).toEqual({ ok: false, reason: "too_large" });
    expect(scaleDecimal(0, 9)).toEqual({ ok: true, value: 0 });
  });

  it("converts every decimal of up to 15 digits exactly as written (property)", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 999_999_999_999_999 }), fc.nat({ max: 9 }), (digits, places) => {
        // The decimal `digits / 10^places`, written out as text and parsed like a config value.
        const padded = String(digits).padStart(places + 1, "0");
        const text = places === 0 ? padded : `${padded.slice(0, -places)}.${padded.slice(-places)}`;
        const nano = BigInt(digits) * 10n ** BigInt(9 - places);
        const expected = nano <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(nano) : undefined;
        expect(usdToNanoUsd(Number(text))).toBe(expected);
      }),
    );
  });
});

describe("usdPerMillionToPicoUsdPerToken", () => {
  it.each([
    [0.0375, 37_500],
    [2.5, 2_500_000],
    [10, 10_000_000],
    [0.075, 75_000],
    [0.000001, 1],
    [3, 3_000_000],
    [0, 0],
  ])("$%s per 1M tokens is %s pico-USD per token", (price, pico) => {
    expect(usdPerMillionToPicoUsdPerToken(price)).toBe(pico);
  });

  it("refuses prices finer than one pico-USD per token", () => {
    expect(usdPerMillionToPicoUsdPerToken(0.0000001)).toBeUndefined();
    expect(usdPerMillionToPicoUsdPerToken(0.1234567)).toBeUndefined();
  });
});
