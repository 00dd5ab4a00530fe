/**
 * Replay fixes from the usage-log review (.scratch/review-usage.md findings 1, 6, 7, 8, 9): each test
 * failed before its fix.
 */
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadConfig } from "../config/load.js";
import { isTokenBudgetError } from "../core/errors.js";
import { silentLogger } from "../core/logger.js";
import type { ChatMessage } from "../core/types.js";
import { createMemoryStore } from "../stores/memory-store.js";
import { createTokenfuse } from "../tokenfuse.js";
import { parseUsageLine } from "./parse.js";
import { createSimulation } from "./simulate.js";

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
