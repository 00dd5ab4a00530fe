/**
 * `tokenfuse simulate` on bad input (review finding 7) and lines out of order (finding 9): one bad
 * line is skipped with FILE:LINE (or stops --strict with exit 2), never aborts the replay, never a
 * stack trace; a huge line is never read whole.
 */
import { mkdtempSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { describe, expect, it, vi } from "vitest";
import { splitLines } from "../usage-log/lines.js";
import type { DecisionRecord, SettleRecord } from "../usage-log/record.js";
import { loggedDecision, loggedSettlement } from "../usage-log/test-log-lines.js";
import type { CliIo } from "./io.js";
import { main } from "./main.js";
import { runSimulate } from "./simulate.js";

// A replay that fails on one record (id "boom"), as a value the parser let through might.
vi.mock("../usage-log/simulate.js", async (importOriginal) => {
  const m = await importOriginal<typeof import("../usage-log/simulate.js")>();
  return {
    ...m,
    createSimulation: async (...args: Parameters<typeof m.createSimulation>) => {
      const sim = await m.createSimulation(...args);
      return {
        ...sim,
        replay: async (r: DecisionRecord | SettleRecord) => {
          if (r.id === "boom") throw new Error("kaboom");
          return sim.replay(r);
        },
      };
    },
  };
});

const dir = mkdtempSync(join(tmpdir(), "tf-simulate-cli-review-"));

function io() {
  const out: string[] = [];
  const err: string[] = [];
  const cliIo: CliIo = { out: (s) => out.push(s), err: (s) => err.push(s), stdin: async () => "", env: {} };
  return { cliIo, out: () => out.join(""), err: () => err.join("") };
}

function file(name: string, content: string): string {
  const p = join(dir, name);
  writeFileSync(p, content);
  return p;
}

const config = file(
  "cfg.json",
  JSON.stringify({
    features: { chat: { model: "gpt-4o", max_input: 1000, max_output: 600, on_exceed: "trim" } },
    tiers: { free: { daily_tokens: 1000 } },
    default_tier: "free",
  }),
);
const DAY2 = 1795600000000;
const DAY1 = DAY2 - 86_400_000;

const dec = (timeMs: number, id: string) => JSON.stringify(loggedDecision(id, timeMs));
const settle = (timeMs: number, id: string, input = 10) =>
  JSON.stringify(loggedSettlement(id, timeMs, input));

async function run(lines: string[], extra: string[] = [], options = {}) {
  const log = file(`${Math.random().toString(36).slice(2)}.jsonl`, `${lines.join("\n")}\n`);
  const t = io();
  const code = await main(["simulate", "--log", log, "--config", config, "--json", ...extra], t.cliIo).catch(
    (e) => `threw ${e}`,
  );
  return { log, code, out: t.out(), err: t.err(), t, options };
}

describe("finding 7: lines the replay cannot use", () => {
  it("time_ms past the Date range: skipped with its line number, the rest replayed", async () => {
    const r = await run([dec(DAY2, "b"), dec(9e15, "c"), settle(DAY2 + 1, "b")]);
    expect(r.code).toBe(0);
    expect(r.err).toContain(`skipped line 2 of ${r.log}: "time_ms" is past the last date`);
    const report = JSON.parse(r.out);
    expect(report.lines).toMatchObject({ malformed: 1, decisions: 1, settlements: 1 });
    expect(report.simulated.total.allowed).toBe(1);
  });

  it("token counts whose sum is past 2^53 − 1: skipped; --strict stops there with FILE:LINE, exit 2", async () => {
    const lines = [dec(DAY2, "b"), settle(DAY2 + 1000, "b", 2 ** 53 - 1)];
    const r = await run(lines);
    expect(r.code).toBe(0);
    expect(r.err).toContain(`skipped line 2 of ${r.log}: "input_tokens" + "output_tokens" exceeds 2^53 − 1`);
    const s = await run(lines, ["--strict"]);
    expect(s.code).toBe(2);
    expect(s.err).toMatch(new RegExp(`^tokenfuse simulate: ${s.log}:2: "input_tokens" \\+ "output_tokens"`));
  });

  it("a record whose replay fails is that line's problem (FILE:LINE), not the whole replay's", async () => {
    const lines = [dec(DAY2, "a"), dec(DAY2 + 1, "boom"), settle(DAY2 + 2, "a")];
    const r = await run(lines);
    expect(r.code).toBe(0);
    expect(r.err).toBe(`tokenfuse simulate: skipped line 2 of ${r.log}: cannot be replayed: kaboom\n`);
    expect(JSON.parse(r.out).lines).toMatchObject({ malformed: 1, decisions: 1, settlements: 1 });
    const s = await run(lines, ["--strict"]);
    expect(s.code).toBe(2);
    expect(s.err).toBe(
      `tokenfuse simulate: ${s.log}:2: cannot be replayed: kaboom (--strict stops at the first malformed line)\n`,
    );
  });

  it("a line over the cap is skipped without being read whole, and the lines after it replayed", async () => {
    const log = file(
      "long.jsonl",
      `${dec(DAY2, "a")}\n${"x".repeat(5000)}\n${settle(DAY2 + 1, "a")}\n${"\0".repeat(3000)}`,
    );
    const t = io();
    expect(
      await runSimulate(["--log", log, "--config", config, "--json"], t.cliIo, { maxLineBytes: 1024 }),
    ).toBe(0);
    expect(t.err()).toBe(
      [
        `tokenfuse simulate: skipped line 2 of ${log}: line longer than 1,024 bytes (5,000): not read`,
        `tokenfuse simulate: skipped line 4 of ${log}: line longer than 1,024 bytes (3,000): not read`,
        "",
      ].join("\n"),
    );
    const report = JSON.parse(t.out());
    expect(report.lines).toMatchObject({ total: 4, malformed: 2, decisions: 1, settlements: 1 });
    expect(report.orphan_settlements).toBe(0);
  });

  it("a 600 MB NUL tail with no newline (a power loss) is one skipped line: exit 0, no crash", async () => {
    const log = file("nul.jsonl", `${dec(DAY2, "a")}\n`);
    truncateSync(log, 600 * 1024 * 1024); // sparse: no disk used
    const t = io();
    expect(await main(["simulate", "--log", log, "--config", config, "--json"], t.cliIo)).toBe(0);
    expect(t.err()).toMatch(
      /skipped line 2 of .*: line longer than 1,048,576 bytes \(629,145,\d+\): not read/,
    );
    expect(JSON.parse(t.out()).lines).toMatchObject({ total: 2, malformed: 1, decisions: 1 });
  }, 60_000);
});

describe("splitLines", () => {
  it("splits across chunk boundaries, drops \\r before \\n, keeps blank lines and a last line without \\n", async () => {
    const text = 'ab\r\n{"x":1}\n\nlast';
    for (const size of [1, 2, 3, 5, 100]) {
      const chunks: Buffer[] = [];
      for (let i = 0; i < text.length; i += size) chunks.push(Buffer.from(text.slice(i, i + size)));
      const got: unknown[] = [];
      for await (const l of splitLines(Readable.from(chunks), 6)) got.push(l);
      expect(got).toEqual([{ text: "ab" }, { tooLongBytes: 7 }, { text: "" }, { text: "last" }]);
    }
  });

  it("keeps a multi-byte character split between chunks whole", async () => {
    const b = Buffer.from("é€\n");
    const got: unknown[] = [];
    for await (const l of splitLines(Readable.from([b.subarray(0, 1), b.subarray(1, 4), b.subarray(4)])))
      got.push(l);
    expect(got).toEqual([{ text: "é€" }]);
  });
});

describe("finding 9: lines out of order", () => {
  it("lines more than 2 s behind the replay's clock are counted and warned about once, with the first line", async () => {
    // Two instances' logs concatenated: day 2, then day 1 (replayed at day 2's time).
    const lines = [dec(DAY2, "b"), settle(DAY2 + 1000, "b"), dec(DAY1, "a"), settle(DAY1 + 1000, "a")];
    const r = await run(lines);
    expect(r.code).toBe(0);
    expect(r.err).toBe(
      `tokenfuse simulate: 2 lines of ${r.log} are more than 2 s older than a line before them (first: line 3, 1.0 d back); they were replayed at the later time. Sort the log by time_ms (logs of several processes merged?)\n`,
    );
    expect(JSON.parse(r.out).late_lines).toEqual({ count: 2, first_line: 3 });
    expect(JSON.parse(r.out).approximations.join("\n")).toMatch(/never moves back/);
    // A few ms (concurrent requests) is not out of order.
    const ok = await run([dec(DAY2 + 500, "b"), dec(DAY2, "c"), settle(DAY2 + 600, "b")]);
    expect(ok.err).toBe("");
    expect(JSON.parse(ok.out).late_lines).toEqual({ count: 0, first_line: null });
  });

  it("the text report lists the out-of-order approximation and the count", async () => {
    const log = file("ooo.jsonl", `${[dec(DAY2, "b"), dec(DAY1, "a")].join("\n")}\n`);
    const t = io();
    expect(await main(["simulate", "--log", log, "--config", config], t.cliIo)).toBe(0);
    expect(t.out()).toContain(
      "1 line more than 2 s out of order (first: line 2): replayed at the latest time seen",
    );
    expect(t.out()).toMatch(/- Lines are replayed in file order on a clock that never moves back/);
  });
});
