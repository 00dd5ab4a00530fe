import { afterEach, describe, expect, it, vi } from "vitest";
import { loadConfig } from "../config/load.js";
import { createConfiguredEngine } from "../configured-engine.js";
import { isTokenBudgetError } from "../core/errors.js";
import type { Logger } from "../core/logger.js";
import { createMemoryStore, type MemoryStore } from "../stores/memory-store.js";
import { type Store, StoreUnavailableError } from "../stores/types.js";
import { createSwitchBoard } from "../switches/switch-board.js";
import { createCostWatch } from "./cost-watch.js";
import type { AlertDispatcher } from "./dispatcher.js";
import type { Alert } from "./types.js";

const msgs = [{ role: "user", content: "review this code please" }];
const T0 = Date.parse("2026-11-24T10:15:00Z");

/** gpt-4.1: $2 / 1M input, $8 / 1M output, so each request below (1000 in, 500 out) costs $0.006. */
const config = loadConfig(
  {
    features: {
      code_review: {
        model: "gpt-4.1",
        max_input: 32000,
        max_output: 2000,
        on_exceed: "reject",
        hourly_cost_usd: 0.02,
      },
      chat: { model: "gpt-4o", max_input: 4000, max_output: 500, on_exceed: "trim" },
    },
    tiers: { free: { daily_tokens: 1_000_000 } },
    default_tier: "free",
    alerts: { sinks: [{ type: "log" }] },
  },
  {},
);

/** `mem` with some methods replaced (a store that fails now and then). */
function flaky(mem: MemoryStore, overrides: Partial<Store>): Store {
  return new Proxy(mem, {
    get(t, p) {
      const o = overrides[p as keyof Store];
      if (o !== undefined) return o;
      const v = t[p as keyof typeof t];
      return typeof v === "function" ? v.bind(t) : v;
    },
  }) as Store;
}

/** Every hourly spend counter reads $0.03: past the feature's $0.02. */
const overCap: Store["readSpend"] = async (keys) =>
  keys.map(() => ({ costNanoUsd: 30_000_000, inputTokens: 0, outputTokens: 0, requests: 1 }));

/** A dispatcher that only records. */
function recorder(): { dispatcher: AlertDispatcher; sent: Alert[] } {
  const sent: Alert[] = [];
  return {
    sent,
    dispatcher: {
      dispatch: (a) => void sent.push(a),
      drain: async () => {},
      close: async () => {},
      dropped: 0,
      failed: 0,
    },
  };
}

function capture(): { logger: Logger; warnings: string[]; errors: string[]; infos: string[] } {
  const warnings: string[] = [];
  const errors: string[] = [];
  const infos: string[] = [];
  return {
    warnings,
    errors,
    infos,
    logger: {
      info: (_o, m) => void infos.push(m ?? ""),
      warn: (_o, m) => void warnings.push(m ?? ""),
      error: (_o, m) => void errors.push(m ?? ""),
    },
  };
}

async function engineOn(store: Store, logger: Logger) {
  const ce = createConfiguredEngine({ config, store, logger, clock: { nowMs: () => T0 } });
  await ce.ready;
  const one = async (feature = "code_review") => {
    const a = await ce.engine.admit({ feature, user: "dev", messages: msgs });
    return a.settle({ prompt_tokens: 1000, completion_tokens: 500 });
  };
  return { ...ce, one };
}

const breakerAlerts = (warnings: string[]) =>
  warnings.filter((w) => /feature code_review spent \$0\.0\d+ .*threshold \$0\.02/.test(w));

