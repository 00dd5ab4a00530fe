import { assertStoredApiKey, assertUserTier } from "./admin-tables.js";
import type {
  ReserveRequest,
  ReserveResult,
  Revisioned,
  ScopeState,
  SettleRequest,
  SettleStatus,
  SpendTotals,
  Store,
  StoredApiKey,
} from "./types.js";
import { assertReserveRequest, assertSettleRequest } from "./validate.js";

interface Counter {
  used: number;
  reserved: number;
  expireAtMs: number;
}

interface Reservation {
  id: string;
  tokens: number;
  keys: string[];
  expiresAtMs: number;
  /** Position in the expiry heap (-1 when not in it). */
  heapIndex: number;
}

/**
 * How long a settled id is remembered, so that a resent settlement is recognised (ms). Why not
 * longer: one entry per request; at 1 000 requests/s a day of ids would be 86 million entries.
 * In one process the admission object already makes settle exactly-once; this guards retries.
 */
const SETTLED_MEMORY_MS = 15 * 60_000;
/** How often counters past their GC time are swept (ms). */
const GC_INTERVAL_MS = 60_000;

/**
 * A min-heap of live reservations by expiry, so expired ones are released in O(log n) each without
 * scanning. Each reservation knows its position, so a settled one leaves the heap at once (O(log n)).
 * Why not lazy deletion: every settled reservation would stay referenced until its expiry time
 * (upstream timeout + margin, minutes) — at thousands of requests per second, hundreds of
 * thousands of dead objects for the garbage collector to keep walking.
 */
class ExpiryHeap {
  private readonly items: Reservation[] = [];

  get size(): number {
    return this.items.length;
  }

  peek(): Reservation | undefined {
    return this.items[0];
  }

  push(r: Reservation): void {
    this.items.push(r);
    this.up(r, this.items.length - 1);
  }

  /** Removes `r` (no-op when it is not in the heap). */
  remove(r: Reservation): void {
    const a = this.items;
    const i = r.heapIndex;
    if (i < 0 || a[i] !== r) return;
    r.heapIndex = -1;
    const last = a.pop() as Reservation;
    if (i === a.length) return; // r was the last
    a[i] = last;
    if (i > 0 && (a[(i - 1) >> 1] as Reservation).expiresAtMs > last.expiresAtMs) this.up(last, i);
    else this.down(last, i);
  }

  private up(r: Reservation, from: number): void {
    const a = this.items;
    let i = from;
    while (i > 0) {
      const p = (i - 1) >> 1;
      const parent = a[p] as Reservation;
      if (parent.expiresAtMs <= r.expiresAtMs) break;
      a[i] = parent;
      parent.heapIndex = i;
      i = p;
    }
    a[i] = r;
    r.heapIndex = i;
  }

  private down(r: Reservation, from: number): void {
    const a = this.items;
    const n = a.length;
    let i = from;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const rt = l + 1;
      let c = l;
      if (rt < n && (a[rt] as Reservation).expiresAtMs < (a[l] as Reservation).expiresAtMs) c = rt;
      const child = a[c] as Reservation;
      if (child.expiresAtMs >= r.expiresAtMs) break;
      a[i] = child;
      child.heapIndex = i;
      i = c;
    }
    a[i] = r;
    r.heapIndex = i;
  }
}

/** Options of {@link createMemoryStore}. */
export interface MemoryStoreOptions {
  /** Called when a reservation expires unsettled (for logs and metrics). */
  onReservationExpired?: (id: string, tokens: number) => void;
}

/**
 * The single-process store. Every method runs synchronously inside one event-loop turn, which is
 * what makes check-and-reserve atomic here (no await between the check and the write).
 * Counters are lost when the process exits.
 */
export class MemoryStore implements Store {
  readonly kind = "memory";
  private readonly counters = new Map<string, Counter>();
  private readonly reservations = new Map<string, Reservation>();
  private readonly settled = new Map<string, number>(); // id → forget-after ms
  private readonly expiries = new ExpiryHeap();
  private readonly switches = new Map<string, { enabled: boolean; untilMs?: number }>();
  private readonly claims = new Map<string, { until: number; owner: string | undefined }>();
  private readonly spend = new Map<string, SpendTotals & { expireAtMs: number }>();
  private readonly userTiers = new Map<string, string>();
  private userTiersRevision = "";
  private readonly apiKeys = new Map<string, StoredApiKey>();
  private apiKeysRevision = "";
  /** Source of table revisions ("" is never one: it means "never written"). */
  private revisions = 0;
  private lastGcMs = 0;

