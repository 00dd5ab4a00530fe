import type { ResolvedConfig } from "../config/types.js";
import type { Logger } from "../core/logger.js";
import { spendKeys } from "../core/scopes.js";
import { hourWindow } from "../core/windows.js";
import type { Store } from "../stores/types.js";
import type { SwitchBoard } from "../switches/switch-board.js";
import type { AlertDispatcher } from "./dispatcher.js";

/** What the watch is told after each settlement that added spend. */
export interface SpendEvent {
  feature: string;
  atMs: number;
  costNanoUsd: number;
}

/** Checks hourly cost thresholds after settlements and raises each alert once per scope and hour. */
export interface CostWatch {
  afterSpend(e: SpendEvent): Promise<void>;
}

const usd = (nano: number) => `$${(nano / 1e9).toFixed(2)}`;

/**
 * Hourly cost alerts (SPEC §7): `alerts.hourly_cost_usd` for the whole deployment and a feature's
 * `hourly_cost_usd`. After a settlement that added cost, the hour's counters are read (only when a
 * threshold is configured for that scope) and a crossing is claimed in the store, so exactly one
 * process sends the alert for a scope and hour however many saw the crossing. Sending happens on the
 * dispatcher, off the request path.
 */
export function createCostWatch(opts: {
  config: ResolvedConfig;
  store: Store;
  dispatcher: AlertDispatcher;
  logger: Logger;
  /** When given, a feature crossing its own `hourly_cost_usd` is switched off until the next hour. */
  switches?: SwitchBoard;
}): CostWatch {
  const { config, store, dispatcher } = opts;
  const asked = new Set<string>(); // claims this process already tried (pruned when the hour changes)
  let askedHour = "";
  return {
    async afterSpend(e) {
      if (e.costNanoUsd <= 0) return;
      const featureCap = config.features[e.feature]?.hourlyCostNanoUsd;
      const globalCap = config.alerts.hourlyCostNanoUsd;
      if (featureCap === undefined && globalCap === undefined) return;
      const hour = hourWindow(e.atMs);
      if (hour.id !== askedHour) {
        asked.clear();
        askedHour = hour.id;
      }
      const checks: Array<{ scope: string; key: string; cap: number }> = [];
      if (featureCap !== undefined)
        checks.push({
          scope: `feature:${e.feature}`,
          key: spendKeys.featureHour(e.feature, hour.id),
          cap: featureCap,
        });
      if (globalCap !== undefined)
        checks.push({ scope: "global", key: spendKeys.globalHour(hour.id), cap: globalCap });
      try {
        const totals = await store.readSpend(checks.map((c) => c.key));
        for (const [i, c] of checks.entries()) {
          const spent = totals[i]?.costNanoUsd ?? 0;
          if (spent < c.cap) continue;
          // Every process past the line asks once per scope and hour; the store lets one of them win.
          const claim = `alert:hourly_cost:${c.scope}:${hour.id}`;
          if (asked.has(claim)) continue;
          asked.add(claim);
          if (!(await store.claimOnce(claim, hour.endMs + 3_600_000, e.atMs))) continue;
          // A feature's own hourly cap is a circuit breaker (SPEC §7): off until the next hour.
          const breaker = c.scope !== "global" && opts.switches !== undefined;
          if (breaker) await opts.switches?.trip(e.feature, hour.endMs);
          dispatcher.dispatch({
            kind: "hourly_cost",
            scope: c.scope,
            atMs: e.atMs,
            message: `${c.scope === "global" ? "all features" : c.scope.replace("feature:", "feature ")} spent ${usd(spent)} in the hour from ${hour.id}:00Z (threshold ${usd(c.cap)})${breaker ? `; switched off until ${new Date(hour.endMs).toISOString().slice(11, 16)}Z` : ""}`,
            details: { spentNanoUsd: spent, thresholdNanoUsd: c.cap, hour: hour.id },
          });
        }
      } catch (err) {
        // Alerting must never fail a request; the failure is logged (and the store's metrics count it).
        opts.logger.error({ err: (err as Error).message }, "hourly cost check failed");
      }
    },
  };
}
