import type { KeyRing } from "../access/key-ring.js";
import type { TierOverrides } from "../access/tier-overrides.js";
import type { ResolvedConfig } from "../config/types.js";
import type { Logger } from "../core/logger.js";
import { isStoreUnavailable, type Store } from "../stores/types.js";
import type { SwitchBoard } from "../switches/switch-board.js";
import { gatewayError } from "./http-errors.js";

/** What the admin API needs. */
export interface AdminDeps {
  config: ResolvedConfig;
  switches: SwitchBoard;
  /** The budget store (spend counters for usage queries, run-time keys for the key list). */
  store: Store;
  /** Run-time API keys (this process's snapshot, and where new keys are written). */
  keys: KeyRing;
  /** Run-time tier overrides (this process's snapshot, and where changes are written). */
  tiers: TierOverrides;
  /** Audit lines for changes (who and what; never a key). */
  logger: Logger;
  nowMs(): number;
}

/** A path segment, percent-decoded; a malformed escape is the client's error (400), not ours (500). */
export function decodePathSegment(raw: string, what: string): string {
  try {
    return decodeURIComponent(raw);
  } catch (e) {
    if (e instanceof URIError)
      throw gatewayError("invalid_request", `${what} in the path is not valid percent-encoding`);
    throw e;
  }
}

/**
 * Runs a store call of the admin API: a store that cannot be reached is a 503
 * `budget_store_unavailable` saying what did not happen, never a crash or a 500.
 */
export async function storeCall<T>(run: () => Promise<T>, whatFailed: string): Promise<T> {
  try {
    return await run();
  } catch (e) {
    if (isStoreUnavailable(e))
      throw gatewayError("budget_store_unavailable", `the store is unavailable: ${whatFailed}`, 503);
    throw e;
  }
}
