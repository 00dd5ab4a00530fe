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
      /** `used + reserved` of each scope after the reservation, in the order of `scopes`. */
      committed: number[];
      /**
       * Set when the shared store was unreachable and the reservation was admitted anyway by the
       * store's `on_error` mode: `allow` (not counted anywhere yet) or `local` (per-process cap).
       */
      degraded?: "allow" | "local";
    }
  | {
      ok: false;
      /** Index in `scopes` of the first scope that could not take the reservation. */
      scopeIndex: number;
      /** `used + reserved` of that scope (what was already committed when the request was refused). */
      committed: number;
      /**
       * The limit that refused it, when not the scope's own: `on_error: local` refuses at the
       * per-process fraction of each limit.
       */
      limit?: number;
    };

/** A settlement: the actual tokens to charge for reservation `id`. */
export interface SettleRequest {
  id: string;
  /** Actual tokens used (input + output); 0 releases the whole reservation. */
  actualTokens: number;
  /** The tokens the reservation held (what `reserve` was called with). */
  reservedTokens: number;
  /**
   * The scopes of the reservation. Why carried again: a settlement that arrives after its
   * reservation expired must still charge what was really used, and by then the store has dropped
   * the reservation record.
   */
  scopes: readonly ScopeCharge[];
  nowMs: number;
  /** Spend to add with the settlement (same atomic step; not added again for a duplicate). */
  spend?: SpendCharge | undefined;
  /**
   * The request never ran (its reservation failed ambiguously and was refused): release the
   * reservation if it is live, charge nothing, and do NOT remember the id as settled — a retry with
   * the same id is a new request and must be charged. Requires `actualTokens: 0` and no spend.
   */
  abandon?: boolean | undefined;
  /**
   * The id was generated for this one request, not supplied by a caller: no one can send it again
   * except this settlement's own resend. A store whose calls never fail ambiguously (the memory
   * store) therefore need not remember it once settled — at thousands of requests per second that
   * memory was the largest part of the gateway's garbage-collection cost. A store whose calls can
   * (Redis: a lost reply is resent) remembers every settled id regardless.
   */
  generatedId?: boolean | undefined;
}

/** A request's spend, added to every listed spend counter at settlement. */
export interface SpendCharge {
  costNanoUsd: number;
  inputTokens: number;
  outputTokens: number;
  /** Spend counters (window in the key, e.g. `spend:feature:{chat}:hour:2026-11-24T10`) and their GC time. */
  counters: ReadonlyArray<{ key: string; expireAtMs: number }>;
}

/** Totals of one spend counter. */
export interface SpendTotals {
  costNanoUsd: number;
  inputTokens: number;
  outputTokens: number;
  requests: number;
}

/** Outcome of a settlement. */
export type SettleStatus =
  /** The reservation was found and settled. */
  | "settled"
  /** This id was settled before; nothing changed. */
  | "duplicate"
  /** The reservation had expired (its tokens already released); the actual usage was charged. */
  | "expired"
  /** The store was unreachable; the settlement is queued and will be applied when it is back. */
  | "deferred";

/**
 * An API key created at run time (admin API, `tokenfuse keys create --store`). Like a config key,
 * only its hash is ever stored; the key itself is shown once to whoever created it.
 */
export interface StoredApiKey {
  /** "sha256:" + lowercase hex of sha256(key). */
  hash: string;
  user: string;
  tier?: string | undefined;
  /** Features this key may use; undefined = all. */
  features?: string[] | undefined;
  /** Feature used when a request names none. */
  defaultFeature?: string | undefined;
  /** May name end users with `x-tokenfuse-user` (namespaced under the key's user). */
  trusted: boolean;
  createdAtMs: number;
}

/**
 * A run-time table (user tiers, API keys) as read from the store, with its revision, so that a cache
 * polling it twice a second reads one small value while nothing changes, not the whole table.
 */
export interface Revisioned<T> {
  /** Changes with every write to the table; "" when it was never written (or has expired). */
  revision: string;
  /** The table; absent when `revision` equals the `knownRevision` the caller passed. */
  entries?: T;
  /** Fields of entries that could not be read (malformed, e.g. edited by hand): left out of `entries`. */
  unreadable?: string[];
}

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
  /**
   * True for exactly one caller per `key` until `expireAtMs`, across every process on the store
   * (alert dedup: one alert per scope and window however many processes saw the crossing).
   * With `owner`, a caller that asks again with the same owner gets true again: so a claim whose
   * reply was lost (it may have been taken) is recognised as won when retried, never lost.
   */
  claimOnce(key: string, expireAtMs: number, nowMs: number, owner?: string): Promise<boolean>;
  /** Spend counters' totals (zero for missing ones). */
  readSpend(keys: readonly string[]): Promise<SpendTotals[]>;
  /** Run-time feature switches (feature name → enabled) in force at `nowMs` (default now). */
  getSwitches(nowMs?: number): Promise<Record<string, boolean>>;
  /**
   * Set a run-time switch; `undefined` clears it (back to the config's value). With `untilMs` the
   * switch lapses by itself at that instant (the hourly-cost breaker: off until the next hour).
   * `keepLongerOff` (with `false` and `untilMs`, the breaker's trip): leave the switch as it is when
   * it is already off for at least as long — a hand-made "off" must not be shortened to an hour.
   */
  setSwitch(
    feature: string,
    enabled: boolean | undefined,
    untilMs?: number,
    opts?: { keepLongerOff?: boolean },
  ): Promise<void>;
  /**
   * Run-time tier overrides (user → tier name; the user as budgets are charged to it, e.g. `alice`
   * or `backend/u1`). With `knownRevision` equal to the current revision, `entries` is omitted.
   */
  readUserTiers(knownRevision?: string): Promise<Revisioned<Record<string, string>>>;
  /** Set `user`'s run-time tier; `undefined` clears it (back to the key's tier). */
  setUserTier(user: string, tier: string | undefined): Promise<void>;
  /** API keys created at run time (hashes and entries only). Same revision rule as {@link readUserTiers}. */
  readApiKeys(knownRevision?: string): Promise<Revisioned<StoredApiKey[]>>;
  /** Store a new key's entry; false (and nothing changed) when an entry with that hash exists. */
  addApiKey(key: StoredApiKey): Promise<boolean>;
  /** Remove a run-time key; false when there was none with that hash. */
  deleteApiKey(hash: string): Promise<boolean>;
  /** Release resources (connections, timers). */
  close(): Promise<void>;
}

/**
 * Thrown by a store that cannot be reached or did not answer in time. The command may or may not
 * have run (a timeout is ambiguous), which is why every write is idempotent by request id.
 */
export class StoreUnavailableError extends Error {
  override readonly name = "StoreUnavailableError";
  /**
   * True when the command certainly never reached the store (no connection, refused before it was
   * written): nothing can have run, so there is nothing to undo. Otherwise the outcome is unknown.
   */
  readonly notSent: boolean;
  constructor(message: string, opts?: { notSent?: boolean }) {
    super(message);
    this.notSent = opts?.notSent === true;
  }
}

/** True for {@link StoreUnavailableError} (also across module copies). */
export function isStoreUnavailable(e: unknown): e is StoreUnavailableError {
  return e instanceof Error && e.name === "StoreUnavailableError";
}
