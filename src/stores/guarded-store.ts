import type { OnStoreError } from "../config/types.js";
import type { Logger } from "../core/logger.js";
import { MemoryStore } from "./memory-store.js";
import {
  isStoreUnavailable,
  type ReserveRequest,
  type ReserveResult,
  type Revisioned,
  type ScopeCharge,
  type ScopeState,
  type SettleRequest,
  type SettleStatus,
  type SpendTotals,
  type Store,
  type StoredApiKey,
} from "./types.js";

/** Options of {@link createGuardedStore}. */
export interface GuardedStoreOptions {
  /** The shared store (Redis). */
  primary: Store;
  /** What to do when it cannot be reached (SPEC §4). */
  onError: OnStoreError;
  logger: Logger;
  /** With `local`: each scope's limit is multiplied by this for the per-process fallback (0 < f ≤ 1). */
  localLimitFraction?: number;
  /** Called once per degraded decision and per failed store call (for metrics). */
  onDegraded?: (event: { op: "reserve" | "settle" | "read"; mode: OnStoreError | "deferred" }) => void;
  /** How often queued settlements are retried (ms). */
  retryMs?: number;
  /** How long after a possibly applied first attempt a settlement is still retried (ms; default 55 min). */
  maxUnsureRetryMs?: number;
  /**
   * At most this many settlements wait for the store; beyond it the oldest not being applied is
   * dropped, logged and counted. Abandons have their own queue of the same size.
   */
  maxPending?: number;
}

/** Below this many local-fallback ids, reserve does not prune (the timer still does). */
const MIN_PRUNE_SIZE = 1024;

interface Pending {
  req: SettleRequest;
  /**
   * Date.now() of the first failure that left its outcome unknown (a timeout, a connection lost
   * after the write): the store may have applied it. Undefined when every attempt certainly never
   * reached the store.
   */
  unsureSinceMs?: number | undefined;
}

/**
 * A settlement whose first attempt may have been applied is retried only this long (ms) after it.
 * Why: the store remembers a settled id for an hour (the Redis store's settled marker); a retry after
 * that could not be recognised as a duplicate and would charge the usage twice. Past this, the
 * settlement is dropped, logged and counted instead (at worst one request's usage is not charged,
 * rather than charged twice).
 */
const MAX_UNSURE_RETRY_MS = 55 * 60_000;
/** How long close() waits for settlements already on their way to the store (ms). */
const CLOSE_WAIT_MS = 5000;

/**
 * Wraps the shared store with the configured failure behaviour (SPEC §4 `on_error`):
 * - `deny`: refuse (the engine answers `budget_store_unavailable`);
 * - `allow`: admit, marked `degraded: "allow"`;
 * - `local`: admit within a per-process cap (an in-memory store with each limit × `localLimitFraction`).
 *
 * Settlements that cannot reach the store are queued and retried in order until it is back, so
 * usage is not lost: the store charges a settlement for a reservation it never saw (or that
 * expired meanwhile) as actual usage, and ignores one it already applied (idempotent by id).
 * A reserve that failed ambiguously (timeout: it may have run) is released by a queued abandon
 * (`SettleRequest.abandon`) in `deny` mode, so it cannot hold budget until it expires; the id is not
 * remembered as settled, so a retry with the same request id is reserved and charged as new.
 */
export class GuardedStore implements Store {
  readonly kind: string;
  private readonly local = new MemoryStore();
  /**
   * Ids admitted by the local fallback → when their local reservation expires. Only `local` needs
   * remembering (its settle must also reach the local store); expired entries are pruned, so ids that
   * are never settled cannot pile up, and a later request reusing the id is not charged locally.
   */
  private readonly degradedIds = new Map<string, number>();
  /** Prune on reserve when the map reaches this size (twice what survived the last prune: amortised O(1)). */
  private pruneAtSize = MIN_PRUNE_SIZE;
  /** No entry expires before this (a lower bound: lets the timer skip pointless scans). */
  private nextExpiryMs = Number.POSITIVE_INFINITY;
  /** Latest request clock seen; the timer prunes by it (requests carry their own clock, not Date.now()). */
  private lastNowMs = Number.NEGATIVE_INFINITY;
  /** Settlements (usage) waiting for the store, oldest first. */
  private readonly pending: Pending[] = [];
  /** Abandons (releases of refused requests' possible reservations) waiting for the store. */
  private readonly abandons: Pending[] = [];
  private readonly timer: NodeJS.Timeout;
  /** The flush under way, so `close()` can wait for it and a second caller shares it. */
  private flushing: Promise<void> | undefined;
  /** The queued settlement a flush is applying: `enqueue` must not drop it (it would be applied and then lost track of). */
  private applying: Pending | undefined;
  /** Settlements dropped because the queue was full (never silently: each is logged). */
  droppedSettlements = 0;
  /** Abandons dropped because their queue was full (logged; their reservations expire by themselves). */
  droppedAbandons = 0;
  /** Settlements given up because their first attempt may have been applied too long ago (logged). */
  unconfirmedSettlements = 0;
  /** Settlements that failed after `close()`: nothing is left to retry them (each is logged). */
  settlementsLostAtClose = 0;
  private closed = false;
  /** Calls to the primary's settle under way (`close()` waits for them, bounded). */
  private settlesInFlight = 0;
  private settleWaiters: Array<() => void> = [];
  /** Observer of failed store calls (metrics); may be set after construction. */
  onDegraded: GuardedStoreOptions["onDegraded"];

