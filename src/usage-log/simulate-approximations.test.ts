/**
 * Replay fixes from the usage-log review (.scratch/review-usage.md findings 1, 6, 7, 8, 9): each test
 * failed before its fix.
 */
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadConfig } from "../config/load.js";
import { isTokenBudgetError } from "../core/errors.js";
import { silentLogger } from "../core/logger.js";
import type { ChatMessage } from "../core/types.js";
import { createMemoryStore } from "../stores/memory-store.js";
import { type Store, StoreUnavailableError } from "../stores/types.js";
import { createTokenfuse } from "../tokenfuse.js";
import { parseUsageLine } from "./parse.js";
import type { DecisionRecord } from "./record.js";
import { createSimulation } from "./simulate.js";
import { loggedDecision } from "./test-log-lines.js";

const dir = mkdtempSync(join(tmpdir(), "tf-simulate-review-"));
const logPath = () => join(dir, `${Math.random().toString(36).slice(2)}.jsonl`);

async function replayFile(path: string, config: object) {
  const outcomes: string[] = [];
  const sim = await createSimulation(loadConfig(config, {}), {
    onDecision: (_r, o) => outcomes.push(o.code ? `reject ${o.code}` : o.decision),
  });
  for (const l of readFileSync(path, "utf8").trimEnd().split("\n")) {
    const p = parseUsageLine(l);
    if (!p.ok) throw new Error(p.error);
    await sim.replay(p.record);
  }
  return { outcomes, report: await sim.finish() };
}

describe("finding 1: a lower max_input with trim", () => {
  const cfg = (maxInput: number) => ({
    features: { chat: { model: "gpt-4o", max_input: maxInput, max_output: 100, on_exceed: "trim" } },
    tiers: { free: { daily_tokens: 10_000_000 } },
    default_tier: "free",
  });
  const history: ChatMessage[] = [{ role: "system", content: "Be brief." }];
  for (let i = 0; i < 20; i++) {
    history.push({ role: "user", content: `question number ${i} about the weather in a few words please` });
    history.push({
      role: "assistant",
      content: `answer number ${i}: it is sunny and warm with a light breeze`,
    });
  }
  history.push({ role: "user", content: "and tomorrow?" });

  async function live(maxInput: number, path?: string) {
    const tf = createTokenfuse({
      config: path ? { ...cfg(maxInput), usage_log: { path } } : cfg(maxInput),
      logger: silentLogger,
      store: createMemoryStore(),
    });
    const out: string[] = [];
    const inputs: number[] = [];
    for (let i = 0; i < 5; i++) {
      try {
        const a = await tf.admit({ feature: "chat", user: "u", messages: history });
        out.push(a.decision);
        inputs.push(a.inputTokens);
        await a.settle({ prompt_tokens: a.inputTokens, completion_tokens: 20 });
      } catch (e) {
        if (!isTokenBudgetError(e)) throw e;
        out.push(`reject ${e.code}`);
      }
    }
    await tf.close();
    return { out, inputs };
  }

  it("a request logged under the old cap (no input_tokens_floor) replays as the engine decides: trimmed, at most the cap", async () => {
    const path = logPath();
    const logged = await live(2000, path); // the whole history fits: allowed, no floor logged
    expect(logged.out).toEqual(Array(5).fill("allow"));
    expect(readFileSync(path, "utf8")).not.toContain("input_tokens_floor");
    const truth = await live(300); // the candidate config, live
    expect(truth.out).toEqual(Array(5).fill("trim"));
    const { outcomes, report } = await replayFile(path, cfg(300));
    expect(outcomes).toEqual(truth.out);
    expect(report.simulated.total).toMatchObject({ trimmed: 5, rejected: 0, input_tokens: 5 * 300 });
    // Counted at the cap: an upper bound of what the engine keeps.
    for (const n of truth.inputs) expect(n).toBeLessThanOrEqual(300);
  });
});

