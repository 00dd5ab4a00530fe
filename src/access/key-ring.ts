import type { KeyConfig, ResolvedConfig } from "../config/types.js";
import type { Logger } from "../core/logger.js";
import type { Store, StoredApiKey } from "../stores/types.js";
import { resolveStoredKey } from "./key-entries.js";
import { createPolledTable } from "./polled-table.js";

/** Options of {@link createKeyRing}. */
export interface KeyRingOptions {
  config: ResolvedConfig;
  store: Store;
  logger: Logger;
  /** How often to re-read a shared store (ms); 0 disables polling (the memory store). */
  refreshMs: number;
}

/** API keys created at run time, looked up by hash on the hot path (a Map lookup on a snapshot). */
export interface KeyRing {
  /** The run-time key with this hash, if this process's snapshot holds one this config can use. */
  get(hash: string): KeyConfig | undefined;
  /** Every run-time key of this process's snapshot that this config can use. */
  list(): KeyConfig[];
  /** True once the run-time keys were read from the store (until then an unknown key may be one of them). */
  readonly loaded: boolean;
  /** Stores a new key's entry; false when that hash exists. This process accepts the key at once. */
  add(key: StoredApiKey): Promise<boolean>;
  /** Removes a run-time key; false when there was none. This process refuses the key at once. */
  revoke(hash: string): Promise<boolean>;
  /** Re-read the store now. */
  refresh(): Promise<void>;
  close(): void;
}

/**
 * Mirrors the store's run-time API keys (refreshed in the background like the feature switches: a
 * key created or revoked on any process is accepted or refused by every process within a second).
 * Keys this config cannot use (unknown tier or feature) are left out, with a warning.
 * With no `keys:` in the config the gateway runs keyless and never polls: the one read at start
 * only warns when the store holds keys that this keyless gateway will not check.
 */
export function createKeyRing(opts: KeyRingOptions): KeyRing {
  const { config, store, logger } = opts;
  const keyless = config.keys.length === 0;
  const table = createPolledTable<StoredApiKey[], Map<string, KeyConfig>>({
    what: "API keys",
    read: (known) => store.readApiKeys(known),
    initial: new Map(),
    refreshMs: keyless ? 0 : opts.refreshMs,
    logger,
    build(entries, unreadable) {
      if (unreadable.length > 0)
        logger.warn({ hashes: unreadable.slice(0, 20) }, "ignoring malformed API key entries in the store");
      if (keyless) {
        if (entries.length > 0)
          logger.warn(
            { count: entries.length },
            "the store holds API keys, but the config has no keys: the gateway runs without keys and does not check them",
          );
        return new Map();
      }
      const map = new Map<string, KeyConfig>();
      for (const k of entries) {
        const resolved = resolveStoredKey(k, config);
        if (typeof resolved === "string")
          logger.warn({ hash: k.hash, user: k.user, problem: resolved }, "refusing a run-time API key");
        else map.set(k.hash, resolved);
      }
      return map;
    },
  });
  return {
    get: (hash) => table.current.get(hash),
    list: () => [...table.current.values()],
    get loaded() {
      return table.loaded;
    },
    async add(key) {
      const added = await store.addApiKey(key);
      await table.refresh();
      return added;
    },
    async revoke(hash) {
      const removed = await store.deleteApiKey(hash);
      await table.refresh();
      return removed;
    },
    refresh: table.refresh,
    close: table.close,
  };
}
