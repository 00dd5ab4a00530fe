/**
 * The Store contract. The memory store and the Redis store implement it and pass one contract suite
 * (`store-contract.ts`) with the same vectors, so their arithmetic is the same.
 *
 * Counters are per scope *window* (`user:{alice}:day:2026-11-24`): the window is in the key, so a
 * budget resets by construction. Each counter holds `used` (settled tokens) and `reserved` (tokens
 * held by reservations not yet settled). A request is admitted when, in EVERY scope,
 * `used + reserved + tokens <= limit`; then `tokens` is added to `reserved` in every scope — all in
 * one atomic step, or nothing at all.
 */

/** Which budget a counter belongs to. */
export type ScopeKind = "user" | "feature" | "global";
/** The window of a counter. */
export type WindowKind = "day" | "hour" | "minute";

/** One scope a reservation is charged to. */
export interface ScopeCharge {
  /** Counter key, window included, without the store's prefix: e.g. `user:{alice}:day:2026-11-24`. */
  key: string;
  kind: ScopeKind;
  window: WindowKind;
  /** Limit in tokens for this window. */
  limit: number;
  /** When the window ends (ms since epoch): the time to tell a refused caller. */
  resetAtMs: number;
  /** When the counter may be garbage-collected (ms since epoch); ≥ resetAtMs. */
  expireAtMs: number;
}

/** A request to reserve `tokens` in every scope at once. */
export interface ReserveRequest {
  /** Request id: reserve and settle are idempotent by it. */
  id: string;
  tokens: number;
  scopes: readonly ScopeCharge[];
  nowMs: number;
  /** The reservation is released by itself at `nowMs + ttlMs` if nobody settles it. */
  ttlMs: number;
}

/** The state of one scope's counter. */
export interface ScopeState {
  used: number;
  reserved: number;
}

/** Outcome of a reservation. */
export type ReserveResult =
  | {
      ok: true;
      /** True when this id was already reserved (or settled): nothing was charged again. */
      duplicate: boolean;
      /** Counter states after the reservation, in the order of `scopes`. */
      states: ScopeState[];
    }
  | {
      ok: false;
      /** Index in `scopes` of the first scope that could not take the reservation. */
      scopeIndex: number;
      state: ScopeState;
    };

/** A settlement: the actual tokens to charge for reservation `id`. */
export interface SettleRequest {
  id: string;
  /** Actual tokens used (input + output); 0 releases the whole reservation. */
  actualTokens: number;
  /**
   * The scopes of the reservation. Why carried again: a settlement that arrives after its
   * reservation expired must still charge what was really used, and by then the store has dropped
   * the reservation record.
   */
  scopes: readonly ScopeCharge[];
  nowMs: number;
}

/** Outcome of a settlement. */
export type SettleStatus =
  /** The reservation was found and settled. */
  | "settled"
  /** This id was settled before; nothing changed. */
  | "duplicate"
  /** The reservation had expired (its tokens already released); the actual usage was charged. */
  | "expired";

/** The budget store. All methods are safe to call concurrently. */
export interface Store {
  /** Human-readable kind, for logs ("memory", "redis"). */
  readonly kind: string;
  /** Reserve in all scopes or none, in one atomic step. Idempotent by `id`. */
  reserve(req: ReserveRequest): Promise<ReserveResult>;
  /** Settle a reservation to its actual usage and release the rest. Idempotent by `id`. */
  settle(req: SettleRequest): Promise<SettleStatus>;
  /** Counter states for the given keys (missing counters read as zero), after releasing expired reservations. */
  read(keys: readonly string[], nowMs: number): Promise<ScopeState[]>;
  /** Run-time feature switches (feature name → enabled) that override the config. */
  getSwitches(): Promise<Record<string, boolean>>;
  /** Set a run-time switch; `undefined` clears it (back to the config's value). */
  setSwitch(feature: string, enabled: boolean | undefined): Promise<void>;
  /** Release resources (connections, timers). */
  close(): Promise<void>;
}