  constructor(private readonly opts: GuardedStoreOptions) {
    this.kind = opts.primary.kind;
    this.onDegraded = opts.onDegraded;
    const f = opts.localLimitFraction ?? 0.1;
    if (!(f > 0 && f <= 1)) throw new RangeError("localLimitFraction must be in (0, 1]");
    this.timer = setInterval(() => void this.flush(), opts.retryMs ?? 1000);
    this.timer.unref();
  }

  /** Settlements and abandons waiting for the store. */
  get pendingSettlements(): number {
    return this.pending.length + this.abandons.length;
  }

  /** Local-fallback admissions remembered until settled or expired (diagnostics and tests). */
  get degradedCount(): number {
    return this.degradedIds.size;
  }

  async reserve(req: ReserveRequest): Promise<ReserveResult> {
    if (req.nowMs > this.lastNowMs) this.lastNowMs = req.nowMs;
    try {
      return await this.opts.primary.reserve(req);
    } catch (e) {
      if (!isStoreUnavailable(e)) throw e;
      const mode = this.opts.onError;
      this.onDegraded?.({ op: "reserve", mode });
      this.opts.logger.warn(
        { id: req.id, onError: mode, err: e.message },
        "budget store unavailable for a reservation",
      );
      if (mode === "deny") {
        this.abandonIfSent(req, e);
        throw e;
      }
      if (mode === "allow") {
        // Admitted: its own settlement (queued while the store is down) releases what the
        // reservation may have held there.
        return { ok: true, duplicate: false, committed: req.scopes.map(() => 0), degraded: "allow" };
      }
      const f = this.opts.localLimitFraction ?? 0.1;
      const scaled = req.scopes.map((s) => ({ ...s, limit: Math.floor(s.limit * f) }));
      const r = this.local.reserveSync({ ...req, scopes: scaled });
      if (!r.ok) {
        // Refused: nobody will settle it, so what the store may have reserved is released here.
        this.abandonIfSent(req, e);
        return { ...r, limit: (scaled[r.scopeIndex] as ScopeCharge).limit };
      }
      // A duplicate is already tracked (live) or already settled locally: nothing new to remember.
      if (!r.duplicate) this.rememberLocal(req.id, req.nowMs + req.ttlMs, req.nowMs);
      return { ...r, degraded: "local" };
    }
  }

  /**
   * After a failed reserve that is refused (nobody will settle it): when the command may have run in
   * the store (a timeout, a connection lost after the write), queues an abandon that releases it,
   * or it would hold budget until it expires. Abandoned, not settled: the request was refused, so a
   * retry with the same id must be reserved and charged as a new request (a settled marker would
   * make it a free duplicate). Not when the command certainly never left this process: nothing to
   * release, and during a long outage such no-op abandons would fill the queue.
   */
  private abandonIfSent(req: ReserveRequest, e: { notSent?: boolean }): void {
    if (e.notSent === true) return;
    this.enqueue({
      id: req.id,
      actualTokens: 0,
      reservedTokens: req.tokens,
      scopes: req.scopes,
      nowMs: req.nowMs,
      abandon: true,
    });
  }