describe("finding 6: store outages", () => {
  const config = {
    features: { chat: { model: "gpt-4o", max_input: 1000, max_output: 600, on_exceed: "reject" } },
    tiers: { free: { daily_tokens: 100000 } },
    default_tier: "free",
  };

  it("a refusal for a store outage is not replayed (listed apart), never admitted and charged", async () => {
    const path = logPath();
    const inner = createMemoryStore();
    let down = true;
    const store = new Proxy(inner, {
      get(t, p, r) {
        if (p === "reserve")
          return (req: never) => (down ? Promise.reject(new StoreUnavailableError("down")) : t.reserve(req));
        return Reflect.get(t, p, r);
      },
    }) as Store;
    const tf = createTokenfuse({ config: { ...config, usage_log: { path } }, logger: silentLogger, store });
    const msg = [{ role: "user" as const, content: "hello there" }];
    const code = await tf.admit({ feature: "chat", user: "u", messages: msg }).then(
      () => "admitted",
      (e) => (isTokenBudgetError(e) ? e.code : String(e)),
    );
    expect(code).toBe("budget_store_unavailable");
    down = false;
    await tf.close();
    const { outcomes, report } = await replayFile(path, config);
    expect(outcomes).toEqual([]);
    expect(report.simulated.total).toMatchObject({ requests: 0, cost_nano_usd: 0 });
    expect(report.charged_as_reserved).toBe(0);
    expect(report.store_unavailable_refusals).toBe(1);
    expect(report.logged.total.rejected_by_code).toEqual({ budget_store_unavailable: 1 });
  });

  it("admissions logged with store other than ok are counted apart", async () => {
    const path = logPath();
    const t = Date.parse("2026-11-24T12:00:00.000Z");
    const line = (id: string, store: string) => `${JSON.stringify({ ...loggedDecision(id, t), store })}\n`;
    writeFileSync(
      path,
      line("a", "ok") + line("b", "local") + line("c", "store_unavailable") + line("d", "local"),
    );
    const { report } = await replayFile(path, config);
    expect(report.simulated.total.allowed).toBe(4);
    expect(report.degraded_admissions).toEqual({ requests: 3, by_store: { local: 2, store_unavailable: 1 } });
  });

  it("the parser rejects an unknown store status", () => {
    const p = parseUsageLine(JSON.stringify({ ...loggedDecision("a", 1), store: "maybe" }));
    expect(p).toEqual({ ok: false, error: '"store" must be "ok", "store_unavailable" or "local"' });
  });
});

describe("finding 8: memory on a log of refusals", () => {
  it("holds nothing for requests the log shows refused", async () => {
    const sim = await createSimulation(
      loadConfig(
        {
          features: { chat: { model: "gpt-4o", max_input: 1000, max_output: 600, on_exceed: "trim" } },
          tiers: { free: { daily_tokens: 100 } }, // every request (610 tokens) is refused
          default_tier: "free",
        },
        {},
      ),
    );
    const t0 = Date.parse("2026-11-24T10:00:00Z");
    for (let i = 0; i < 500; i++)
      await sim.replay({
        ...(loggedDecision(`r${i}`, t0 + i) as unknown as DecisionRecord),
        decision: "reject",
        code: "user_budget_exceeded",
      });
    // A request the log shows admitted but the replay refuses is remembered until its settlement.
    await sim.replay(loggedDecision("x", t0 + 600) as unknown as DecisionRecord);
    expect(sim.held()).toBe(1);
    const r = await sim.finish();
    expect(r.simulated.total.rejected).toBe(501);
  });
});

describe("an output above its cap (the provider went over max_tokens)", () => {
  it("replayed with the same config is charged as logged; a lower cap caps it", async () => {
    const path = logPath();
    const cfg = (maxOutput: number) => ({
      features: { chat: { model: "gpt-4o", max_input: 1000, max_output: maxOutput, on_exceed: "reject" } },
      tiers: { free: { daily_tokens: 1_000_000 } },
      default_tier: "free",
    });
    const tf = createTokenfuse({
      config: { ...cfg(100), usage_log: { path } },
      clock: { nowMs: () => Date.parse("2026-11-24T12:00:00Z") },
      logger: silentLogger,
      store: createMemoryStore(),
    });
    const a = await tf.admit({ feature: "chat", user: "u", messages: [{ role: "user", content: "hi" }] });
    const r = await a.settle({ prompt_tokens: a.inputTokens, completion_tokens: 400 });
    await tf.close();
    const same = (await replayFile(path, cfg(100))).report;
    expect(same.logged.total.cost_nano_usd).toBe(r.costNanoUsd);
    expect(same.simulated.total.cost_nano_usd).toBe(r.costNanoUsd);
    const lower = (await replayFile(path, cfg(50))).report;
    // gpt-4o output: $10 / 1M = 10 000 nano-USD per token; 400 logged, 50 under the lower cap.
    expect((r.costNanoUsd ?? 0) - (lower.simulated.total.cost_nano_usd ?? 0)).toBe(350 * 10_000);
  });
});

/** A decision line's fields as the engine writes them: 10 tokens in, 600 out reserved. */