  constructor(private readonly options: MemoryStoreOptions = {}) {}

  async reserve(req: ReserveRequest): Promise<ReserveResult> {
    return this.reserveSync(req);
  }

  /** Synchronous core of {@link reserve}; exported for benchmarks of the pure arithmetic. */
  reserveSync(req: ReserveRequest): ReserveResult {
    assertReserveRequest(req);
    this.housekeeping(req.nowMs);
    const { scopes, tokens } = req;
    if (this.reservations.has(req.id) || this.settled.has(req.id)) {
      return { ok: true, duplicate: true, committed: scopes.map((s) => this.committed(s.key)) };
    }
    for (let i = 0; i < scopes.length; i++) {
      const s = scopes[i];
      if (!s) continue;
      const c = this.counters.get(s.key);
      const used = c?.used ?? 0;
      const reserved = c?.reserved ?? 0;
      if (used + reserved + tokens > s.limit) {
        return { ok: false, scopeIndex: i, committed: used + reserved };
      }
    }
    const committed: number[] = [];
    for (const s of scopes) {
      let c = this.counters.get(s.key);
      if (!c) {
        c = { used: 0, reserved: 0, expireAtMs: s.expireAtMs };
        this.counters.set(s.key, c);
      }
      c.reserved += tokens;
      if (s.expireAtMs > c.expireAtMs) c.expireAtMs = s.expireAtMs;
      committed.push(c.used + c.reserved);
    }
    const r: Reservation = {
      id: req.id,
      tokens,
      keys: scopes.map((s) => s.key),
      expiresAtMs: req.nowMs + req.ttlMs,
      heapIndex: -1,
    };
    this.reservations.set(req.id, r);
    this.expiries.push(r);
    return { ok: true, duplicate: false, committed };
  }

  async settle(req: SettleRequest): Promise<SettleStatus> {
    assertSettleRequest(req);
    this.housekeeping(req.nowMs);
    if (this.settled.has(req.id)) return "duplicate";
    const r = this.reservations.get(req.id);
    const actual = req.actualTokens;
    let status: SettleStatus;
    if (r) {
      this.reservations.delete(req.id);
      this.expiries.remove(r);
      for (const key of r.keys) {
        const c = this.counters.get(key);
        if (c) c.reserved -= r.tokens;
      }
      status = "settled";
    } else {
      status = "expired";
    }
    if (actual > 0) {
      for (const s of req.scopes) {
        let c = this.counters.get(s.key);
        if (!c) {
          c = { used: 0, reserved: 0, expireAtMs: s.expireAtMs };
          this.counters.set(s.key, c);
        }
        c.used += actual;
      }
    }
    if (actual > 0 && req.spend) {
      const sp = req.spend;
      for (const c of sp.counters) {
        let t = this.spend.get(c.key);
        if (!t) {
          t = { costNanoUsd: 0, inputTokens: 0, outputTokens: 0, requests: 0, expireAtMs: c.expireAtMs };
          this.spend.set(c.key, t);
        }
        t.costNanoUsd += sp.costNanoUsd;
        t.inputTokens += sp.inputTokens;
        t.outputTokens += sp.outputTokens;
        t.requests += 1;
        if (c.expireAtMs > t.expireAtMs) t.expireAtMs = c.expireAtMs;
      }
    }
    // Remembered so that a caller's resent request id is recognised; see SettleRequest.generatedId.
    if (!req.abandon && !req.generatedId) this.settled.set(req.id, req.nowMs + SETTLED_MEMORY_MS);
    return status;
  }

  async read(keys: readonly string[], nowMs: number): Promise<ScopeState[]> {
    this.housekeeping(nowMs);
    return keys.map((k) => this.state(k));
  }

  async claimOnce(key: string, expireAtMs: number, nowMs: number, owner?: string): Promise<boolean> {
    const held = this.claims.get(key);
    if (held !== undefined && held.until > nowMs)
      return owner !== undefined && owner !== "" && held.owner === owner;
    this.claims.set(key, { until: expireAtMs, owner });
    return true;
  }

  async readSpend(keys: readonly string[]): Promise<SpendTotals[]> {
    return keys.map((k) => {
      const t = this.spend.get(k);
      return {
        costNanoUsd: t?.costNanoUsd ?? 0,
        inputTokens: t?.inputTokens ?? 0,
        outputTokens: t?.outputTokens ?? 0,
        requests: t?.requests ?? 0,
      };
    });
  }

