import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { formatUsd } from "./format-usd.js";

describe("formatUsd", () => {
  it("prints cents when whole cents, else every digit the amount has (at least four decimals)", () => {
    expect(
      [0, 1, 10_000, 40_000, 50_000, 120_000, 5_000_000, 9_999_999, 10_000_000, 5e9, 123_456_789_012].map(
        formatUsd,
      ),
    ).toEqual([
      "$0.00",
      "$0.000000001",
      "$0.00001",
      "$0.00004",
      "$0.00005",
      "$0.00012",
      "$0.0050",
      "$0.009999999",
      "$0.01",
      "$5.00",
      "$123.456789012",
    ]);
  });

  it("is exact: the printed dollars are the nano-USD amount, up to 2^53 - 1", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), (n) => {
        const [whole, frac] = formatUsd(n).slice(1).split(".") as [string, string];
        expect(BigInt(whole) * 1_000_000_000n + BigInt(frac.padEnd(9, "0"))).toBe(BigInt(n));
      }),
    );
  });
});
