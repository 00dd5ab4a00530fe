import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadConfig } from "../config/load.js";
import type { Admission } from "../core/engine.js";
import { isTokenBudgetError } from "../core/errors.js";
import { silentLogger } from "../core/logger.js";
import type { ChatMessage } from "../core/types.js";
import { createMemoryStore } from "../stores/memory-store.js";
import { createTokenfuse } from "../tokenfuse.js";
import { parseUsageLine } from "./parse.js";
import type { DecisionRecord, SettleRecord } from "./record.js";
import { createSimulation } from "./simulate.js";

const dir = mkdtempSync(join(tmpdir(), "tf-simulate-"));

/** Budgets generous enough that nothing is refused for budget; the caps are the same in both. */
const features = {
  chat: { model: "gpt-4o", max_input: 300, max_output: 120, on_exceed: "trim" },
  strict: { model: "gpt-4o-mini", max_input: 150, max_output: 60, on_exceed: "reject" },
  quick: {
    model: "gpt-4.1-nano",
    max_input: 100,
    max_output: 40,
    on_exceed: "truncate",
    daily_tokens: 1_000_000,
  },
};
const generous = {
  features,
  tiers: {
    free: { daily_tokens: 1_000_000, tokens_per_minute: 1_000_000 },
    pro: { daily_tokens: 1_000_000, time_zone: "America/New_York" },
  },
  default_tier: "free",
  global: { tokens_per_minute: 10_000_000 },
};
/** The same caps, tight budgets: users, the quick feature, the minute windows and the global limit refuse. */
const tight = {
  features: { ...features, quick: { ...features.quick, daily_tokens: 2500 } },
  tiers: {
    free: { daily_tokens: 8000, tokens_per_minute: 1200 },
    pro: { daily_tokens: 10_000, time_zone: "America/New_York" },
  },
  default_tier: "free",
  global: { tokens_per_minute: 1000 },
};

function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const words = (n: number, seed: number) =>
  Array.from({ length: n }, (_, i) => `w${(seed * 31 + i) % 97}`).join(" ");

/** One request of the workload: always the same, whatever config it runs against. */
interface Step {
  atMs: number;
  feature: string;
  user: string;
  tier: string;
  messages: ChatMessage[];
  n: number;
  maxTokens: number | undefined;
  /** How it ends, some time later: usage (completion tokens), a failure (release) or an estimate. */
  end: "usage" | "release" | "estimate";
  completion: number;
  /** Prompt tokens the provider reports beyond tokenfuse's count (as an estimating tokenizer would see). */
  promptExtra: number;
  /** Some prompt tokens cached, some output reasoning (priced differently). */
  details: boolean;
  settleAfterMs: number;
}

/**
 * A deterministic day of traffic across UTC and New York midnight: several users and tiers, three
 * features with trim, reject and truncate, long histories, n > 1, caller caps, failed calls, estimated
 * usage, unknown features, and requests in flight at the same time (settled out of order).
 */
function workload(): Step[] {
  const rnd = prng(42);
  const steps: Step[] = [];
  let t = Date.parse("2026-11-24T19:00:00.000Z");
  for (let i = 0; i < 420; i++) {
    // Mostly spread out, sometimes in bursts (the minute windows fill up).
    t += rnd() < 0.3 ? 300 : Math.floor(5_000 + rnd() * 120_000);
    const r = rnd();
    const feature = i % 60 === 59 ? "nope" : r < 0.5 ? "chat" : r < 0.75 ? "strict" : "quick";
    const pro = rnd() < 0.3;
    const user = pro ? `p${Math.floor(rnd() * 2)}` : `u${Math.floor(rnd() * 4)}`;
    const turns = 1 + Math.floor(rnd() * 6);
    const messages: ChatMessage[] = [{ role: "system", content: "Be brief." }];
    for (let k = 0; k < turns; k++) {
      messages.push({ role: "user", content: words(3 + Math.floor(rnd() * 40), i + k) });
      if (k < turns - 1)
        messages.push({ role: "assistant", content: words(2 + Math.floor(rnd() * 30), i - k) });
    }
    const end = i % 17 === 5 ? "release" : i % 13 === 7 ? "estimate" : "usage";
    steps.push({
      atMs: t,
      feature,
      user,
      tier: pro ? "pro" : "free",
      messages,
      n: i % 11 === 3 ? 2 : 1,
      maxTokens: i % 7 === 2 ? 30 : undefined,
      end,
      completion: Math.floor(rnd() * 200),
      promptExtra: i % 5 === 1 ? 1 + (i % 9) : 0,
      details: i % 3 === 0,
      settleAfterMs: Math.floor(rnd() * 30_000),
    });
  }
  return steps;
}

