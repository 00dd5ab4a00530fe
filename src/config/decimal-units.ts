/**
 * Exact conversion of decimal amounts (as written in the config) to integer units.
 *
 * Why not `Math.round(usd * 1e9)`: binary floats cannot hold most decimals, and a product such as
 * `0.0375 * 1e6` or `(0.1 + 0.2) * 1e9` can land off by one unit. Money is kept as integers
 * (ARCHITECTURE §1.5), so the conversion shifts the decimal point on the number's shortest
 * round-trip decimal string instead — the digits the user wrote — and never multiplies floats.
 */

/** Scale of nano-USD: 1 USD = 10^9 nano-USD. */
export const NANO_USD_DECIMALS = 9;

/** Scale of prices: USD per 1M tokens × 10^6 = pico-USD per token (10^12 pico-USD = 1 USD). */
export const PRICE_PICO_DECIMALS = 6;

/** Why a decimal could not be converted. */
export type ScaleFailure = "not_finite" | "negative" | "too_precise" | "too_many_digits" | "too_large";

/** Significant digits a double holds for sure: every decimal with at most 15 round-trips unchanged. */
export const MAX_SIGNIFICANT_DIGITS = 15;

/** Result of {@link scaleDecimal}: the exact integer, or why there is none. */
export type ScaleResult = { ok: true; value: number } | { ok: false; reason: ScaleFailure };

const DECIMAL = /^(\d+)(?:\.(\d+))?(?:e([+-]\d+))?$/;

/**
 * Returns `value × 10^decimals` as an exact safe integer, or a failure when `value` has more than
 * `decimals` decimal places or more than 15 significant digits, is negative or not finite, or the
 * result exceeds `Number.MAX_SAFE_INTEGER`. The result is exactly the decimal that was written
 * (`0.1` → 10^8 nano when `decimals` is 9, never 99 999 999): a decimal of at most 15 significant
 * digits survives parsing into a double and back unchanged; with more, the double may differ from what
 * was written (9007199.254740991 reads back as 9007199.25474099), so such values are refused.
 */
export function scaleDecimal(value: number, decimals: number): ScaleResult {
  if (!Number.isFinite(value)) return { ok: false, reason: "not_finite" };
  if (value < 0) return { ok: false, reason: "negative" };
  if (value === 0) return { ok: true, value: 0 };
  // String() yields the shortest decimal that round-trips (e.g. "0.1", "1e-7", "1.5e+21").
  const match = DECIMAL.exec(String(value));
  if (match === null) return { ok: false, reason: "not_finite" };
  const [, whole = "", fraction = "", exponent = "0"] = match;
  if ((whole + fraction).replace(/^0+/, "").length > MAX_SIGNIFICANT_DIGITS) {
    return { ok: false, reason: "too_many_digits" };
  }
  const digits = BigInt(whole + fraction);
  const shift = Number(exponent) - fraction.length + decimals;
  let scaled: bigint;
  if (shift >= 0) {
    scaled = digits * 10n ** BigInt(shift);
  } else {
    const divisor = 10n ** BigInt(-shift);
    if (digits % divisor !== 0n) return { ok: false, reason: "too_precise" };
    scaled = digits / divisor;
  }
  if (scaled > BigInt(Number.MAX_SAFE_INTEGER)) return { ok: false, reason: "too_large" };
  return { ok: true, value: Number(scaled) };
}

/** USD → nano-USD (exact), or `undefined` when not representable. */
export function usdToNanoUsd(usd: number): number | undefined {
  const result = scaleDecimal(usd, NANO_USD_DECIMALS);
  return result.ok ? result.value : undefined;
}

/** USD per 1M tokens → pico-USD per token (exact), or `undefined` when not representable. */
export function usdPerMillionToPicoUsdPerToken(usdPerMillion: number): number | undefined {
  const result = scaleDecimal(usdPerMillion, PRICE_PICO_DECIMALS);
  return result.ok ? result.value : undefined;
}
