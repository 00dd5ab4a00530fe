// Small helpers shared by the benchmarks (plain Node ESM; benchmarks run the built code in dist/).

/** Runs fn repeatedly for at least `minMs` (after `warmup` calls) and returns per-call stats in µs. */
export async function measure(fn, { warmup = 20, minMs = 1000, minRuns = 20, maxRuns = 1e6 } = {}) {
  for (let i = 0; i < warmup; i++) await fn();
  const samples = [];
  const start = performance.now();
  while ((performance.now() - start < minMs || samples.length < minRuns) && samples.length < maxRuns) {
    const t = performance.now();
    await fn();
    samples.push((performance.now() - t) * 1000);
  }
  samples.sort((a, b) => a - b);
  const q = (p) => samples[Math.min(samples.length - 1, Math.floor(p * samples.length))];
  const mean = samples.reduce((s, x) => s + x, 0) / samples.length;
  return {
    runs: samples.length,
    meanUs: mean,
    p50Us: q(0.5),
    p99Us: q(0.99),
    maxUs: samples[samples.length - 1],
  };
}

/** Formats µs for tables. */
export function us(x) {
  if (x >= 1000) return `${(x / 1000).toFixed(2)} ms`;
  return `${x.toFixed(1)} µs`;
}

/** Prints a markdown table. */
export function table(rows) {
  const [head, ...body] = rows;
  const line = (r) => `| ${r.join(" | ")} |`;
  console.log([line(head), line(head.map(() => "---")), ...body.map(line)].join("\n"));
}
