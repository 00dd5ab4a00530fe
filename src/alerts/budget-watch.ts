import type { DecisionEvent, EngineEvents } from "../core/engine.js";
import type { Logger } from "../core/logger.js";
import type { Store } from "../stores/types.js";
import { createClaimTokens } from "./claim-token.js";
import type { AlertDispatcher } from "./dispatcher.js";
import { createRunawayDetector, type RunawayOptions } from "./runaway-detector.js";

/**
 * Alerts derived from admission decisions, off the request path: daily budget thresholds (e.g. 80 %
 * and 100 % of a user's or a feature's daily tokens, counted as used + reserved), runaway
 * conversations/features, and requests admitted while the store is unavailable (SPEC §4 `allow`). Each is claimed in the store first, so one process sends it per scope and
 * window.
 */
export function createDecisionAlerts(opts: {
  store: Store;
  dispatcher: AlertDispatcher;
  logger: Logger;
  thresholds: number[];
  runaway?: Omit<RunawayOptions, "onAlert">;
}): EngineEvents {
  const { store, dispatcher, logger } = opts;
  // Claims this process asked, in flight or answered (so concurrent decisions do not ask again). A
  // claim whose call failed is forgotten so a later decision asks again: one store blip must not
  // lose the alert.
  const asked = new Set<string>();
  const tokens = createClaimTokens();
  const claimThenSend = (claim: string, expireAtMs: number, nowMs: number, send: () => void) => {
    if (asked.has(claim)) return;
    if (asked.size >= 100_000) asked.clear(); // bounded: at worst a claim is asked again (and refused)
    asked.add(claim);
    const token = tokens.tokenFor(claim);
    store.claimOnce(claim, expireAtMs, nowMs, token).then(
      (won) => {
        tokens.answered(claim);
        if (!won) return;
        try {
          send(); // only queues; should even that throw, the claim is spent: log it, never send twice
        } catch (e) {
          logger.error({ claim, err: (e as Error).message }, "alert could not be queued");
        }
      },
      (e: unknown) => {
        asked.delete(claim);
        tokens.failed(claim, token);
        logger.error(
          { claim, err: (e as Error).message },
          "alert claim failed; will ask again on the next decision",
        );
      },
    );
  };
  const runaway = createRunawayDetector({
    ...opts.runaway,
    onAlert: (a) => {
      const scope =
        a.kind === "conversation" ? `user:${a.user}:feature:${a.feature}` : `feature:${a.feature}`;
      const hour = Math.floor(a.atMs / 3_600_000);
      claimThenSend(`alert:runaway:${scope}:${hour}`, (hour + 2) * 3_600_000, a.atMs, () =>
        dispatcher.dispatch({
          kind: `runaway_${a.kind}`,
          scope,
          atMs: a.atMs,
          message: a.message,
          details: { series: a.series },
        }),
      );
    },
  });
  // Hours for which this process already alerted that the store was unavailable. Why not a claim in
  // the store as the other alerts: the store is the thing that is down. So each process sends its
  // own, at most once an hour (every process admitting without the store is worth knowing about).
  let storeAlertHour = Number.NEGATIVE_INFINITY;
  return {
    decision(e: DecisionEvent) {
      if (e.storeStatus !== undefined && e.decision !== "reject") {
        const hour = Math.floor(e.atMs / 3_600_000);
        if (hour !== storeAlertHour) {
          storeAlertHour = hour;
          dispatcher.dispatch({
            kind: "store_unavailable",
            scope: "store",
            atMs: e.atMs,
            message:
              e.storeStatus === "local"
                ? "the budget store is unavailable: requests are admitted within this process's local cap (on_error: local), not against the shared budgets"
                : "the budget store is unavailable: requests are admitted without budgets (on_error: allow) and their usage is settled when the store is back",
            details: { onError: e.storeStatus === "local" ? "local" : "allow" },
          });
        }
      }
      if (e.decision === "reject") {
        // Refused by a daily budget: that is the 100 % alert (the budget cannot take more requests).
        const b = e.exhausted;
        if (b && opts.thresholds.includes(1)) {
          claimThenSend(`alert:daily_budget:${b.key}:100`, b.resetAtMs + 3_600_000, e.atMs, () =>
            dispatcher.dispatch({
              kind: "daily_budget",
              scope: b.scope === "user" ? `user:${e.user}` : `feature:${e.feature}`,
              atMs: e.atMs,
              message: `${b.scope === "user" ? `user "${e.user}"` : `feature "${e.feature}"`} exhausted its daily budget (${b.committed} of ${b.limit} tokens committed; requests are refused until ${new Date(b.resetAtMs).toISOString()})`,
              details: { threshold: 1, committed: b.committed, limit: b.limit },
            }),
          );
        }
        return;
      }
      for (const b of e.dailyBudgets ?? []) {
        for (const t of opts.thresholds) {
          if (b.committed < t * b.limit) continue;
          const pct = Math.round(t * 100);
          claimThenSend(`alert:daily_budget:${b.key}:${pct}`, b.resetAtMs + 3_600_000, e.atMs, () =>
            dispatcher.dispatch({
              kind: "daily_budget",
              scope: b.scope === "user" ? `user:${e.user}` : `feature:${e.feature}`,
              atMs: e.atMs,
              message: `${b.scope === "user" ? `user "${e.user}"` : `feature "${e.feature}"`} has committed ${pct >= 100 ? "all" : `${pct} %`} of its daily budget (${b.committed} of ${b.limit} tokens)`,
              details: { threshold: t, committed: b.committed, limit: b.limit },
            }),
          );
        }
      }
      if (e.unpricedModel !== undefined) {
        // unknown_price: allow_and_alert — admitted, but never silently counted as free.
        const day = new Date(e.atMs).toISOString().slice(0, 10);
        const model = e.unpricedModel;
        claimThenSend(`alert:unknown_price:${model}:${day}`, e.atMs + 86_400_000, e.atMs, () =>
          dispatcher.dispatch({
            kind: "unknown_price",
            scope: `model:${model}`,
            atMs: e.atMs,
            message: `model "${model}" has no known price: its requests are admitted (unknown_price: allow_and_alert) but their cost is not counted; add it under prices:`,
          }),
        );
      }
      if (e.inputTokens !== undefined && e.messageCount !== undefined) {
        runaway.observe({
          atMs: e.atMs,
          user: e.user,
          feature: e.feature,
          inputTokens: e.inputTokens,
          messageCount: e.messageCount,
        });
      }
    },
    settled() {},
  };
}