/** Runs the workload live against a config with a usage log; returns the log's path. */
async function runLive(config: object): Promise<string> {
  const path = join(dir, `${Math.random().toString(36).slice(2)}.jsonl`);
  let now = 0;
  const tf = createTokenfuse({
    config: { ...config, usage_log: { path } },
    clock: { nowMs: () => now },
    logger: silentLogger,
    store: createMemoryStore(),
  });
  // Settlements come due after later admissions: requests overlap as they do in production.
  const due: Array<{ atMs: number; a: Admission; s: Step }> = [];
  const settleDue = async (until: number) => {
    due.sort((x, y) => x.atMs - y.atMs);
    while (due.length > 0 && (due[0] as { atMs: number }).atMs <= until) {
      const { atMs, a, s } = due.shift() as (typeof due)[number];
      now = atMs;
      if (s.end === "release") await a.settle();
      else {
        const prompt = a.inputTokens + s.promptExtra;
        const completion = Math.min(s.completion, a.maxOutputTokens * s.n);
        const usage = {
          prompt_tokens: prompt,
          completion_tokens: completion,
          ...(s.details
            ? {
                prompt_tokens_details: { cached_tokens: Math.floor(prompt / 3) },
                completion_tokens_details: { reasoning_tokens: Math.floor(completion / 2) },
              }
            : {}),
        };
        await a.settle(usage, s.end === "estimate" ? { estimated: "no usage reported" } : undefined);
      }
    }
  };
  for (const s of workload()) {
    await settleDue(s.atMs);
    now = s.atMs;
    try {
      const a = await tf.admit({
        feature: s.feature,
        user: s.user,
        tier: s.tier,
        messages: s.messages,
        n: s.n,
        maxTokens: s.maxTokens,
      });
      due.push({ atMs: s.atMs + s.settleAfterMs, a, s });
    } catch (e) {
      if (!isTokenBudgetError(e)) throw e;
    }
  }
  await settleDue(Number.POSITIVE_INFINITY);
  await tf.close();
  return path;
}

function records(path: string): Array<DecisionRecord | SettleRecord> {
  return readFileSync(path, "utf8")
    .trimEnd()
    .split("\n")
    .map((line) => {
      const p = parseUsageLine(line);
      if (!p.ok) throw new Error(p.error);
      return p.record;
    });
}

async function simulate(path: string, config: object) {
  const outcomes: string[] = [];
  const sim = await createSimulation(loadConfig(config, {}), {
    onDecision: (rec, o) => outcomes.push(`${rec.id} ${o.decision} ${o.code ?? ""}`),
  });
  for (const r of records(path)) await sim.replay(r);
  return { report: await sim.finish(), outcomes };
}

/** The logged decisions that a replay replays (those counted before they were decided). */
function loggedOutcomes(path: string): string[] {
  return records(path)
    .filter((r): r is DecisionRecord => r.type === "decision" && r.input_tokens_before !== undefined)
    .map((r) => `${r.id} ${r.decision} ${r.code ?? ""}`);
}

const strip = (outcomes: string[]) => outcomes.map((o) => o.slice(o.indexOf(" ") + 1));

