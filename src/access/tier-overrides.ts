import type { ResolvedConfig } from "../config/types.js";
import type { Logger } from "../core/logger.js";
import type { Store } from "../stores/types.js";
import { createPolledTable } from "./polled-table.js";

/** Options of {@link createTierOverrides}. */
export interface TierOverridesOptions {
  config: ResolvedConfig;
  store: Store;
  logger: Logger;
  /** How often to re-read a shared store (ms); 0 disables polling (the memory store). */
  refreshMs: number;
}

/** Run-time tier overrides (admin API), read synchronously on the hot path. */
export interface TierOverrides {
  /** The run-time tier of `user` (as budgets are charged: `alice`, `backend/u1`), if any. */
  get(user: string): string | undefined;
  /** Sets (or with `undefined` clears) `user`'s run-time tier in the store; this process sees it at once. */
  set(user: string, tier: string | undefined): Promise<void>;
  /** Re-read the store now. */
  refresh(): Promise<void>;
  close(): void;
}

/**
 * Keeps the store's tier overrides in memory (refreshed in the background like the feature switches,
 * so every process on a shared store applies a change within a second and no request waits on the
 * store for it). An override naming a tier this config does not define is ignored, with a warning:
 * the key's own tier applies instead (an unknown tier would refuse every request of that user).
 */
export function createTierOverrides(opts: TierOverridesOptions): TierOverrides {
  const { config, store, logger } = opts;
  const table = createPolledTable<Record<string, string>, Map<string, string>>({
    what: "user tier overrides",
    read: (known) => store.readUserTiers(known),
    initial: new Map(),
    refreshMs: opts.refreshMs,
    logger,
    build(entries) {
      const map = new Map<string, string>();
      const unknown: Array<{ user: string; tier: string }> = [];
      for (const [user, tier] of Object.entries(entries)) {
        if (Object.hasOwn(config.tiers, tier)) map.set(user, tier);
        else unknown.push({ user, tier });
      }
      if (unknown.length > 0)
        logger.warn(
          { overrides: unknown.slice(0, 20), count: unknown.length },
          "ignoring run-time tier overrides that name tiers this config does not define",
        );
      return map;
    },
  });
  return {
    get: (user) => table.current.get(user),
    async set(user, tier) {
      await store.setUserTier(user, tier);
      await table.refresh();
    },
    refresh: table.refresh,
    close: table.close,
  };
}
