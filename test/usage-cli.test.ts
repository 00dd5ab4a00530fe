import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, inject, it } from "vitest";
import type { CliIo } from "../src/cli/io.js";
import { main } from "../src/cli/main.js";
import { usd } from "../src/cli/table.js";
import { silentLogger } from "../src/core/logger.js";
import { spendKeys } from "../src/core/scopes.js";
import { hourWindow } from "../src/core/windows.js";
import { createRedisStore } from "../src/stores/redis/redis-store.js";
import { createTokenfuse } from "../src/tokenfuse.js";
import { testKeyPrefix } from "./helpers/redis-keys.js";

describe("spend counters and tokenfuse usage", () => {
  it("hourly counters equal the sum of per-request costs exactly, and usage prints them", async () => {
    const prefix = testKeyPrefix("usage");
    const config = {
      store: { url: inject("redisUrl"), key_prefix: prefix },
      features: {
        chat: { model: "gpt-4o", max_input: 4000, max_output: 500, on_exceed: "trim" },
        cheap: { model: "gpt-4.1-nano", max_input: 1000, max_output: 200, on_exceed: "truncate" },
      },
      tiers: { free: { daily_tokens: 1_000_000 } },
      default_tier: "free",
    };
    const store = createRedisStore({ url: inject("redisUrl"), keyPrefix: prefix });
    // A fixed instant early in the current hour, so the counters cannot split across two hours.
    const at = hourWindow(Date.now()).startMs + 1000;
    const tf = createTokenfuse({ config, store, logger: silentLogger, clock: { nowMs: () => at } });
    let chatCost = 0;
    let totalCost = 0;
    for (let i = 0; i < 12; i++) {
      const feature = i % 3 === 0 ? "cheap" : "chat";
      const a = await tf.admit({
        feature,
        user: "ana",
        messages: [{ role: "user", content: `question ${i}` }],
      });
      const s = await a.settle({
        prompt_tokens: a.inputTokens + 1000 * i,
        completion_tokens: 7 * i + 3,
        prompt_tokens_details: { cached_tokens: 333 * i },
        completion_tokens_details: { reasoning_tokens: i },
      });
      expect(Number.isSafeInteger(s.costNanoUsd)).toBe(true);
      totalCost += s.costNanoUsd ?? 0;
      if (feature === "chat") chatCost += s.costNanoUsd ?? 0;
    }
    const hour = hourWindow(at).id;
    const [chat, global] = await store.readSpend([
      spendKeys.featureHour("chat", hour),
      spendKeys.globalHour(hour),
    ]);
    expect(chat?.costNanoUsd).toBe(chatCost);
    expect(chat?.requests).toBe(8);
    expect(global?.costNanoUsd).toBe(totalCost);
    const budget = await tf.remaining({ user: "ana" });
    await tf.close();

    const path = join(mkdtempSync(join(tmpdir(), "tf-usage-")), "tokenfuse.json");
    writeFileSync(path, JSON.stringify(config));
    const out: string[] = [];
    const io: CliIo = { out: (s) => out.push(s), err: (s) => out.push(s), stdin: async () => "", env: {} };
    expect(await main(["usage", "--hours", "2", "--user", "ana", "--config", path], io)).toBe(0);
    const text = out.join("");
    expect(text).toMatch(/feature chat\s+8\s/);
    expect(text).toMatch(/model gpt-4o\s+8\s/);
    expect(text).toMatch(/model gpt-4\.1-nano\s+4\s/);
    expect(text).toMatch(/user ana\s+12\s/);
    expect(text).toContain(`total cost in the last 2 h (all users): ${usd(totalCost)}`);
    // Every request here was ana's: her own total is the same amount, from her day counters.
    expect(text).toContain(`user ana's cost on the days shown: ${usd(totalCost)}`);
    // Her budgets, as the library (and the gateway's GET /v1/budget) reports them (SPEC §4).
    const used = budget.user.day.used;
    expect(used).toBeGreaterThan(12_000);
    expect(text).toContain("budgets of user ana (tier free) now:");
    const n = (x: number) => x.toLocaleString("en-US");
    expect(text).toMatch(
      new RegExp(`user ana, day\\s+${n(1_000_000)}\\s+${n(used)}\\s+0\\s+${n(1_000_000 - used)}\\s`),
    );
    expect(text).toMatch(/feature chat, day\s+none\s/);
  });

  it("a user's days are read in the zone of the tier their budget is counted in (their key's, or a run-time override), not the default tier's", async () => {
    const prefix = testKeyPrefix("ut");
    const config = {
      store: { url: inject("redisUrl"), key_prefix: prefix },
      features: { chat: { model: "gpt-4o", max_input: 4000, max_output: 500, on_exceed: "trim" } },
      tiers: {
        free: { daily_tokens: 1_000_000 },
        kiri: { daily_tokens: 1_000_000, time_zone: "Pacific/Kiritimati" },
      },
      default_tier: "free",
      keys: [{ hash: `sha256:${"a".repeat(64)}`, user: "zed", tier: "kiri" }],
    };
    const store = createRedisStore({ url: inject("redisUrl"), keyPrefix: prefix });
    const tf = createTokenfuse({ config, store, logger: silentLogger });
    for (const user of ["zed", "olga"]) {
      const a = await tf.admit({
        feature: "chat",
        user,
        tier: "kiri",
        messages: [{ role: "user", content: "hi" }],
      });
      await a.settle({ prompt_tokens: a.inputTokens, completion_tokens: 5 });
    }
    await tf.close();
    const path = join(mkdtempSync(join(tmpdir(), "tf-usage-")), "tokenfuse.json");
    writeFileSync(path, JSON.stringify(config));
    const usage = async (...args: string[]) => {
      const out: string[] = [];
      const io: CliIo = { out: (s) => out.push(s), err: (s) => out.push(s), stdin: async () => "", env: {} };
      expect(await main(["usage", "--hours", "2", ...args, "--config", path], io)).toBe(0);
      return out.join("");
    };
    // zed's key is on tier kiri: found without --tier.
    expect(await usage("--user", "zed")).toMatch(/\(Pacific\/Kiritimati\)\s+user zed\s+1\s/);
    // olga has no key: her days are read in the default tier's zone (UTC) unless a run-time override
    // names her tier. (Whether a UTC day shows her usage depends on the hour: counters are named by
    // the local date, and between 00:00 and 10:00 UTC Kiritimati's date is one of the UTC dates read.)
    expect(await usage("--user", "olga")).not.toMatch(/Kiritimati\)\s+user olga/);
    const admin = createRedisStore({ url: inject("redisUrl"), keyPrefix: prefix });
    await admin.setUserTier("olga", "kiri");
    await admin.close();
    expect(await usage("--user", "olga")).toMatch(/\(Pacific\/Kiritimati\)\s+user olga\s+1\s/);
  });
});
