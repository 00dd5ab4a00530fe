import type { Counter } from "prom-client";

/** One label set's increments not yet moved into the Counter. */
export class CounterCell {
  pending = 0;
  constructor(readonly labels: Record<string, string>) {}

  inc(value = 1): void {
    if (!(value >= 0) || value === Number.POSITIVE_INFINITY)
      throw new RangeError(`a counter increment must be a finite number ≥ 0, got ${value}`);
    this.pending += value;
  }
}

/**
 * Increments for a prom-client Counter, kept in plain number cells until the registry is read.
 *
 * Why: prom-client hashes and validates the label set on every `inc` (about 1 µs), and the gateway
 * updates half a dozen series per request. Here a label set's cell is found with one Map lookup and an
 * increment is one addition; the Counter's `collect` hook, which prom-client runs before every read of
 * the metric (`/metrics`, `registry.getMetricsAsJSON()`), moves the pending amounts into the Counter.
 * Totals read through prom-client are exactly what direct `inc` calls would give. Label values must
 * be bounded, as for any Prometheus label.
 */
export class CounterCells {
  /** Cells by first label value, then second, …: a tree as deep as there are labels. */
  private readonly root = new Map<string, unknown>();
  private readonly all: CounterCell[] = [];

  /** `counter` must be created with `collect() { cells.flush() }` (see metrics.ts). */
  constructor(
    private readonly counter: Counter<string>,
    private readonly labelNames: readonly string[],
  ) {
    if (labelNames.length < 1 || labelNames.length > 4)
      throw new RangeError("CounterCells takes 1 to 4 labels");
  }

  /**
   * The cell of one label set, values in `labelNames` order. Why a tree of Maps and not one joined
   * key: no string is built per call, and label values can hold any character without two label
   * sets ever sharing a cell.
   */
  cell(a: string, b = "", c = "", d = ""): CounterCell {
    const n = this.labelNames.length;
    let level = this.root;
    for (let i = 0; i < n - 1; i++) {
      const v = i === 0 ? a : i === 1 ? b : c;
      let next = level.get(v) as Map<string, unknown> | undefined;
      if (!next) {
        next = new Map();
        level.set(v, next);
      }
      level = next;
    }
    const last = n === 1 ? a : n === 2 ? b : n === 3 ? c : d;
    let cell = level.get(last) as CounterCell | undefined;
    if (!cell) {
      const values = [a, b, c, d];
      const labels: Record<string, string> = {};
      this.labelNames.forEach((name, i) => {
        labels[name] = values[i] as string;
      });
      // Adding 0 creates the series and lets prom-client refuse a bad label set here, where it is
      // used, rather than at the next scrape.
      this.counter.inc(labels, 0);
      cell = new CounterCell(labels);
      level.set(last, cell);
      this.all.push(cell);
    }
    return cell;
  }

  /** Moves the pending increments into the Counter. */
  flush(): void {
    for (const c of this.all) {
      if (c.pending === 0) continue;
      const v = c.pending;
      c.pending = 0;
      this.counter.inc(c.labels, v);
    }
  }
}