  async settle(req: SettleRequest): Promise<SettleStatus> {
    if (req.nowMs > this.lastNowMs) this.lastNowMs = req.nowMs;
    const expiresAtMs = this.degradedIds.get(req.id);
    if (expiresAtMs !== undefined) {
      this.degradedIds.delete(req.id);
      // Past its expiry the entry counts as pruned (same answer whether or not a prune ran yet):
      // it may be a stale entry for a reused id whose request never touched the local store.
      if (expiresAtMs > req.nowMs) await this.local.settle(req);
    }
    this.settlesInFlight++;
    try {
      return await this.opts.primary.settle(req);
    } catch (e) {
      if (!isStoreUnavailable(e)) throw e;
      this.onDegraded?.({ op: "settle", mode: "deferred" });
      if (this.closed) {
        // Nothing will retry it any more: said, never queued where it would sit unseen.
        this.settlementsLostAtClose++;
        this.opts.logger.error(
          { id: req.id, tokens: req.actualTokens, lost: this.settlementsLostAtClose },
          "settlement failed after the store was closed: it is not applied",
        );
        throw e;
      }
      this.enqueue(req, (e as { notSent?: boolean }).notSent === true ? undefined : Date.now());
      return "deferred";
    } finally {
      this.settlesInFlight--;
      if (this.settlesInFlight === 0) for (const w of this.settleWaiters.splice(0)) w();
    }
  }

  async read(keys: readonly string[], nowMs: number): Promise<ScopeState[]> {
    try {
      return await this.opts.primary.read(keys, nowMs);
    } catch (e) {
      if (isStoreUnavailable(e)) this.onDegraded?.({ op: "read", mode: "deny" });
      throw e;
    }
  }

  claimOnce(key: string, expireAtMs: number, nowMs: number, owner?: string): Promise<boolean> {
    return this.opts.primary.claimOnce(key, expireAtMs, nowMs, owner);
  }

  readSpend(keys: readonly string[]): Promise<SpendTotals[]> {
    return this.opts.primary.readSpend(keys);
  }

  getSwitches(nowMs?: number): Promise<Record<string, boolean>> {
    return this.opts.primary.getSwitches(nowMs);
  }

  setSwitch(
    feature: string,
    enabled: boolean | undefined,
    untilMs?: number,
    opts?: { keepLongerOff?: boolean },
  ): Promise<void> {
    return this.opts.primary.setSwitch(feature, enabled, untilMs, opts);
  }

  // The run-time tables (user tiers, API keys) go straight to the shared store, whatever on_error
  // says: on_error is about admitting requests, and an admin change that cannot be stored must fail
  // (503), never be kept in one process that the others would not see.
  readUserTiers(knownRevision?: string): Promise<Revisioned<Record<string, string>>> {
    return this.opts.primary.readUserTiers(knownRevision);
  }

  setUserTier(user: string, tier: string | undefined): Promise<void> {
    return this.opts.primary.setUserTier(user, tier);
  }

  readApiKeys(knownRevision?: string): Promise<Revisioned<StoredApiKey[]>> {
    return this.opts.primary.readApiKeys(knownRevision);
  }

  addApiKey(key: StoredApiKey): Promise<boolean> {
    return this.opts.primary.addApiKey(key);
  }

  deleteApiKey(hash: string): Promise<boolean> {
    return this.opts.primary.deleteApiKey(hash);
  }

  /**
   * Retries queued settlements in order; stops at the first that still cannot reach the store.
   * While one is under way, returns that one (so awaiting it waits for the drain).
   */
  flush(): Promise<void> {
    if (!this.flushing) {
      this.flushing = this.drain().finally(() => {
        this.flushing = undefined;
      });
    }
    return this.flushing;
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    // Settlements on their way to the store when the close began: a failure of theirs is queued, so
    // wait for them (bounded: a stalled store must not hold a stop) before the last drain.
    if (this.settlesInFlight > 0) {
      await Promise.race([
        new Promise<void>((r) => this.settleWaiters.push(r)),
        new Promise<void>((r) => setTimeout(r, CLOSE_WAIT_MS).unref()),
      ]);
    }
    this.closed = true;
    // Wait for a drain under way (closing the primary under it would lose the rest of the queue),
    // then one last attempt of its own for whatever it left or what was queued meanwhile.
    await this.flushing?.catch(() => {});
    await this.flush().catch(() => {});
    if (this.pending.length > 0) {
      this.opts.logger.error(
        { pending: this.pending.length },
        "closing with settlements the store never received",
      );
    }
    if (this.abandons.length > 0) {
      this.opts.logger.warn(
        { pending: this.abandons.length },
        "closing with abandons the store never received; those reservations expire by themselves",
      );
    }
    await this.opts.primary.close();
  }