describe("tokenfuse simulate: replaying a usage log", () => {
  it("reproduces every decision, token and nano-dollar when replayed against the config that wrote the log", async () => {
    const path = await runLive(tight);
    const { report, outcomes } = await simulate(path, tight);
    const logged = loggedOutcomes(path);
    expect(outcomes).toEqual(logged);
    // The workload exercises every outcome this test claims to reproduce.
    const seen = new Set(strip(logged));
    for (const o of [
      "allow ",
      "trim ",
      "reject input_budget_exceeded",
      "reject user_budget_exceeded",
      "reject feature_budget_exceeded",
      "reject global_rate_limited",
    ])
      expect(seen).toContain(o);
    expect(report.simulated.total).toEqual({
      ...report.logged.total,
      // Refused before counting (unknown feature): in the log, not replayed.
      requests: report.logged.total.requests - report.not_replayed.requests,
      rejected: report.logged.total.rejected - report.not_replayed.requests,
      rejected_by_code: Object.fromEntries(
        Object.entries(report.logged.total.rejected_by_code).filter(([c]) => c !== "unknown_feature"),
      ),
    });
    expect(report.not_replayed).toEqual({ requests: 7, by_code: { unknown_feature: 7 } });
    expect(report.logged.total.cost_nano_usd).toBeGreaterThan(0);
    expect(report).toMatchObject({ unsettled: 0, orphan_settlements: 0, charged_as_reserved: 0 });
  });

  it("against a tighter config, refuses exactly what the engine refuses live with that config", async () => {
    const generousLog = await runLive(generous);
    const tightLog = await runLive(tight);
    const same = await simulate(generousLog, generous);
    const tighter = await simulate(generousLog, tight);
    // What the engine really did with the tight config, request by request (same workload, same clock).
    expect(strip(tighter.outcomes)).toEqual(strip(loggedOutcomes(tightLog)));
    const live = (await simulate(tightLog, tight)).report;
    expect(tighter.report.simulated.total).toEqual(live.simulated.total);
    // More refusals than with the config that wrote the log (where only max_input refused), counted
    // exactly: the live run's own counts, code by code.
    expect(same.report.simulated.total.rejected_by_code).toEqual({
      input_budget_exceeded: same.report.simulated.total.rejected,
    });
    expect(tighter.report.simulated.total.rejected_by_code).toEqual(live.simulated.total.rejected_by_code);
    expect(tighter.report.simulated.total.rejected).toBe(
      same.report.simulated.total.rejected +
        (live.simulated.total.rejected_by_code.user_budget_exceeded ?? 0) +
        (live.simulated.total.rejected_by_code.feature_budget_exceeded ?? 0) +
        (live.simulated.total.rejected_by_code.global_rate_limited ?? 0),
    );
    expect(tighter.report.simulated.total.rejected).toBeGreaterThan(same.report.simulated.total.rejected);
    expect(tighter.report.simulated.total.cost_nano_usd).toBeLessThan(
      same.report.simulated.total.cost_nano_usd,
    );
  });

  it("the day window resets at the tier's local midnight on the log's clock", async () => {
    // New York is UTC-5 in November: its midnight is 05:00 UTC; UTC midnight falls between.
    const lines = [
      ["2026-11-24T23:50:00.000Z", "a"], // 18:50 in New York, day 1: admitted
      ["2026-11-25T00:10:00.000Z", "b"], // 19:10 in New York, still day 1: over the day's budget
      ["2026-11-25T04:55:00.000Z", "c"], // 23:55 in New York, still day 1: over
      ["2026-11-25T05:05:00.000Z", "d"], // 00:05 in New York, day 2: admitted
    ].flatMap(([time, id]) => {
      const ms = Date.parse(time as string);
      return [
        decisionLine({ id: id as string, time_ms: ms, user: "ny", tier: "pro", before: 500, maxOutput: 100 }),
        settleLineOf({
          id: id as string,
          time_ms: ms + 1000,
          user: "ny",
          tier: "pro",
          input: 500,
          output: 100,
        }),
      ];
    });
    const path = join(dir, "midnight.jsonl");
    writeFileSync(path, lines.join(""));
    // One request (500 + 100 reserved, 600 charged) per day fits a 1 000-token day; two do not.
    const config = {
      features: { chat: { model: "gpt-4o", max_input: 1000, max_output: 100, on_exceed: "trim" } },
      tiers: { free: { daily_tokens: 10_000 }, pro: { daily_tokens: 1000, time_zone: "America/New_York" } },
    };
    const { outcomes } = await simulate(path, config);
    expect(outcomes).toEqual([
      "a allow ",
      "b reject user_budget_exceeded",
      "c reject user_budget_exceeded",
      "d allow ",
    ]);
    // With the day in UTC, the second request would have been the first of a new day.
    const utc = await simulate(path, { ...config, tiers: { ...config.tiers, pro: { daily_tokens: 1000 } } });
    expect(utc.outcomes).toEqual([
      "a allow ",
      "b allow ",
      "c reject user_budget_exceeded",
      "d reject user_budget_exceeded",
    ]);
  });

  it("inputs over a changed max_input: trimmed to the cap when the floor fits, refused otherwise; output re-charged at the new cap", async () => {
    const t = Date.parse("2026-11-24T12:00:00.000Z");
    // Logged with max_input 300: 500 tokens came in, trimmed to 250; trimming must keep 80.
    const trimmed = { before: 500, floor: 80, input: 250, maxInput: 300, maxOutput: 100 };
    const path = join(dir, "caps.jsonl");
    writeFileSync(
      path,
      decisionLine({ id: "x", time_ms: t, user: "u", tier: "free", decision: "trim", ...trimmed }) +
        settleLineOf({ id: "x", time_ms: t + 1, user: "u", tier: "free", input: 250, output: 90 }),
    );
    const run = async (chat: object) => {
      const config = {
        features: {
          chat: { model: "gpt-4o", max_output: 100, ...chat },
          sum: { model: "gpt-4o-mini", max_input: 1000, max_output: 100, on_exceed: "reject" },
        },
      };
      const { report, outcomes } = await simulate(path, config);
      return { outcome: outcomes[0], total: report.simulated.total };
    };
    // Same cap: exactly what was logged.
    expect(await run({ max_input: 300, on_exceed: "trim" })).toMatchObject({
      outcome: "x trim ",
      total: { input_tokens: 250, output_tokens: 90 },
    });
    // A smaller cap the floor fits: trimmed, counted at the cap.
    expect(await run({ max_input: 200, on_exceed: "trim" })).toMatchObject({
      outcome: "x trim ",
      total: { input_tokens: 200 },
    });
    // A cap below the floor: refused.
    expect((await run({ max_input: 60, on_exceed: "summarize", summarize_with: "sum" })).outcome).toBe(
      "x reject input_budget_exceeded",
    );
    // Truncate is assumed to fit.
    expect(await run({ max_input: 60, on_exceed: "truncate" })).toMatchObject({
      outcome: "x trim ",
      total: { input_tokens: 60 },
    });
    // reject refuses anything over the cap; a cap over the whole input lets it through untouched.
    expect((await run({ max_input: 300, on_exceed: "reject" })).outcome).toBe(
      "x reject input_budget_exceeded",
    );
    expect(await run({ max_input: 600, on_exceed: "reject" })).toMatchObject({
      outcome: "x allow ",
      total: { input_tokens: 500 },
    });
    // A lower output cap: the logged output is re-charged up to it.
    expect(await run({ max_input: 300, on_exceed: "trim", max_output: 40 })).toMatchObject({
      total: { output_tokens: 40 },
    });
  });
});

