import { createDecisionAlerts } from "./alerts/budget-watch.js";
import { createCostWatch } from "./alerts/cost-watch.js";
import { type AlertDispatcher, createAlertDispatcher } from "./alerts/dispatcher.js";
import { createLogSink, createWebhookSink } from "./alerts/sinks.js";
import type { AlertSink } from "./alerts/types.js";
import type { FeatureConfig, ResolvedConfig } from "./config/types.js";
import { createEngine, type Engine, type EngineEvents, type SummaryProvider } from "./core/engine.js";
import { createGlobalCostCap } from "./core/global-cost-cap.js";
import type { Logger } from "./core/logger.js";
import { type Clock, systemClock } from "./core/types.js";
import { createPriceTable } from "./cost/price-table.js";
import type { Store } from "./stores/types.js";
import { createSwitchBoard, type SwitchBoard } from "./switches/switch-board.js";
import { tokenizerForModel } from "./tokenizers/index.js";
import type { ChatTokenizer } from "./tokenizers/types.js";
import { openUsageLog, type UsageLog } from "./usage-log/writer.js";

/** Extra time an unsettled reservation outlives its upstream's timeout (ms). */
const RESERVATION_MARGIN_MS = 60_000;
/** Upstream timeout assumed when a feature's upstream is unknown (ms). */
const DEFAULT_CALL_TIMEOUT_MS = 600_000;

/**
 * The config for a run that must touch nothing shared (`tokenfuse demo`, `tokenfuse simulate`): the
 * memory store whatever the config's `store` says, alerts only to this process's log, and no usage
 * log (its decisions are not real traffic). Pair it with a memory store of its own.
 */
export function isolatedConfig(config: ResolvedConfig): ResolvedConfig {
  return {
    ...config,
    store: { kind: "memory" },
    alerts: { ...config.alerts, sinks: [{ type: "log" }] },
    usageLog: undefined,
  };
}

/** What the library and the gateway both run on. */
export interface ConfiguredEngine {
  engine: Engine;
  switches: SwitchBoard;
  /** Alerts go through it, off the request path. */
  alerts: AlertDispatcher;
  /** Resolves once the feature switches were first read from the store. */
  ready: Promise<void>;
  /** The usage log, when the config names one (`usage_log`). */
  usageLog: UsageLog | undefined;
  /**
   * Stops timers, delivers queued alerts (best effort), then flushes and closes the usage log. Call
   * it after the last settlement: lines of later events are dropped (and counted).
   */
  close(): Promise<void>;
}

/**
 * Wires the engine the same way for the library and the gateway: tokenizers, the price table, the
 * feature switches (polled when the store is shared) and reservation lifetimes derived from each
 * feature's upstream timeout.
 */
