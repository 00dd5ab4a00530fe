import type { StoreConfig } from "../config/types.js";
import type { Logger } from "../core/logger.js";
import { createGuardedStore } from "./guarded-store.js";
import { createMemoryStore } from "./memory-store.js";
import { createRedisStore } from "./redis/redis-store.js";
import type { Store } from "./types.js";

/** Builds the store a config names, and says at start what it is (the memory store loses counters on restart). */
export function createStoreFromConfig(sc: StoreConfig, logger: Logger): Store {
  if (sc.kind === "redis") {
    logger.info(
      { store: "redis", keyPrefix: sc.keyPrefix, onError: sc.onError },
      "using the redis store: budgets are shared by every process on it",
    );
    return createGuardedStore({
      primary: createRedisStore({
        url: sc.url,
        keyPrefix: sc.keyPrefix,
        commandTimeoutMs: sc.commandTimeoutMs,
        logger,
      }),
      onError: sc.onError,
      localLimitFraction: sc.localLimitFraction,
      logger,
    });
  }
  logger.info(
    { store: "memory" },
    "using the memory store: budgets live in this process only and are lost on restart",
  );
  return createMemoryStore({
    onReservationExpired: (id, tokens) =>
      logger.warn({ id, tokens }, "reservation expired unsettled; released"),
  });
}