interface DecisionLineOptions {
  id: string;
  time_ms: number;
  user: string;
  tier: string;
  before: number;
  maxOutput: number;
  decision?: "allow" | "trim";
  floor?: number;
  input?: number;
  maxInput?: number;
}

/** A decision line as the gateway writes it (hand-made for windows and caps the test controls). */
function decisionLine(o: DecisionLineOptions): string {
  const input = o.input ?? o.before;
  return `${JSON.stringify({
    v: 1,
    type: "decision",
    time: new Date(o.time_ms).toISOString(),
    time_ms: o.time_ms,
    id: o.id,
    feature: "chat",
    user: o.user,
    tier: o.tier,
    model: "gpt-4o",
    decision: o.decision ?? "allow",
    code: null,
    store: "ok",
    messages: 3,
    input_tokens_before: o.before,
    ...(o.floor !== undefined ? { input_tokens_floor: o.floor } : {}),
    input_tokens: input,
    max_input: o.maxInput ?? 1000,
    trimmed_messages: o.decision === "trim" ? 1 : 0,
    truncated_messages: 0,
    summarized: false,
    max_output: o.maxOutput,
    n: 1,
    reserved_tokens: input + o.maxOutput,
  })}\n`;
}

function settleLineOf(o: {
  id: string;
  time_ms: number;
  user: string;
  tier: string;
  input: number;
  output: number;
}): string {
  return `${JSON.stringify({
    v: 1,
    type: "settle",
    time: new Date(o.time_ms).toISOString(),
    time_ms: o.time_ms,
    id: o.id,
    feature: "chat",
    user: o.user,
    tier: o.tier,
    model: "gpt-4o",
    status: "settled",
    usage_source: "provider",
    input_tokens: o.input,
    output_tokens: o.output,
    cached_input_tokens: 0,
    reasoning_tokens: 0,
    charged_tokens: o.input + o.output,
    cost_nano_usd: 0,
  })}\n`;
}
