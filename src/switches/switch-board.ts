import type { ResolvedConfig } from "../config/types.js";
import type { Logger } from "../core/logger.js";
import { pollEvery } from "../core/poll.js";
import type { Store } from "../stores/types.js";

/** Options of {@link createSwitchBoard}. */
export interface SwitchBoardOptions {
  config: ResolvedConfig;
  store: Store;
  logger: Logger;
  /** How often to re-read run-time switches from a shared store (ms); 0 disables polling. */
  refreshMs: number;
  /** The engine's clock (default: the system clock). */
  nowMs?: () => number;
}

/** Feature on/off state, read synchronously on the hot path. */
export interface SwitchBoard {
  /** True when `feature` is enabled (run-time switch, else the config's `enabled`). */
  isEnabled(feature: string): boolean;
  /** Flip a feature at run time (reaches other processes through the store); clears a tripped breaker. */
  set(feature: string, enabled: boolean): Promise<void>;
  /** The circuit breaker: switch `feature` off until `untilMs`, when it lapses by itself. */
  trip(feature: string, untilMs: number): Promise<void>;
  /** Re-read the store now. */
  refresh(): Promise<void>;
  close(): void;
}

/**
 * Keeps an in-memory snapshot of the switches so admission never waits on the store for them; the
 * snapshot is refreshed in the background when the store is shared (ARCHITECTURE §3 step 2).
 */
export function createSwitchBoard(opts: SwitchBoardOptions): SwitchBoard {
  const { config, store, logger } = opts;
  const now = opts.nowMs ?? Date.now;
  let overrides: Record<string, boolean> = {};
  /** Breakers tripped by this process, in force until the store's snapshot says otherwise. */
  const tripped = new Map<string, number>();

  /** Set while refreshes fail: said once when it starts and once when it ends, not at every poll. */
  let failing = false;
  const refresh = async () => {
    try {
      overrides = await store.getSwitches(now());
      // The store is the truth once read: a breaker it no longer holds (lapsed, or switched on by hand
      // elsewhere) is not kept alive here.
      tripped.clear();
      if (failing) {
        failing = false;
        logger.info({}, "feature switches read from the store again");
      }
    } catch (e) {
      // Keep the last known snapshot: a store outage must not flip features on or off.
      if (!failing) {
        failing = true;
        logger.warn(
          { err: e instanceof Error ? e.message : String(e) },
          "could not refresh feature switches; keeping the last known state until the store answers again",
        );
      }
    }
  };
  const stop = pollEvery(opts.refreshMs, refresh);
  return {
    isEnabled(feature) {
      const until = tripped.get(feature);
      if (until !== undefined) {
        if (now() < until) return false;
        tripped.delete(feature);
      }
      // Own properties only: a name like "__proto__" must read as an unknown feature (false).
      const o = Object.hasOwn(overrides, feature) ? overrides[feature] : undefined;
      if (typeof o === "boolean") return o;
      const f = Object.hasOwn(config.features, feature) ? config.features[feature] : undefined;
      return f?.enabled === true;
    },
    async set(feature, enabled) {
      await store.setSwitch(feature, enabled);
      tripped.delete(feature);
      overrides = { ...overrides, [feature]: enabled };
    },
    async trip(feature, untilMs) {
      tripped.set(feature, untilMs);
      await store.setSwitch(feature, false, untilMs, { keepLongerOff: true });
    },
    refresh,
    close: stop,
  };
}