  private async drain(): Promise<void> {
    if (this.degradedIds.size > 0 && this.lastNowMs >= this.nextExpiryMs) this.pruneDegraded(this.lastNowMs);
    // Settlements first: they carry usage (money); abandons only release budget early, and an id
    // never has both (an abandoned request was refused, so it is never settled).
    if (!(await this.drainQueue(this.pending))) return;
    await this.drainQueue(this.abandons);
  }

  /** Applies a queue's entries in order; false when the store is still unavailable. */
  private async drainQueue(queue: Pending[]): Promise<boolean> {
    while (queue.length > 0) {
      const p = queue[0] as Pending;
      const maxUnsure = this.opts.maxUnsureRetryMs ?? MAX_UNSURE_RETRY_MS;
      // Not an abandon: it charges nothing and writes no marker, so a retry is always safe.
      if (!p.req.abandon && p.unsureSinceMs !== undefined && Date.now() - p.unsureSinceMs > maxUnsure) {
        queue.shift();
        this.unconfirmedSettlements++;
        this.opts.logger.error(
          { id: p.req.id, tokens: p.req.actualTokens, unconfirmed: this.unconfirmedSettlements },
          "settlement not retried: its first attempt may have been applied too long ago to be recognised (it would be charged twice)",
        );
        continue;
      }
      this.applying = p;
      try {
        await this.opts.primary.settle(p.req);
      } catch (e) {
        if (isStoreUnavailable(e)) {
          if (!e.notSent) p.unsureSinceMs ??= Date.now();
          return false;
        }
        this.opts.logger.error(
          { id: p.req.id, err: (e as Error).message },
          "queued settlement refused; dropped",
        );
      } finally {
        this.applying = undefined;
      }
      // By identity: the queue may have changed during the await (enqueue never drops `p`, so it is
      // still the head; the check keeps a future change from removing an entry never applied).
      if (queue[0] === p) queue.shift();
      else {
        const i = queue.indexOf(p);
        if (i >= 0) queue.splice(i, 1);
      }
    }
    return true;
  }

  private enqueue(req: SettleRequest, unsureSinceMs?: number): void {
    const max = this.opts.maxPending ?? 100_000;
    const entry: Pending = { req, unsureSinceMs };
    if (req.abandon) {
      // Abandons have their own queue, so however many requests an outage refuses, they can never
      // push a settlement (usage) out. One dropped costs no money: what it would have released is
      // released when its reservation expires.
      if (this.abandons.length >= max) {
        this.droppedAbandons++;
        if (this.droppedAbandons === 1 || this.droppedAbandons % 10_000 === 0)
          this.opts.logger.warn(
            { id: req.id, dropped: this.droppedAbandons },
            "abandon queue full; what such a request may have reserved is released when its reservation expires",
          );
        return;
      }
      this.abandons.push(entry);
      return;
    }
    if (this.pending.length >= max) {
      // Never the entry a flush is applying: it will be applied, so dropping it would lose the next
      // one instead. Then the next oldest; with no other, the new one.
      const i = this.pending[0] === this.applying ? 1 : 0;
      const dropped = i < this.pending.length ? (this.pending.splice(i, 1)[0] as Pending) : entry;
      this.droppedSettlements++;
      this.opts.logger.error(
        { id: dropped.req.id, tokens: dropped.req.actualTokens, dropped: this.droppedSettlements },
        dropped === entry
          ? "settlement queue full; new settlement dropped"
          : "settlement queue full; oldest settlement dropped",
      );
      if (dropped === entry) return;
    }
    this.pending.push(entry);
  }

  private rememberLocal(id: string, expiresAtMs: number, nowMs: number): void {
    if (this.degradedIds.size >= this.pruneAtSize) this.pruneDegraded(nowMs);
    this.degradedIds.delete(id); // re-inserted at the end: a reused id gets its new expiry
    this.degradedIds.set(id, expiresAtMs);
    if (expiresAtMs < this.nextExpiryMs) this.nextExpiryMs = expiresAtMs;
  }

  /** Drops entries whose local reservation has expired (a full scan, paid for by the growth since the last). */
  private pruneDegraded(nowMs: number): void {
    let next = Number.POSITIVE_INFINITY;
    for (const [id, exp] of this.degradedIds) {
      if (exp <= nowMs) this.degradedIds.delete(id);
      else if (exp < next) next = exp;
    }
    this.nextExpiryMs = next;
    this.pruneAtSize = Math.max(MIN_PRUNE_SIZE, 2 * this.degradedIds.size);
  }
}

/** Wraps a shared store with its `on_error` behaviour. */
export function createGuardedStore(opts: GuardedStoreOptions): GuardedStore {
  return new GuardedStore(opts);
}