  async getSwitches(nowMs = Date.now()): Promise<Record<string, boolean>> {
    const out: Record<string, boolean> = {};
    for (const [f, s] of this.switches) if (s.untilMs === undefined || s.untilMs > nowMs) out[f] = s.enabled;
    return out;
  }

  async setSwitch(
    feature: string,
    enabled: boolean | undefined,
    untilMs?: number,
    opts?: { keepLongerOff?: boolean },
  ): Promise<void> {
    if (opts?.keepLongerOff && enabled === false && untilMs !== undefined) {
      const cur = this.switches.get(feature);
      if (cur && !cur.enabled && (cur.untilMs === undefined || cur.untilMs >= untilMs)) return;
    }
    if (enabled === undefined) this.switches.delete(feature);
    else this.switches.set(feature, { enabled, ...(untilMs !== undefined ? { untilMs } : {}) });
  }

  async readUserTiers(knownRevision?: string): Promise<Revisioned<Record<string, string>>> {
    const revision = this.userTiersRevision;
    if (knownRevision === revision) return { revision };
    return { revision, entries: Object.fromEntries(this.userTiers) };
  }

  async setUserTier(user: string, tier: string | undefined): Promise<void> {
    assertUserTier(user, tier);
    if (tier === undefined) this.userTiers.delete(user);
    else this.userTiers.set(user, tier);
    this.userTiersRevision = String(++this.revisions);
  }

  async readApiKeys(knownRevision?: string): Promise<Revisioned<StoredApiKey[]>> {
    const revision = this.apiKeysRevision;
    if (knownRevision === revision) return { revision };
    // Copies: a caller must not be able to change the stored entries through what it was given.
    return {
      revision,
      entries: [...this.apiKeys.values()].map((k) => ({
        ...k,
        ...(k.features ? { features: [...k.features] } : {}),
      })),
    };
  }

  async addApiKey(key: StoredApiKey): Promise<boolean> {
    assertStoredApiKey(key);
    if (this.apiKeys.has(key.hash)) return false;
    this.apiKeys.set(key.hash, { ...key, ...(key.features ? { features: [...key.features] } : {}) });
    this.apiKeysRevision = String(++this.revisions);
    return true;
  }

  async deleteApiKey(hash: string): Promise<boolean> {
    if (!this.apiKeys.delete(hash)) return false;
    this.apiKeysRevision = String(++this.revisions);
    return true;
  }

  async close(): Promise<void> {}

  /** Number of settled ids remembered (tests and diagnostics). */
  get settledIdCount(): number {
    return this.settled.size;
  }

  /** Number of live reservations (tests and diagnostics). */
  get reservationCount(): number {
    return this.reservations.size;
  }

  private committed(key: string): number {
    const c = this.counters.get(key);
    return c ? c.used + c.reserved : 0;
  }

  private state(key: string): ScopeState {
    const c = this.counters.get(key);
    return { used: c?.used ?? 0, reserved: c?.reserved ?? 0 };
  }

  /** Release expired reservations; now and then drop counters and settled ids past their time. */
  private housekeeping(nowMs: number): void {
    for (let r = this.expiries.peek(); r && r.expiresAtMs <= nowMs; r = this.expiries.peek()) {
      this.expiries.remove(r);
      this.reservations.delete(r.id);
      for (const key of r.keys) {
        const c = this.counters.get(key);
        if (c) c.reserved -= r.tokens;
      }
      this.options.onReservationExpired?.(r.id, r.tokens);
    }
    if (nowMs - this.lastGcMs < GC_INTERVAL_MS) return;
    this.lastGcMs = nowMs;
    for (const [k, c] of this.counters) {
      if (c.expireAtMs <= nowMs && c.reserved === 0) this.counters.delete(k);
    }
    for (const [k, c] of this.claims) {
      if (c.until <= nowMs) this.claims.delete(k);
    }
    for (const [k, t] of this.spend) {
      if (t.expireAtMs <= nowMs) this.spend.delete(k);
    }
    for (const [id, until] of this.settled) {
      if (until <= nowMs) this.settled.delete(id);
    }
  }
}

/** The embedded single-process store (SPEC §4 `store: memory`). */
export function createMemoryStore(options?: MemoryStoreOptions): MemoryStore {
  return new MemoryStore(options);
}
