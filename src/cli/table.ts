import { formatUsd } from "../cost/format-usd.js";
/** Renders rows as a plain aligned text table (first row is the header). */
export function renderTable(rows: string[][]): string {
  const widths: number[] = [];
  for (const r of rows) {
    for (const [i, c] of r.entries()) widths[i] = Math.max(widths[i] ?? 0, c.length);
  }
  const line = (r: string[]) =>
    r
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join("  ")
      .trimEnd();
  const [head, ...body] = rows;
  if (!head) return "";
  return [line(head), widths.map((w) => "-".repeat(w)).join("  "), ...body.map(line)].join("\n");
}

/** Formats an integer with thousands separators (10 000 → "10,000"). */
export function num(n: number | undefined): string {
  return n === undefined ? "-" : n.toLocaleString("en-US");
}

/** Formats nano-USD as dollars (4 decimals below $1, else cents). */
export function usd(nano: number | undefined): string {
  if (nano === undefined) return "-";
  // Cents from a dollar up; below, exact (a small spend is never shown as $0.0000).
  return nano >= 1e9 ? `$${(nano / 1e9).toFixed(2)}` : formatUsd(nano);
}
