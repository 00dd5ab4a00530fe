import { afterEach, describe, expect, it } from "vitest";
import type { OnStoreError } from "../config/types.js";
import type { Logger } from "../core/logger.js";
import { GuardedStore } from "./guarded-store.js";
import { MemoryStore } from "./memory-store.js";
import {
  type ReserveRequest,
  type ReserveResult,
  type ScopeCharge,
  type SettleRequest,
  type SettleStatus,
  type Store,
  type StoredApiKey,
  StoreUnavailableError,
} from "./types.js";

/** A primary whose failures and timing the test controls. */
class FakePrimary implements Store {
  readonly kind = "fake";
  down = false;
  closed = false;
  /** Settlements applied, in order. */
  readonly applied: string[] = [];
  /** Settlements that reached the primary after it was closed (must stay empty). */
  readonly afterClose: string[] = [];
  /** Per-id hook run before a settlement is applied (may throw or wait). */
  readonly settleHook = new Map<string, () => Promise<void>>();
  settleDelayMs = 0;
  /** After this many applied settlements, the store goes down. */
  downAfter = Number.POSITIVE_INFINITY;

  async reserve(req: ReserveRequest): Promise<ReserveResult> {
    if (this.down) throw new StoreUnavailableError("down");
    return { ok: true, duplicate: false, committed: req.scopes.map(() => req.tokens) };
  }
  async settle(req: SettleRequest): Promise<SettleStatus> {
    if (this.closed) {
      this.afterClose.push(req.id);
      throw new StoreUnavailableError("connection is closed");
    }
    if (this.down || this.applied.length >= this.downAfter) throw new StoreUnavailableError("down");
    await this.settleHook.get(req.id)?.();
    if (this.settleDelayMs > 0) await sleep(this.settleDelayMs);
    this.applied.push(req.id);
    return "settled";
  }
  async read(): Promise<never[]> {
    return [];
  }
  async claimOnce(): Promise<boolean> {
    return true;
  }
  async readSpend(): Promise<never[]> {
    return [];
  }
  async getSwitches(): Promise<Record<string, boolean>> {
    return {};
  }
  async setSwitch(): Promise<void> {}
  /** Run-time tables: a memory store behind the same `down` flag. */
  readonly tables = new MemoryStore();
  readUserTiers(known?: string) {
    return this.down ? Promise.reject(new StoreUnavailableError("down")) : this.tables.readUserTiers(known);
  }
  setUserTier(user: string, tier: string | undefined) {
    return this.down
      ? Promise.reject(new StoreUnavailableError("down"))
      : this.tables.setUserTier(user, tier);
  }
  readApiKeys(known?: string) {
    return this.down ? Promise.reject(new StoreUnavailableError("down")) : this.tables.readApiKeys(known);
  }
  addApiKey(key: StoredApiKey) {
    return this.down ? Promise.reject(new StoreUnavailableError("down")) : this.tables.addApiKey(key);
  }
  deleteApiKey(hash: string) {
    return this.down ? Promise.reject(new StoreUnavailableError("down")) : this.tables.deleteApiKey(hash);
  }
  async close(): Promise<void> {
    this.closed = true;
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function recordingLogger(): Logger & { errors: { obj: Record<string, unknown>; msg: string }[] } {
  const errors: { obj: Record<string, unknown>; msg: string }[] = [];
  return {
    errors,
    info() {},
    warn() {},
    error(obj, msg = "") {
      errors.push({ obj: obj as Record<string, unknown>, msg });
    },
  };
}

const open: GuardedStore[] = [];
afterEach(async () => {
  for (const g of open.splice(0)) await g.close();
});

function make(
  primary: FakePrimary,
  onError: OnStoreError,
  extra: { maxPending?: number; retryMs?: number; logger?: Logger } = {},
): GuardedStore {
  const g = new GuardedStore({
    primary,
    onError,
    logger: extra.logger ?? recordingLogger(),
    retryMs: extra.retryMs ?? 3_600_000,
    ...(extra.maxPending !== undefined ? { maxPending: extra.maxPending } : {}),
  });
  open.push(g);
  return g;
}

const settlement = (id: string, nowMs = 1, actualTokens = 10, scopes: ScopeCharge[] = []): SettleRequest => ({
  id,
  actualTokens,
  reservedTokens: actualTokens,
  scopes,
  nowMs,
});

/** A gate: the returned hook waits until `open()` is called. */
function gate(): { hook: () => Promise<void>; open: () => void; entered: Promise<void> } {
  let release = () => {};
  let entered = () => {};
  const enteredP = new Promise<void>((r) => {
    entered = r;
  });
  const released = new Promise<void>((r) => {
    release = r;
  });
  return {
    hook: async () => {
      entered();
      await released;
    },
    open: () => release(),
    entered: enteredP,
  };
}

describe("GuardedStore settlement queue", () => {
  it("a full queue drops the next-oldest settlement, never the one a flush is applying, and logs it", async () => {
    const primary = new FakePrimary();
    const logger = recordingLogger();
    const g = make(primary, "allow", { maxPending: 2, logger });
    primary.down = true;
    expect(await g.settle(settlement("A"))).toBe("deferred");
    expect(await g.settle(settlement("B"))).toBe("deferred");
    primary.down = false;
    const a = gate();
    primary.settleHook.set("A", a.hook);
    let cFails = true; // C's direct settle hits a blip while the drain runs
    primary.settleHook.set("C", async () => {
      if (cFails) throw new StoreUnavailableError("blip");
    });
    const flushing = g.flush();
    await a.entered; // the flush is applying A
    expect(await g.settle(settlement("C"))).toBe("deferred"); // queue full: B must go, not A
    cFails = false;
    a.open();
    await flushing;
    await g.flush();

    expect(primary.applied).toEqual(["A", "C"]); // A once, B dropped, C applied
    expect(g.pendingSettlements).toBe(0);
    expect(g.droppedSettlements).toBe(1);
    const drops = logger.errors.filter((e) => e.msg.startsWith("settlement queue full"));
    expect(drops.map((e) => e.obj.id)).toEqual(["B"]);
  });

  it("with room for one, a settlement queued while that one is applied is dropped and logged (not lost silently)", async () => {
    const primary = new FakePrimary();
    const logger = recordingLogger();
    const g = make(primary, "allow", { maxPending: 1, logger });
    primary.down = true;
    await g.settle(settlement("A"));
    primary.down = false;
    const a = gate();
    primary.settleHook.set("A", a.hook);
    primary.settleHook.set("C", async () => {
      throw new StoreUnavailableError("blip");
    });
    const flushing = g.flush();
    await a.entered;
    expect(await g.settle(settlement("C"))).toBe("deferred");
    a.open();
    await flushing;

    expect(primary.applied).toEqual(["A"]);
    expect(g.pendingSettlements).toBe(0);
    expect(g.droppedSettlements).toBe(1);
    const drops = logger.errors.filter((e) => e.msg.startsWith("settlement queue full"));
    expect(drops.map((e) => e.obj.id)).toEqual(["C"]);
  });
});

describe("GuardedStore abandons (refused requests whose reservation may have run)", () => {
  const reserveReq = (id: string): ReserveRequest => ({ id, tokens: 10, scopes: [], nowMs: 1, ttlMs: 1000 });

  it("however many are refused, they never push a settlement out, and settlements are applied first", async () => {
    const primary = new FakePrimary();
    const g = make(primary, "deny", { maxPending: 5 });
    primary.down = true;
    expect(await g.settle(settlement("usage"))).toBe("deferred");
    // Ambiguous failures (the fake throws without `notSent`): each queues an abandon.
    for (let i = 0; i < 20; i++) await expect(g.reserve(reserveReq(`refused-${i}`))).rejects.toThrow(/down/);
    expect(g.droppedSettlements).toBe(0);
    expect(g.droppedAbandons).toBe(15);
    expect(g.pendingSettlements).toBe(6);
    primary.down = false;
    await g.flush();
    expect(primary.applied).toEqual([
      "usage",
      "refused-0",
      "refused-1",
      "refused-2",
      "refused-3",
      "refused-4",
    ]);
  });

  it("a command that certainly never left the process queues nothing", async () => {
    const primary = new FakePrimary();
    primary.reserve = async () => {
      throw new StoreUnavailableError("connection is reconnecting", { notSent: true });
    };
    const g = make(primary, "deny");
    await expect(g.reserve(reserveReq("x"))).rejects.toThrow(/reconnecting/);
    expect(g.pendingSettlements).toBe(0);
  });
});

describe("GuardedStore settlements whose first attempt may have been applied", () => {
  it("are retried while the store can still recognise them, then given up (logged), never charged twice", async () => {
    const primary = new FakePrimary();
    const logger = recordingLogger();
    const g = new GuardedStore({
      primary,
      onError: "deny",
      logger,
      retryMs: 3_600_000,
      maxUnsureRetryMs: 40,
    });
    open.push(g);
    primary.down = true;
    expect(await g.settle(settlement("unsure"))).toBe("deferred"); // a plain failure: outcome unknown
    primary.settle = async (req) => {
      if (primary.down) throw new StoreUnavailableError("down", { notSent: true });
      primary.applied.push(req.id);
      return "settled";
    };
    expect(await g.settle(settlement("never-sent"))).toBe("deferred");
    await sleep(80);
    primary.down = false;
    await g.flush();
    expect(primary.applied).toEqual(["never-sent"]);
    expect(g.unconfirmedSettlements).toBe(1);
    expect(g.pendingSettlements).toBe(0);
    expect(logger.errors.map((e) => e.msg).join("\n")).toMatch(/not retried.*charged twice/);
  });
});

describe("GuardedStore close", () => {
  it("waits for a drain under way, so the whole backlog reaches a reachable store before it closes", async () => {
    const primary = new FakePrimary();
    const logger = recordingLogger();
    const g = make(primary, "allow", { logger });
    primary.down = true;
    for (let i = 0; i < 20; i++) await g.settle(settlement(`s${i}`));
    primary.down = false;
    primary.settleDelayMs = 3;
    void g.flush(); // the timer's drain
    await sleep(10);
    await g.close();

    expect(primary.applied).toHaveLength(20);
    expect(primary.afterClose).toEqual([]);
    expect(g.pendingSettlements).toBe(0);
    expect(logger.errors.filter((e) => e.msg.includes("never received"))).toEqual([]);
  });

  it("logs exactly what is still pending after its last attempt, then closes the primary", async () => {
    const primary = new FakePrimary();
    const logger = recordingLogger();
    const g = make(primary, "allow", { logger });
    primary.down = true;
    for (let i = 0; i < 20; i++) await g.settle(settlement(`s${i}`));
    primary.down = false;
    primary.settleDelayMs = 3;
    primary.downAfter = 10; // the store fails again mid-drain
    void g.flush();
    await sleep(5);
    await g.close();

    expect(primary.applied).toHaveLength(10);
    expect(primary.afterClose).toEqual([]);
    expect(primary.closed).toBe(true);
    const left = logger.errors.filter((e) => e.msg.includes("never received"));
    expect(left.map((e) => e.obj.pending)).toEqual([10]);
    expect(g.pendingSettlements).toBe(10);
  });
});

describe("GuardedStore degraded admissions", () => {
  const scope: ScopeCharge = {
    key: "user:{u}:day:d",
    kind: "user",
    window: "day",
    limit: 1000,
    resetAtMs: 9e12,
    expireAtMs: 9e12,
  };
  const reserve = (id: string, nowMs: number, tokens = 10, ttlMs = 1000): ReserveRequest => ({
    id,
    tokens,
    scopes: [scope],
    nowMs,
    ttlMs,
  });

  it("does not remember admissions forever when they are never settled", async () => {
    for (const mode of ["allow", "local"] as const) {
      const primary = new FakePrimary();
      primary.down = true;
      const g = new GuardedStore({
        primary,
        onError: mode,
        logger: recordingLogger(),
        localLimitFraction: 1,
        retryMs: 3_600_000,
      });
      open.push(g);
      // 5000 unsettled admissions over 5 s, each live for 10 ms: pruned as they go (no timer).
      for (let i = 0; i < 5000; i++) {
        const r = await g.reserve(reserve(`r${i}`, 1000 + i, 0, 10));
        expect(r.ok).toBe(true);
      }
      expect(g.degradedCount, mode).toBeLessThanOrEqual(1024);
    }
  });

  it("the retry timer prunes what expired after the outage", async () => {
    const primary = new FakePrimary();
    primary.down = true;
    const g = make(primary, "local");
    for (let i = 0; i < 100; i++) await g.reserve(reserve(`r${i}`, 1000, 1));
    expect(g.degradedCount).toBe(100);
    primary.down = false;
    await g.reserve(reserve("later", 10_000)); // the clock moves on
    await g.flush();
    expect(g.degradedCount).toBe(0);
    // A late settle of a pruned id goes to the primary as before.
    expect(await g.settle(settlement("r0", 10_000, 5, [scope]))).toBe("settled");
    expect(primary.applied).toEqual(["r0"]);
  });

  it("a reused id whose old local admission expired is not charged to the local store", async () => {
    const primary = new FakePrimary();
    primary.down = true;
    const g = make(primary, "local"); // local cap: 1000 × 0.1 = 100
    expect((await g.reserve(reserve("x", 1000))).ok).toBe(true); // never settled; expires at 2000
    primary.down = false;
    // Reused, on the primary this time.
    expect(await g.reserve(reserve("x", 10_000))).toEqual({ ok: true, duplicate: false, committed: [10] });
    expect(await g.settle(settlement("x", 10_000, 60, [scope]))).toBe("settled");
    primary.down = true;
    // Had x's 60 tokens reached the local counters, 60 + 50 > 100 would refuse this.
    const r = await g.reserve(reserve("y", 10_000, 50));
    expect(r).toMatchObject({ ok: true, degraded: "local" });
  });

  it("a live local admission is still settled in the local store", async () => {
    const primary = new FakePrimary();
    primary.down = true;
    const g = make(primary, "local");
    expect((await g.reserve(reserve("x", 1000))).ok).toBe(true);
    expect(await g.settle(settlement("x", 1500, 60, [scope]))).toBe("deferred");
    expect(g.degradedCount).toBe(0);
    expect((await g.reserve(reserve("y", 1500, 50))).ok).toBe(false); // 60 + 50 > 100
  });

  it("a refusal by the local cap names the limit that refused (the process's share), not the scope's", async () => {
    const primary = new FakePrimary();
    primary.down = true;
    const g = make(primary, "local"); // local cap: 1000 × 0.1 = 100
    const r = await g.reserve(reserve("big", 1000, 150));
    expect(r).toEqual({ ok: false, scopeIndex: 0, committed: 0, limit: 100 });
  });
});

describe("GuardedStore run-time tables", () => {
  const key: StoredApiKey = {
    hash: `sha256:${"a".repeat(64)}`,
    user: "alice",
    tier: "pro",
    trusted: false,
    createdAtMs: 1,
  };
  for (const mode of ["deny", "allow", "local"] as const) {
    it(`go to the shared store, and fail when it is down whatever on_error says (${mode})`, async () => {
      const primary = new FakePrimary();
      const g = make(primary, mode);
      expect(await g.addApiKey(key)).toBe(true);
      await g.setUserTier("alice", "pro");
      expect((await primary.tables.readApiKeys()).entries).toEqual([key]);
      expect((await g.readUserTiers()).entries).toEqual({ alice: "pro" });
      primary.down = true;
      // An admin change kept in one process would never reach the others: it must fail, not degrade.
      await expect(g.setUserTier("alice", "free")).rejects.toMatchObject({ name: "StoreUnavailableError" });
      await expect(g.addApiKey({ ...key, hash: `sha256:${"b".repeat(64)}` })).rejects.toMatchObject({
        name: "StoreUnavailableError",
      });
      await expect(g.deleteApiKey(key.hash)).rejects.toMatchObject({ name: "StoreUnavailableError" });
      await expect(g.readApiKeys()).rejects.toMatchObject({ name: "StoreUnavailableError" });
      primary.down = false;
      expect((await g.readUserTiers()).entries).toEqual({ alice: "pro" });
      expect((await g.readApiKeys()).entries).toEqual([key]);
    });
  }
});
