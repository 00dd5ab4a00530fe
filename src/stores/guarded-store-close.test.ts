import { describe, expect, it } from "vitest";
import type { Logger } from "../core/logger.js";
import { GuardedStore } from "./guarded-store.js";
import { MemoryStore } from "./memory-store.js";
import {
  type ReserveRequest,
  type ReserveResult,
  type SettleRequest,
  type SettleStatus,
  StoreUnavailableError,
} from "./types.js";

/** A shared store (memory) whose calls fail while `down`, ambiguously (a timeout), after `delayMs`. */
class FlakyPrimary extends MemoryStore {
  down = false;
  delayMs = 0;
  private async fail(): Promise<never> {
    if (this.delayMs > 0) await new Promise((r) => setTimeout(r, this.delayMs));
    throw new StoreUnavailableError("Command timed out");
  }
  override async reserve(req: ReserveRequest): Promise<ReserveResult> {
    if (this.down) return this.fail();
    return super.reserve(req);
  }
  override async settle(req: SettleRequest): Promise<SettleStatus> {
    if (this.down) return this.fail();
    return super.settle(req);
  }
}

function recordingLogger(): Logger & { lines: Array<{ level: string; msg: string }> } {
  const lines: Array<{ level: string; msg: string }> = [];
  return {
    lines,
    info: (_o, msg = "") => void lines.push({ level: "info", msg }),
    warn: (_o, msg = "") => void lines.push({ level: "warn", msg }),
    error: (_o, msg = "") => void lines.push({ level: "error", msg }),
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("guarded store: close", () => {
  it("waits for a settlement on its way to the store, so its failure is queued, drained and said", async () => {
    const primary = new FlakyPrimary();
    primary.down = true;
    primary.delayMs = 100; // each call times out after 100 ms
    const logger = recordingLogger();
    const g = new GuardedStore({ primary, onError: "allow", logger, retryMs: 3_600_000 });
    const settled = g.settle({
      id: "in-flight",
      actualTokens: 700,
      reservedTokens: 800,
      scopes: [],
      nowMs: 1,
    });
    await g.close();
    expect(await settled).toBe("deferred");
    // Before the fix the failure was queued after close() returned: no timer left to retry it, and
    // close() did not count it. Now close() tried it once more and says it was never received.
    expect(g.pendingSettlements).toBe(1);
    expect(logger.lines.filter((l) => l.level === "error").map((l) => l.msg)).toEqual([
      "closing with settlements the store never received",
    ]);
  });

  it("a settlement that fails after close is said and refused, never queued where nothing retries it", async () => {
    const primary = new FlakyPrimary();
    const logger = recordingLogger();
    const g = new GuardedStore({ primary, onError: "allow", logger, retryMs: 3_600_000 });
    await g.close();
    primary.down = true;
    await expect(
      g.settle({ id: "late", actualTokens: 5, reservedTokens: 10, scopes: [], nowMs: 1 }),
    ).rejects.toThrow(StoreUnavailableError);
    expect(g.pendingSettlements).toBe(0);
    expect(g.settlementsLostAtClose).toBe(1);
    expect(logger.lines.map((l) => l.msg)).toContain(
      "settlement failed after the store was closed: it is not applied",
    );
  });
});

describe("guarded store: abandons", () => {
  it("an abandon whose retry may have run is retried as long as it takes, never reported as an unconfirmed settlement", async () => {
    const primary = new FlakyPrimary();
    const logger = recordingLogger();
    const g = new GuardedStore({
      primary,
      onError: "deny",
      logger,
      retryMs: 3_600_000,
      maxUnsureRetryMs: 50,
    });
    try {
      primary.down = true;
      // deny: refused; its reservation may have run, so an abandon is queued.
      await expect(
        g.reserve({ id: "r1", tokens: 100, scopes: [], nowMs: 1, ttlMs: 60_000 }),
      ).rejects.toThrow();
      expect(g.pendingSettlements).toBe(1);
      await g.flush(); // the abandon's own retry times out too
      await sleep(80); // past maxUnsureRetryMs
      primary.down = false;
      await g.flush();
      expect(g.pendingSettlements).toBe(0); // applied
      expect(g.unconfirmedSettlements).toBe(0);
      expect(logger.lines.filter((l) => l.level === "error").map((l) => l.msg)).toEqual([]);
    } finally {
      await g.close();
    }
  });
});
