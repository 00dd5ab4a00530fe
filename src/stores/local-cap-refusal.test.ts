/**
 * With on_error: local, a refusal by this process's local cap (a fraction of the limit, while the
 * shared store is unreachable) must not be reported as the scope's daily budget being
 * exhausted. Before the fix, the decision event carried `exhausted` with the full limit and the
 * local total, and the "exhausted its daily budget" alert was claimed and sent; the claim was then
 * spent for the day, so when the user really exhausted the budget later, no alert was sent.
 */
import { describe, expect, it } from "vitest";
import type { DecisionEvent } from "../core/engine.js";
import type { Logger } from "../core/logger.js";
import { GuardedStore } from "../stores/guarded-store.js";
import { MemoryStore } from "../stores/memory-store.js";
import { type ReserveRequest, type ReserveResult, StoreUnavailableError } from "../stores/types.js";
import { createTokenfuse } from "../tokenfuse.js";

/** The shared store: reservations fail while `down` (never sent); everything else answers. */
class FlakyShared extends MemoryStore {
  down = false;
  override async reserve(req: ReserveRequest): Promise<ReserveResult> {
    if (this.down) throw new StoreUnavailableError("connection is reconnecting", { notSent: true });
    return super.reserve(req);
  }
}

describe("on_error: local, a refusal by the per-process cap", () => {
  it("is not reported (nor alerted) as the daily budget exhausted, and the real exhaustion still alerts", async () => {
    const alerts: Array<{ kind: string; details?: unknown; msg: string }> = [];
    const logger: Logger = {
      info() {},
      error() {},
      warn(obj, msg = "") {
        const a = (obj as { alert?: { kind: string; details?: unknown } }).alert;
        if (a) alerts.push({ kind: a.kind, details: a.details, msg });
      },
    };
    const shared = new FlakyShared();
    const store = new GuardedStore({
      primary: shared,
      onError: "local",
      localLimitFraction: 0.1,
      logger,
      retryMs: 3_600_000,
    });
    const events: DecisionEvent[] = [];
    const nowMs = Date.UTC(2030, 0, 1, 12);
    const tf = createTokenfuse({
      config: {
        features: { chat: { model: "gpt-4o", max_input: 2000, max_output: 200, on_exceed: "reject" } },
        tiers: { free: { daily_tokens: 1000 } },
        default_tier: "free",
        global: { tokens_per_minute: 1_000_000 },
      },
      store,
      logger,
      clock: { nowMs: () => nowMs },
      events: { decision: (e) => events.push(e), settled() {} },
    });
    const messages = [{ role: "user" as const, content: "hello" }];
    try {
      // The shared store is unreachable: the local cap is 100 tokens, the request needs ~210.
      shared.down = true;
      const refused = await tf.admit({ feature: "chat", user: "alice", messages }).catch((e: unknown) => e);
      expect((refused as { code?: string }).code).toBe("user_budget_exceeded");
      // Not "retry after the day resets": the store may be back in a moment.
      expect((refused as { retryAfterMs?: number }).retryAfterMs).toBe(1000);
      // The store is back; alice uses her budget for real until it refuses her.
      shared.down = false;
      for (let i = 0; i < 10; i++) {
        const a = await tf.admit({ feature: "chat", user: "alice", messages }).catch(() => undefined);
        if (!a) break;
        await a.settle({ prompt_tokens: a.inputTokens, completion_tokens: 200 });
      }
      await new Promise((r) => setTimeout(r, 50));
    } finally {
      await tf.close();
    }
    const exhaustedEvents = events.filter((e) => e.exhausted).map((e) => e.exhausted);
    const exhaustedAlerts = alerts.filter((a) => a.kind === "daily_budget" && /exhausted/.test(a.msg));
    // The first refusal was the process's local cap (100 tokens), with 0 of 1000 used in the shared budget:
    // it is not the daily budget's exhaustion.
    expect(events[0]?.code, "the first decision is the local cap's refusal").toBe("user_budget_exceeded");
    expect(events[0]?.exhausted, "first refusal (local cap) reported as exhausted").toBeUndefined();
    expect(events[0]?.storeStatus, "refused for the store's outage").toBe("local");
    // The real exhaustion, later, is reported with the shared budget's own numbers.
    expect(exhaustedEvents).toHaveLength(1);
    expect(exhaustedEvents[0]?.limit).toBe(1000);
    expect(
      exhaustedAlerts.map((a) => a.msg),
      "exhausted alerts",
    ).toHaveLength(1);
    expect(exhaustedAlerts[0]?.msg, "the one exhausted alert").not.toMatch(/\(0 of 1000 tokens committed/);
  });
});

describe("on_error: deny, a refusal for the store's outage", () => {
  it("is reported with the store's state, so metrics do not label it store=ok", async () => {
    const shared = new FlakyShared();
    shared.down = true;
    const logger: Logger = { info() {}, warn() {}, error() {} };
    const store = new GuardedStore({ primary: shared, onError: "deny", logger, retryMs: 3_600_000 });
    const events: DecisionEvent[] = [];
    const tf = createTokenfuse({
      config: {
        features: { chat: { model: "gpt-4o", max_input: 2000, max_output: 200, on_exceed: "reject" } },
        tiers: { free: { daily_tokens: 1000 } },
        default_tier: "free",
      },
      store,
      logger,
      events: { decision: (e) => events.push(e), settled() {} },
    });
    try {
      const refused = await tf
        .admit({ feature: "chat", user: "alice", messages: [{ role: "user", content: "hello" }] })
        .catch((e: unknown) => e);
      expect((refused as { code?: string }).code).toBe("budget_store_unavailable");
      expect(events.map((e) => [e.decision, e.code, e.storeStatus])).toEqual([
        ["reject", "budget_store_unavailable", "store_unavailable"],
      ]);
    } finally {
      await tf.close();
    }
  });
});