export function createConfiguredEngine(opts: {
  config: ResolvedConfig;
  store: Store;
  logger: Logger;
  clock?: Clock | undefined;
  summaryProvider?: SummaryProvider | undefined;
  events?: EngineEvents | undefined;
  /** Token counting per model (default: the real tokenizers; `simulate` counts from the log). */
  tokenizerFor?: ((model: string) => ChatTokenizer) | undefined;
  /** Sinks of the caller's own (plugins), given every alert besides the config's sinks. */
  alertSinks?: readonly AlertSink[] | undefined;
}): ConfiguredEngine {
  const { config, store, logger } = opts;
  // First, so that a usage log path that cannot be opened (a ConfigError) leaves nothing running.
  const usageLog = config.usageLog ? openUsageLog(config.usageLog, config, { logger }) : undefined;
  if (usageLog) logger.info({ destination: usageLog.destination }, "usage log on");
  const clock = opts.clock ?? systemClock;
  const switches = createSwitchBoard({
    config,
    store,
    logger,
    refreshMs: store.kind === "memory" ? 0 : 500,
    nowMs: () => clock.nowMs(),
  });
  const upstreamTimeout = (f: FeatureConfig) => {
    const u = f.upstream ? config.upstreams.find((x) => x.name === f.upstream) : config.upstreams[0];
    return u?.timeoutMs ?? DEFAULT_CALL_TIMEOUT_MS;
  };
  const alerts = createAlertDispatcher({
    logger,
    sinks: [
      ...config.alerts.sinks.map((s) =>
        s.type === "log" ? createLogSink(logger) : createWebhookSink({ url: s.url, secret: s.secret }),
      ),
      ...(opts.alertSinks ?? []),
    ],
  });
  const globalCostCap =
    config.global.hourlyCostNanoUsd === undefined
      ? undefined
      : createGlobalCostCap({
          capNanoUsd: config.global.hourlyCostNanoUsd,
          store,
          logger,
          // Shared store: other processes' spend is read as often as the switches are.
          refreshMs: store.kind === "memory" ? 0 : 500,
          nowMs: () => clock.nowMs(),
          // The cost watch is made just below; called only once reads have begun.
          onReached: (atMs, spent) => costWatch.capReached(atMs, spent),
        });
  const costWatch = createCostWatch({
    config,
    store,
    dispatcher: alerts,
    logger,
    switches,
    globalCostCap,
    nowMs: () => clock.nowMs(),
  });
  const engine = createEngine({
    config,
    store,
    switches,
    clock,
    logger,
    tokenizerFor: opts.tokenizerFor ?? tokenizerForModel,
    prices: createPriceTable(config.prices),
    summaryProvider: opts.summaryProvider,
    measureInputs: usageLog !== undefined,
    events: combineEvents(
      combineEvents(
        opts.events,
        createDecisionAlerts({
          store,
          dispatcher: alerts,
          logger,
          thresholds: config.alerts.dailyBudgetThresholds,
        }),
        logger,
      ),
      usageLog?.events,
      logger,
    ),
    reservationTtlMs: (f) => upstreamTimeout(f) + RESERVATION_MARGIN_MS,
    afterSpend: (e) => costWatch.afterSpend(e),
    globalCostCap,
  });
  return {
    engine,
    switches,
    alerts,
    ready: Promise.all([switches.refresh(), globalCostCap?.refresh()]).then(() => undefined),
    usageLog,
    async close() {
      // Settlements already under way reach the store (and their alerts and usage-log lines are
      // made) before anything closes, timers included (a cost check of theirs may start a breaker
      // retry); bounded: a stalled store must not hold a stop.
      await Promise.race([engine.settlementsDone(), new Promise((r) => setTimeout(r, 5000).unref())]);
      switches.close();
      costWatch.close();
      globalCostCap?.close();
      const flushed = alerts.drain();
      await Promise.race([flushed, new Promise((r) => setTimeout(r, 2000).unref())]);
      await alerts.close();
      if (usageLog) {
        // What arrives after the close is dropped, counted and said once. Bounded too: a
        // destination that stopped reading (a stuck log shipper on stdout) must not hold the stop;
        // what it did not take is said, never lost silently.
        const closed = await Promise.race([
          usageLog.close().then(() => true),
          new Promise<false>((r) => setTimeout(() => r(false), 5000).unref()),
        ]);
        if (!closed)
          logger.error(
            { destination: usageLog.destination },
            "usage log: the destination took nothing for 5 s at shutdown; the lines not yet written are lost",
          );
      }
    },
  };
}

/**
 * Both observers see every event (the first one first). Why each call is guarded: an observer that
 * throws (a caller's own `events`, say) must not keep the next from seeing the event — the usage
 * log would miss the line — nor fail the request whose event it was (the reservation is made).
 */
function combineEvents(a: EngineEvents | undefined, b: EngineEvents, logger: Logger): EngineEvents;
function combineEvents(a: EngineEvents, b: EngineEvents | undefined, logger: Logger): EngineEvents;
function combineEvents(
  a: EngineEvents | undefined,
  b: EngineEvents | undefined,
  logger: Logger,
): EngineEvents | undefined {
  if (!a) return b;
  if (!b) return a;
  const failed = (e: unknown) =>
    logger.error({ err: e instanceof Error ? e.message : String(e) }, "an engine event observer threw");
  return {
    decision(e) {
      try {
        a.decision(e);
      } catch (err) {
        failed(err);
      }
      try {
        b.decision(e);
      } catch (err) {
        failed(err);
      }
    },
    settled(e) {
      try {
        a.settled(e);
      } catch (err) {
        failed(err);
      }
      try {
        b.settled(e);
      } catch (err) {
        failed(err);
      }
    },
  };
}
