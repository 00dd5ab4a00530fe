import type { ResolvedConfig } from "../config/types.js";
import type { GlobalCostCap } from "../core/global-cost-cap.js";
import type { Logger } from "../core/logger.js";
import { spendKeys } from "../core/scopes.js";
import { hourWindow } from "../core/windows.js";
import { formatUsd } from "../cost/format-usd.js";
import type { Store } from "../stores/types.js";
import type { SwitchBoard } from "../switches/switch-board.js";
import { createClaimTokens } from "./claim-token.js";
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
  /**
   * `global.hourly_cost_usd` reached at `atMs` (the cap calls it from whichever read showed it):
   * claims the hour's alert in the store and sends it when this process wins. True when dealt with
   * (sent, or claimed by another process); false when the claim failed (asked again later).
   */
  capReached(atMs: number, spentNanoUsd: number): Promise<boolean>;
  /** Stops the background retry of breakers the store has not taken yet. */
  close(): void;
}

const hhmm = (ms: number) => new Date(ms).toISOString().slice(11, 16);

/** Backoff of the background retry of a breaker the store did not take (ms). */
const TRIP_RETRY_MIN_MS = 1000;
const TRIP_RETRY_MAX_MS = 30_000;

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
  /** `global.hourly_cost_usd`, when set: told each total read, and its reaching alerted once per hour. */
  globalCostCap?: GlobalCostCap | undefined;
  /** The engine's clock (default: the system clock); the background retry reads it. */
  nowMs?: () => number;
}): CostWatch {
  const { config, store, dispatcher, logger } = opts;
  /**
   * Claims this process asked this hour, in flight or answered (so concurrent events do not ask
   * again). A claim whose call failed is forgotten so a later event asks again. Why: one store blip
   * must not disable the breaker or lose the alert for the rest of the hour.
   */
  const tokens = createClaimTokens();
  const asked = new Set<string>();
  let askedHour = "";
  /**
   * Breakers whose claim this process won but whose switch the store has not taken yet (feature →
   * until). Why: the claim blocks every other process, so the winner alone must keep trying; the
   * local trip does not last (the next switch refresh drops what the store does not hold).
   */
  const pendingTrips = new Map<string, number>();
  let tripping: Promise<void> | undefined;
  let retryTimer: NodeJS.Timeout | undefined;
  let retryDelayMs = TRIP_RETRY_MIN_MS;

  /** Trips the breaker; false (logged) when the store did not take it. */
  const tryTrip = async (feature: string, untilMs: number): Promise<boolean> => {
    try {
      await opts.switches?.trip(feature, untilMs);
      return true;
    } catch (err) {
      logger.error(
        { feature, err: (err as Error).message },
        "hourly cost breaker: could not switch the feature off; retrying",
      );
      return false;
    }
  };

  /** Retries the pending trips, one pass at a time; lapsed ones (their hour is over) are dropped. */
  const retryTrips = (nowMs: number): Promise<void> => {
    tripping ??= (async () => {
      for (const [feature, untilMs] of [...pendingTrips]) {
        if (untilMs <= nowMs) pendingTrips.delete(feature);
        else if (await tryTrip(feature, untilMs)) {
          pendingTrips.delete(feature);
          logger.info({ feature }, "hourly cost breaker: feature switched off after a retry");
        }
      }
    })().finally(() => {
      tripping = undefined;
    });
    return tripping;
  };

  /** Retries in the background too: the process may see no further spend to retry on. */
  const scheduleRetry = () => {
    if (retryTimer !== undefined) return;
    retryTimer = setTimeout(() => {
      retryTimer = undefined;
      // The clock's now (the timer has no event time); the until only bounds how long to keep trying.
      void retryTrips((opts.nowMs ?? Date.now)()).then(() => {
        if (pendingTrips.size === 0) {
          retryDelayMs = TRIP_RETRY_MIN_MS;
          return;
        }
        retryDelayMs = Math.min(retryDelayMs * 2, TRIP_RETRY_MAX_MS);
        scheduleRetry();
      });
    }, retryDelayMs);
    retryTimer.unref();
  };

  /**
   * Claims an hour's alert in the store: true when this process sends it, false when another does,
   * undefined when the claim failed (logged; ask again later). If the failed call did take the
   * claim, asking again with its token wins it (claim-token.ts).
   */
  const claimHour = async (
    claim: string,
    hourEndMs: number,
    atMs: number,
    scope: string,
    failed: string,
  ): Promise<boolean | undefined> => {
    const token = tokens.tokenFor(claim);
    try {
      const won = await store.claimOnce(claim, hourEndMs + 3_600_000, atMs, token);
      tokens.answered(claim);
      return won;
    } catch (err) {
      tokens.failed(claim, token);
      logger.error({ scope, err: (err as Error).message }, failed);
      return undefined;
    }
  };

  return {
    async afterSpend(e) {
      if (pendingTrips.size > 0) await retryTrips(e.atMs);
      if (e.costNanoUsd <= 0) return;
      const featureCap = config.features[e.feature]?.hourlyCostNanoUsd;
      const globalCap = config.alerts.hourlyCostNanoUsd;
      const costCap = opts.globalCostCap ? config.global.hourlyCostNanoUsd : undefined;
      if (featureCap === undefined && globalCap === undefined && costCap === undefined) return;
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
      const globalKey = spendKeys.globalHour(hour.id);
      if (globalCap !== undefined) checks.push({ scope: "global", key: globalKey, cap: globalCap });
      // The global cost cap is told this read's total; its alert is raised from the cap, from this
      // read or its poll (capReached below).
      const keys = [...new Set([...checks.map((c) => c.key), ...(costCap !== undefined ? [globalKey] : [])])];
      let totals: Awaited<ReturnType<Store["readSpend"]>>;
      try {
        totals = await store.readSpend(keys);
      } catch (err) {
        // Alerting must never fail a request; the failure is logged (and the store's metrics count it).
        // Nothing was claimed, so the next event checks again.
        logger.error({ err: (err as Error).message }, "hourly cost check failed");
        return;
      }
      const spentOf = (key: string) => totals[keys.indexOf(key)]?.costNanoUsd ?? 0;
      if (costCap !== undefined) opts.globalCostCap?.observe(e.atMs, spentOf(globalKey));
      for (const c of checks) {
        const spent = spentOf(c.key);
        if (spent < c.cap) continue;
        // Every process past the line asks once per scope and hour; the store lets one of them win.
        const claim = `alert:hourly_cost:${c.scope}:${hour.id}`;
        if (asked.has(claim)) continue;
        asked.add(claim);
        const won = await claimHour(
          claim,
          hour.endMs,
          e.atMs,
          c.scope,
          "hourly cost alert claim failed; will ask again on the next spend",
        );
        // Failed: forget it so a later event asks again (each scope on its own).
        if (won === undefined) asked.delete(claim);
        if (!won) continue;
        // A feature's own hourly cap is a circuit breaker (SPEC §7): off until the next hour.
        const breaker = c.scope !== "global" && opts.switches !== undefined;
        let switchedOff = false;
        if (breaker) {
          switchedOff = await tryTrip(e.feature, hour.endMs);
          if (switchedOff)
            logger.warn(
              { feature: e.feature, spentNanoUsd: spent, until: new Date(hour.endMs).toISOString() },
              "hourly cost breaker: feature switched off until the next hour",
            );
          if (!switchedOff) {
            pendingTrips.set(e.feature, hour.endMs);
            scheduleRetry();
          }
        }
        // Sent once per claim whatever the trip did: a retried trip is logged, not alerted again.
        dispatcher.dispatch({
          kind: "hourly_cost",
          scope: c.scope,
          atMs: e.atMs,
          message: `${c.scope === "global" ? "all features" : c.scope.replace("feature:", "feature ")} spent ${formatUsd(spent)} in the hour from ${hour.id}:00Z (threshold ${formatUsd(c.cap)})${breaker ? (switchedOff ? `; switched off until ${hhmm(hour.endMs)}Z` : `; switching it off until ${hhmm(hour.endMs)}Z failed, retrying`) : ""}`,
          details: { spentNanoUsd: spent, thresholdNanoUsd: c.cap, hour: hour.id },
        });
      }
    },
    async capReached(atMs, spent) {
      const cap = config.global.hourlyCostNanoUsd;
      if (cap === undefined) return true;
      const hour = hourWindow(atMs);
      // One alert per hour across processes: the store's claim picks the sender (as above).
      const won = await claimHour(
        `alert:global_cost_cap:global:${hour.id}`,
        hour.endMs,
        atMs,
        "global",
        "global cost cap alert claim failed; will ask again on the next read",
      );
      if (won === undefined) return false;
      if (won)
        dispatcher.dispatch({
          kind: "global_cost_cap",
          scope: "global",
          atMs,
          message: `all features spent ${formatUsd(spent)} in the hour from ${hour.id}:00Z: the global hourly cost cap of ${formatUsd(cap)} is reached, every request is refused until ${hhmm(hour.endMs)}Z`,
          details: { spentNanoUsd: spent, capNanoUsd: cap, hour: hour.id },
        });
      return true;
    },
    close() {
      if (retryTimer !== undefined) clearTimeout(retryTimer);
      retryTimer = undefined;
      pendingTrips.clear();
    },
  };
}
