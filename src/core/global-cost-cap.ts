import type { Store } from "../stores/types.js";
import type { Logger } from "./logger.js";
import { pollEvery } from "./poll.js";
import { spendKeys } from "./scopes.js";
import { hourWindow } from "./windows.js";

/** Why a request is refused by the global hourly cost cap. */
export interface CostCapReached {
  spentNanoUsd: number;
  capNanoUsd: number;
  /** The end of the hour (ms): the cap no longer refuses from then on. */
  resetAtMs: number;
}

/**
 * `global.hourly_cost_usd` (SPEC §4, §5): once the settled spend of the current UTC hour, across
 * every feature and process, has reached the cap, every request is refused with
 * `global_rate_limited` until the hour ends.
 *
 * Why a breaker on settled spend and not a reservation of cost: what a request costs is known only
 * when it is settled (its output, cached input and reasoning tokens), and a reservation of the
 * worst case (max_output at the output price) would refuse long before the cap is really spent.
 * The bound, documented: requests already admitted when the cap is reached finish and are charged,
 * and another process learns of the total within `refreshMs`, so an hour can end above the cap by
 * what was in flight then.
 *
 * The hot path reads a number (`reached`) and never waits on the store: the total comes from the
 * reads the cost watch makes after each settlement with cost (`observe`) and from a poll of the
 * hour's global spend counter every `refreshMs` (what other processes spent).
 */
export interface GlobalCostCap {
  /** Set when this hour's global spend has reached the cap at `nowMs`: refuse. */
  reached(nowMs: number): CostCapReached | undefined;
  /** A total of the global spend counter of the hour holding `atMs`, as read from the store. */
  observe(atMs: number, spentNanoUsd: number): void;
  /** Reads the current hour's global spend now. Never rejects (a failure is logged once). */
  refresh(): Promise<void>;
  close(): void;
}

export function createGlobalCostCap(opts: {
  capNanoUsd: number;
  store: Store;
  logger: Logger;
  /** How often to read the hour's global spend (ms); 0: never (a single process learns from `observe`). */
  refreshMs: number;
  nowMs: () => number;
  /**
   * Told when a read first shows this hour's spend at the cap, whichever read it was (after a
   * settlement, or the poll); resolves true once the hour's alert is dealt with (sent, or another
   * process claimed it), false to be told again on the next read. Why from any read: the read
   * after the crossing settlement may fail, and once the cap refuses, no settlement comes again.
   */
  onReached?: (atMs: number, spentNanoUsd: number) => Promise<boolean>;
}): GlobalCostCap {
  const cap = opts.capNanoUsd;
  let hourStartMs = Number.NEGATIVE_INFINITY;
  let hourEndMs = Number.NEGATIVE_INFINITY;
  let spent = 0;
  let failing = false;
  /** The hour whose reaching was dealt with (onReached said so), and whether a call is under way. */
  let reportedHourStartMs = Number.NEGATIVE_INFINITY;
  let reporting = false;

  const report = (atMs: number) => {
    if (!opts.onReached || reporting || spent < cap || reportedHourStartMs === hourStartMs) return;
    reporting = true;
    const hour = hourStartMs;
    opts
      .onReached(atMs, spent)
      .then(
        (done) => {
          if (done) reportedHourStartMs = hour;
        },
        () => {},
      )
      .finally(() => {
        reporting = false;
      });
  };

  const observe = (atMs: number, total: number) => {
    if (!Number.isFinite(total)) return;
    const w = hourWindow(atMs);
    if (w.startMs === hourStartMs) {
      // Totals only grow within an hour; a read that started before a later one may answer after it.
      if (total > spent) spent = total;
    } else if (w.startMs > hourStartMs) {
      hourStartMs = w.startMs;
      hourEndMs = w.endMs;
      spent = total;
    }
    if (w.startMs === hourStartMs) report(atMs);
  };

  const refresh = async () => {
    const atMs = opts.nowMs();
    let total: number;
    try {
      const [t] = await opts.store.readSpend([spendKeys.globalHour(hourWindow(atMs).id)]);
      total = t?.costNanoUsd ?? 0;
    } catch (e) {
      if (!failing) {
        failing = true;
        opts.logger.warn(
          { err: e instanceof Error ? e.message : String(e) },
          "could not read the hour's global spend for global.hourly_cost_usd; keeping the last known total",
        );
      }
      return;
    }
    if (failing) {
      failing = false;
      opts.logger.info({}, "the hour's global spend is read from the store again");
    }
    observe(atMs, total);
  };

  const stop = pollEvery(opts.refreshMs, refresh);

  return {
    reached(nowMs) {
      if (spent < cap || nowMs < hourStartMs || nowMs >= hourEndMs) return undefined;
      return { spentNanoUsd: spent, capNanoUsd: cap, resetAtMs: hourEndMs };
    },
    observe,
    refresh,
    close: stop,
  };
}