describe("hourly cost breaker under store failures", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it("a claim that failed with a store error is asked again on the next spend: the breaker trips and alerts once", async () => {
    const { logger, warnings, errors } = capture();
    let claims = 0;
    const mem = createMemoryStore();
    const store = flaky(mem, {
      claimOnce: (key, exp, now) =>
        ++claims === 1 ? Promise.reject(new StoreUnavailableError("blip")) : mem.claimOnce(key, exp, now),
    });
    const tf = await engineOn(store, logger);
    for (let i = 0; i < 4; i++) await tf.one(); // $0.024: the 4th crosses $0.02, its claim fails
    expect(claims).toBe(1);
    expect(errors).toContain("hourly cost alert claim failed; will ask again on the next spend");
    expect(tf.switches.isEnabled("code_review")).toBe(true);
    await tf.one(); // asks again, wins, trips
    expect(claims).toBe(2);
    const e = await tf.engine
      .admit({ feature: "code_review", user: "dev", messages: msgs })
      .catch((x: unknown) => x);
    expect(isTokenBudgetError(e) && e.code).toBe("feature_disabled");
    await tf.one("chat"); // later spend does not ask again
    expect(claims).toBe(2);
    await tf.close();
    expect(breakerAlerts(warnings)).toHaveLength(1);
    expect(breakerAlerts(warnings)[0]).toMatch(/switched off until 11:00Z/);
  });

  it("a claim the store took but whose reply was lost is won when asked again: the breaker trips and alerts once", async () => {
    const { logger, warnings } = capture();
    let calls = 0;
    const mem = createMemoryStore();
    const store = flaky(mem, {
      claimOnce: async (key, exp, now, owner) => {
        const won = await mem.claimOnce(key, exp, now, owner);
        if (++calls === 1) throw new StoreUnavailableError("timed out (the claim was taken)");
        return won;
      },
    });
    const tf = await engineOn(store, logger);
    for (let i = 0; i < 4; i++) await tf.one(); // crosses; the claim is taken, its reply lost
    expect(tf.switches.isEnabled("code_review")).toBe(true);
    await tf.one(); // asks again with the lost call's token: it is ours
    expect(calls).toBe(2);
    expect(tf.switches.isEnabled("code_review")).toBe(false);
    await tf.one("chat");
    await tf.close();
    expect(breakerAlerts(warnings)).toHaveLength(1);
  });

  it("a feature switched off by hand stays off when the breaker trips afterwards (not just until the next hour)", async () => {
    const { logger } = capture();
    const mem = createMemoryStore();
    const tf = await engineOn(mem, logger);
    // Admitted before the operator pulls the switch; their spend lands after it and crosses the cap.
    const admitted = await Promise.all(
      Array.from({ length: 4 }, () =>
        tf.engine.admit({ feature: "code_review", user: "dev", messages: msgs }),
      ),
    );
    await tf.switches.set("code_review", false);
    for (const a of admitted) await a.settle({ prompt_tokens: 1000, completion_tokens: 500 });
    expect(await mem.getSwitches(T0)).toEqual({ code_review: false });
    // Past the breaker's hour the hand-made switch is still there.
    expect(await mem.getSwitches(T0 + 2 * 3_600_000)).toEqual({ code_review: false });
    await tf.close();
  });

  it("a won claim whose switch the store did not take is retried on later spend until the store holds it; tripped and alerted once", async () => {
    const { logger, warnings, errors, infos } = capture();
    const mem = createMemoryStore();
    let failSwitch = 1;
    let switchesTaken = 0;
    const store = flaky(mem, {
      setSwitch: async (f, on, until) => {
        if (failSwitch-- > 0) throw new StoreUnavailableError("blip");
        switchesTaken++;
        return mem.setSwitch(f, on, until);
      },
    });
    const tf = await engineOn(store, logger);
    for (let i = 0; i < 4; i++) await tf.one(); // crosses: claim won, switching off fails
    expect(errors).toContain("hourly cost breaker: could not switch the feature off; retrying");
    // A shared store's switch poll drops a breaker the store does not hold: the feature is back on.
    await tf.switches.refresh();
    expect(await mem.getSwitches(T0)).toEqual({});
    await tf.one("chat"); // any later spend retries the trip
    expect(await mem.getSwitches(T0)).toEqual({ code_review: false });
    await tf.switches.refresh();
    expect(tf.switches.isEnabled("code_review")).toBe(false);
    expect(infos).toContain("hourly cost breaker: feature switched off after a retry");
    await tf.one("chat");
    expect(switchesTaken).toBe(1); // tripped once
    await tf.close();
    expect(breakerAlerts(warnings)).toHaveLength(1);
    expect(breakerAlerts(warnings)[0]).toMatch(/switching it off until 11:00Z failed, retrying/);
  });

  it("with no further spend, the trip is retried in the background until the store holds it", async () => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    const { logger } = capture();
    const mem = createMemoryStore();
    let failSwitch = 2;
    let trips = 0;
    const store = flaky(mem, {
      readSpend: overCap,
      setSwitch: async (f, on, until) => {
        trips++;
        if (failSwitch-- > 0) throw new StoreUnavailableError("blip");
        return mem.setSwitch(f, on, until);
      },
    });
    // The test's clock, not the wall clock (the breaker lapses at 11:00 of the test's day).
    const switches = createSwitchBoard({ config, store, logger, refreshMs: 0, nowMs: () => T0 });
    const { dispatcher, sent } = recorder();
    const watch = createCostWatch({ config, store, dispatcher, logger, switches, nowMs: () => T0 });
    await watch.afterSpend({ feature: "code_review", atMs: T0, costNanoUsd: 6_000_000 });
    expect(trips).toBe(1);
    await vi.advanceTimersByTimeAsync(1000);
    expect(trips).toBe(2); // failed again: backs off
    await vi.advanceTimersByTimeAsync(1999);
    expect(trips).toBe(2);
    await vi.advanceTimersByTimeAsync(1);
    expect(trips).toBe(3);
    expect(await mem.getSwitches(T0)).toEqual({ code_review: false });
    await vi.advanceTimersByTimeAsync(60_000);
    expect(trips).toBe(3); // done: no more retries
    expect(sent.filter((a) => a.scope === "feature:code_review")).toHaveLength(1);
  });

  it("concurrent spend asks the store once while a claim is in flight; a failed claim is asked again, then never", async () => {
    const { logger } = capture();
    const mem = createMemoryStore();
    let claims = 0;
    let answer: ((won: boolean | Error) => void) | undefined;
    const store = flaky(mem, {
      readSpend: overCap,
      claimOnce: (key, exp, now) => {
        claims++;
        if (claims > 1) return mem.claimOnce(key, exp, now);
        return new Promise<boolean>((resolve, reject) => {
          answer = (r) => (r instanceof Error ? reject(r) : resolve(r));
        });
      },
    });
    const switches = createSwitchBoard({ config, store, logger, refreshMs: 0, nowMs: () => T0 });
    const { dispatcher, sent } = recorder();
    const watch = createCostWatch({ config, store, dispatcher, logger, switches, nowMs: () => T0 });
    const spend = () => watch.afterSpend({ feature: "code_review", atMs: T0, costNanoUsd: 6_000_000 });
    const first = spend();
    await Promise.all([spend(), spend(), spend()]);
    expect(claims).toBe(1);
    answer?.(new StoreUnavailableError("timeout"));
    await first;
    await Promise.all([spend(), spend()]);
    expect(claims).toBe(2);
    await spend();
    expect(claims).toBe(2);
    expect(switches.isEnabled("code_review")).toBe(false);
    expect(await mem.getSwitches(T0)).toEqual({ code_review: false });
    expect(sent).toHaveLength(1);
  });
});
