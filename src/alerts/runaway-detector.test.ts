import { describe, expect, it } from "vitest";
import { silentLogger } from "../core/logger.js";
import type { ChatMessage } from "../core/types.js";
import { createMemoryStore } from "../stores/memory-store.js";
import { createTokenfuse } from "../tokenfuse.js";
import { createRunawayDetector, type RunawayAlert } from "./runaway-detector.js";

const WORDS = "the budget grows with every turn because the whole history is sent again".split(" ");
const text = (seed: number, n: number) =>
  Array.from({ length: n }, (_, i) => WORDS[(seed * 7 + i) % WORDS.length]).join(" ");

describe("runaway detection", () => {
  it("replay of the incident: each request re-sends all earlier history; the alert fires while every request is within its budgets", async () => {
    let now = Date.parse("2026-11-24T09:00:00Z");
    const alerts: RunawayAlert[] = [];
    const detector = createRunawayDetector({ onAlert: (a) => alerts.push(a) });
    const tf = createTokenfuse({
      config: {
        features: { chat: { model: "gpt-4o", max_input: 4000, max_output: 500, on_exceed: "trim" } },
        tiers: { pro: { daily_tokens: 100_000 } },
        default_tier: "pro",
      },
      store: createMemoryStore(),
      logger: silentLogger,
      clock: { nowMs: () => now },
      events: {
        decision: (e) => {
          if (e.decision !== "reject" && e.inputTokens !== undefined && e.messageCount !== undefined) {
            detector.observe({
              atMs: e.atMs,
              user: e.user,
              feature: e.feature,
              inputTokens: e.inputTokens,
              messageCount: e.messageCount,
            });
          }
        },
        settled: () => {},
      },
    });
    const history: ChatMessage[] = [{ role: "system", content: "You are a helpful assistant." }];
    let alertedAt = -1;
    for (let turn = 1; turn <= 30 && alertedAt < 0; turn++) {
      history.push({ role: "user", content: text(turn, 120) });
      const a = await tf.admit({ feature: "chat", user: "runaway", messages: history });
      // Every request so far is within its budgets: admitted untrimmed, under max_input, budget left.
      expect(a.decision).toBe("allow");
      expect(a.inputTokens).toBeLessThan(4000);
      expect(a.userDay.remaining).toBeGreaterThan(0);
      await a.settle({ prompt_tokens: a.inputTokens, completion_tokens: 100 });
      history.push({ role: "assistant", content: text(turn + 100, 100) });
      now += 20_000;
      if (alerts.length > 0) alertedAt = turn;
    }
    expect(alertedAt).toBe(5);
    expect(alerts[0]).toMatchObject({ kind: "conversation", feature: "chat", user: "runaway" });
    expect(alerts[0]?.series).toHaveLength(5);
    expect(alerts[0]?.message).toMatch(/re-sends a growing history/);
  });

  it("a conversation that grows and then is trimmed, or restarts, does not alert; one alert per run", () => {
    const alerts: RunawayAlert[] = [];
    const d = createRunawayDetector({ onAlert: (a) => alerts.push(a) });
    const obs = (messageCount: number, inputTokens: number) =>
      d.observe({ atMs: 0, user: "u", feature: "f", inputTokens, messageCount });
    obs(2, 100);
    obs(4, 150);
    obs(6, 190); // growing but under 2× in 3 requests
    obs(2, 80); // new conversation
    for (const [m, t] of [
      [4, 150],
      [6, 230],
      [8, 320],
      [10, 420],
    ] as const)
      obs(m, t);
    expect(alerts).toHaveLength(1);
    obs(12, 500);
    obs(14, 600);
    expect(alerts).toHaveLength(1); // the same run alerts once
    obs(16, 590); // growth stopped (trim): the run ends
    for (const [m, t] of [
      [18, 600],
      [20, 700],
      [22, 900],
      [24, 1300],
    ] as const)
      obs(m, t);
    expect(alerts).toHaveLength(2);
  });

  it("feature-level: the average input per request rising window after window alerts once", () => {
    const alerts: RunawayAlert[] = [];
    const d = createRunawayDetector({ onAlert: (a) => alerts.push(a), windowMs: 60_000, featureWindows: 4 });
    const averages = [200, 260, 330, 420, 520, 530];
    averages.forEach((avg, w) => {
      for (let i = 0; i < 3; i++) {
        // Different users, one message each: no conversation grows, only the feature's average.
        d.observe({
          atMs: w * 60_000 + i * 1000,
          user: `u${w}-${i}`,
          feature: "summarize",
          inputTokens: avg - 10 + i * 10,
          messageCount: 1,
        });
      }
    });
    d.observe({ atMs: 6 * 60_000, user: "x", feature: "summarize", inputTokens: 500, messageCount: 1 });
    expect(alerts.filter((a) => a.kind === "feature")).toHaveLength(1);
    expect(alerts[0]?.series).toEqual([200, 260, 330, 420]);
  });
});
