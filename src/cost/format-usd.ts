/**
 * A nano-USD amount as dollars for messages: cents when it is a whole number of cents ($50.00),
 * else four decimals ($0.0050), so a threshold below a cent is never printed as another number.
 */
export function formatUsd(nanoUsd: number): string {
  return `$${(nanoUsd / 1e9).toFixed(nanoUsd % 10_000_000 === 0 ? 2 : 4)}`;
}
