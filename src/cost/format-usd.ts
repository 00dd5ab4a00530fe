/**
 * A nano-USD amount as dollars, exactly: cents when it is a whole number of cents ($50.00), else at
 * least four decimals and as many more as the amount needs, up to the nano-dollar ($0.0050,
 * $0.00001, $0.000000001), so a threshold or a spend is never printed as another number. Integer
 * arithmetic: no float rounding, whatever the amount.
 */
export function formatUsd(nanoUsd: number): string {
  const sign = nanoUsd < 0 ? "-" : "";
  const n = Math.abs(nanoUsd);
  const whole = Math.floor(n / 1e9);
  const fraction = String(n - whole * 1e9).padStart(9, "0");
  const cents = n % 10_000_000 === 0;
  const digits = cents ? fraction.slice(0, 2) : fraction.replace(/0{1,5}$/, "");
  return `${sign}$${whole}.${digits}`;
}
