import { Counter, Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { CounterCells } from "./counter-cells.js";

function setup() {
  const registry = new Registry();
  let cells: CounterCells | undefined;
  const counter = new Counter({
    name: "t_total",
    help: "test",
    labelNames: ["a", "b"],
    registers: [registry],
    collect() {
      cells?.flush();
    },
  });
  cells = new CounterCells(counter, ["a", "b"]);
  return { registry, cells };
}

async function values(registry: Registry) {
  const [m] = await registry.getMetricsAsJSON();
  return Object.fromEntries((m?.values ?? []).map((v) => [`${v.labels.a}|${v.labels.b}`, v.value]));
}

describe("CounterCells", () => {
  it("reads back exactly what was added, per label set, on every read", async () => {
    const { registry, cells } = setup();
    cells.cell("x", "1").inc();
    cells.cell("x", "1").inc(41);
    cells.cell("y", "2").inc(0.5);
    expect(await values(registry)).toEqual({ "x|1": 42, "y|2": 0.5 });
    cells.cell("x", "1").inc(8);
    expect(await values(registry)).toEqual({ "x|1": 50, "y|2": 0.5 });
    expect(await registry.metrics()).toContain('t_total{a="x",b="1"} 50');
  });

  it("keeps label sets apart whatever characters they hold", async () => {
    const { registry, cells } = setup();
    cells.cell("a1:", "b").inc();
    cells.cell("a", "1:b").inc(2);
    cells.cell("a\u0000", "").inc(3);
    cells.cell("a", "\u0000").inc(4);
    expect(await values(registry)).toEqual({ "a1:|b": 1, "a|1:b": 2, "a\u0000|": 3, "a|\u0000": 4 });
  });

  it("refuses a negative, NaN or infinite increment and keeps the total", async () => {
    const { registry, cells } = setup();
    const c = cells.cell("x", "1");
    c.inc(3);
    for (const bad of [-1, Number.NaN, Number.POSITIVE_INFINITY])
      expect(() => c.inc(bad)).toThrow(RangeError);
    expect(await values(registry)).toEqual({ "x|1": 3 });
  });
});
