import type { AlertSink } from "./alerts/types.js";
import { defaultConfig, loadConfig } from "./config/load.js";
import type { ResolvedConfig } from "./config/types.js";
import { createConfiguredEngine } from "./configured-engine.js";
import type { Admission, BudgetReport, EngineEvents, SummaryProvider } from "./core/engine.js";
import { TokenBudgetError } from "./core/errors.js";
import { createLogger, type Logger } from "./core/logger.js";
import type { AdmitRequest } from "./core/request.js";
import type { Clock } from "./core/types.js";
import { createStoreFromConfig } from "./stores/from-config.js";
import type { Store } from "./stores/types.js";

/** Options of {@link createTokenfuse}. */
export interface TokenfuseOptions {
  /** Path of a YAML/JSON config file, or a config object of the same shape; default: the built-in example. */
  config?: string | Record<string, unknown> | undefined;
  /** Store to use instead of the one the config names. */
  store?: Store | undefined;
  clock?: Clock | undefined;
  logger?: Logger | undefined;
  /** Raw provider call used by features with `on_exceed: summarize` (budgeted under `summarize_with`). */
  summarizer?: SummaryProvider | undefined;
  /** Observer of decisions and settlements. */
  events?: EngineEvents | undefined;
  /** Environment for `${env:NAME}` interpolation (default `process.env`). */
  env?: Record<string, string | undefined> | undefined;
  /**
   * Alert sinks of your own (SPEC §7: "more by plugin"), given every alert besides the config's
   * `alerts.sinks`: each `{ name, send(alert, signal) }`; `send` rejects on failure and should give
   * up when `signal` aborts (the delivery timeout; an attempt still under way 100 ms later is failed
   * for it, not retried). A failing sink is logged and never fails a request or the other sinks.
   */
  alertSinks?: readonly AlertSink[] | undefined;
}

/** Checks the plugin sinks before anything starts: a wrong one is named, not found at the first alert. */
function checkAlertSinks(sinks: readonly AlertSink[] | undefined): void {
  if (sinks === undefined) return;
  if (!Array.isArray(sinks))
    throw new TypeError("alertSinks must be an array of { name, send(alert, signal) }");
  sinks.forEach((s: unknown, i) => {
    const sink = s as Partial<AlertSink> | null;
    if (typeof sink !== "object" || sink === null || typeof sink.name !== "string" || sink.name === "")
      throw new TypeError(`alertSinks[${i}] needs a non-empty string name`);
    if (typeof sink.send !== "function")
      throw new TypeError(`alertSinks[${i}] (${sink.name}) needs a send(alert, signal) function`);
  });
}

/** The library API (SPEC §9). */
export interface Tokenfuse {
  /** The resolved configuration in use. */
  readonly config: ResolvedConfig;
  /** Admit a request: returns what to send, or throws {@link TokenBudgetError}. */
  admit(req: AdmitRequest): Promise<Admission>;
  /** Every scope's budget for a user (the same document as the gateway's `GET /v1/budget`). */
  remaining(q: { user: string; tier?: string; features?: string[] }): Promise<BudgetReport>;
  /** Switch a feature on or off at run time (off → `feature_disabled`). */
  setFeatureEnabled(feature: string, enabled: boolean): Promise<void>;
  /** Whether a feature is currently enabled. */
  isFeatureEnabled(feature: string): boolean;
  /**
   * Opens the usage log file again (`usage_log.path`), e.g. from your SIGHUP handler after logrotate
   * moved it away. Nothing when there is no usage log or it goes to stdout.
   */
  reopenUsageLog(): void;
  /** Release the store and timers, and flush and close the usage log (call it after the last settle). */
  close(): Promise<void>;
}

/**
 * Creates a tokenfuse instance (SPEC §9). The memory store is used unless the config names another
 * store or one is passed in.
 */
export function createTokenfuse(options: TokenfuseOptions = {}): Tokenfuse {
  checkAlertSinks(options.alertSinks);
  const logger = options.logger ?? createLogger();
  const config =
    options.config === undefined
      ? defaultConfig(options.env ?? process.env)
      : loadConfig(options.config, options.env ?? process.env);
  const store = options.store ?? createStoreFromConfig(config.store, logger);
  let configured: ReturnType<typeof createConfiguredEngine>;
  try {
    configured = createConfiguredEngine({
      config,
      store,
      logger,
      clock: options.clock,
      summaryProvider: options.summarizer,
      events: options.events,
      alertSinks: options.alertSinks,
    });
  } catch (e) {
    // A usage log that cannot be opened: release the store this call created (a Redis connection).
    if (!options.store) void store.close().catch(() => {});
    throw e;
  }
  const { engine, switches, ready } = configured;
  const usedStore = store;
  return {
    config,
    async admit(req) {
      await ready;
      return engine.admit(req);
    },
    async remaining(q) {
      await ready;
      return engine.remaining(q);
    },
    async setFeatureEnabled(feature, enabled) {
      if (!Object.hasOwn(config.features, feature)) {
        throw new TokenBudgetError({
          code: "unknown_feature",
          message: `unknown feature "${feature}"`,
          scope: "request",
        });
      }
      if (typeof enabled !== "boolean") throw new TypeError("enabled must be a boolean");
      await ready;
      await switches.set(feature, enabled);
    },
    isFeatureEnabled: (feature) => switches.isEnabled(feature),
    reopenUsageLog: () => configured.usageLog?.reopen(),
    async close() {
      await configured.close();
      await usedStore.close();
    },
  };
}
