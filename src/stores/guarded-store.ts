import type { OnStoreError } from "../config/types.js";
import type { Logger } from "../core/logger.js";
import { MemoryStore } from "./memory-store.js";
import {
  isStoreUnavailable,
  type ReserveRequest,
  type ReserveResult,
  type ScopeState,
  type SettleRequest,
  type SettleStatus,
  type SpendTotals,
  type Store,
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
  /** At most this many settlements wait for the store; beyond it the oldest is dropped and logged. */
  maxPending?: number;
}

interface Pending {
  req: SettleRequest;
}

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
  private readonly degradedIds = new Map<string, "allow" | "local">();
  private readonly pending: Pending[] = [];
  private readonly timer: NodeJS.Timeout;
  private flushing = false;
  /** Settlements dropped because the queue was full (never silently: each is logged). */
  droppedSettlements = 0;
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

  /** Settlements waiting for the store. */
  get pendingSettlements(): number {
    return this.pending.length;
  }

  async reserve(req: ReserveRequest): Promise<ReserveResult> {
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
        // Abandoned, not settled: the request was refused, so a retry with the same id must be
        // reserved and charged as a new request (a settled marker would make it a free duplicate).
        this.enqueue({
          id: req.id,
          actualTokens: 0,
          reservedTokens: req.tokens,
          scopes: req.scopes,
          nowMs: req.nowMs,
          abandon: true,
        });
        throw e;
      }
      if (mode === "allow") {
        this.degradedIds.set(req.id, "allow");
        return { ok: true, duplicate: false, committed: req.scopes.map(() => 0), degraded: "allow" };
      }
      const f = this.opts.localLimitFraction ?? 0.1;
      const scaled = req.scopes.map((s) => ({ ...s, limit: Math.floor(s.limit * f) }));
      const r = this.local.reserveSync({ ...req, scopes: scaled });
      if (!r.ok) return r;
      this.degradedIds.set(req.id, "local");
      return { ...r, degraded: "local" };
    }
  }

  async settle(req: SettleRequest): Promise<SettleStatus> {
    const degraded = this.degradedIds.get(req.id);
    if (degraded) {
      this.degradedIds.delete(req.id);
      if (degraded === "local") await this.local.settle(req);
    }
    try {
      return await this.opts.primary.settle(req);
    } catch (e) {
      if (!isStoreUnavailable(e)) throw e;
      this.onDegraded?.({ op: "settle", mode: "deferred" });
      this.enqueue(req);
      return "deferred";
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

  setSwitch(feature: string, enabled: boolean | undefined, untilMs?: number): Promise<void> {
    return this.opts.primary.setSwitch(feature, enabled, untilMs);
  }

  /** Retries queued settlements in order; stops at the first that still cannot reach the store. */
  async flush(): Promise<void> {
    if (this.flushing) return;
    this.flushing = true;
    try {
      while (this.pending.length > 0) {
        const p = this.pending[0] as Pending;
        try {
          await this.opts.primary.settle(p.req);
        } catch (e) {
          if (isStoreUnavailable(e)) return;
          this.opts.logger.error(
            { id: p.req.id, err: (e as Error).message },
            "queued settlement refused; dropped",
          );
        }
        this.pending.shift();
      }
    } finally {
      this.flushing = false;
    }
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.flush().catch(() => {});
    if (this.pending.length > 0) {
      this.opts.logger.error(
        { pending: this.pending.length },
        "closing with settlements the store never received",
      );
    }
    await this.opts.primary.close();
  }

  private enqueue(req: SettleRequest): void {
    const max = this.opts.maxPending ?? 100_000;
    if (this.pending.length >= max) {
      const dropped = this.pending.shift();
      this.droppedSettlements++;
      this.opts.logger.error(
        { id: dropped?.req.id, tokens: dropped?.req.actualTokens },
        "settlement queue full; oldest settlement dropped",
      );
    }
    this.pending.push({ req });
  }
}

/** Wraps a shared store with its `on_error` behaviour. */
export function createGuardedStore(opts: GuardedStoreOptions): GuardedStore {
  return new GuardedStore(opts);
}
