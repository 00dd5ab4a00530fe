/**
 * `tokenfuse usage --user U` (no --tier) resolves U's tier from the store's run-time overrides and
 * stored keys. Like the gateway (tier-overrides.ts, key-ring.ts), it ignores an override or a stored
 * key naming a tier the config no longer defines; it failed with "unknown tier" (exit 2) before.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { describe, expect, inject, it } from "vitest";
import type { CliIo } from "../src/cli/io.js";
import { main } from "../src/cli/main.js";
import { createRedisStore } from "../src/stores/redis/redis-store.js";
import { deleteKeys, testKeyPrefix } from "./helpers/redis-keys.js";

describe("tokenfuse usage --user with a stale tier override", () => {
  it("still prints the user's usage (the override is ignored, as the gateway ignores it)", async () => {
    const prefix = testKeyPrefix("ust");
    const url = inject("redisUrl");
    const config = {
      store: { url, key_prefix: prefix },
      features: { chat: { model: "gpt-4o", max_input: 4000, max_output: 500, on_exceed: "trim" } },
      tiers: { free: { daily_tokens: 1_000_000 } },
      default_tier: "free",
    };
    // An override set when the config still had a "gold" tier (since removed from the config).
    const admin = createRedisStore({ url, keyPrefix: prefix });
    await admin.setUserTier("olga", "gold");
    await admin.close();
    const path = join(mkdtempSync(join(tmpdir(), "tf-r6-")), "tokenfuse.json");
    writeFileSync(path, JSON.stringify(config));
    const out: string[] = [];
    const io: CliIo = { out: (s) => out.push(s), err: (s) => out.push(s), stdin: async () => "", env: {} };
    try {
      const code = await main(["usage", "--hours", "1", "--user", "olga", "--config", path], io);
      expect(out.join("")).not.toMatch(/unknown tier/);
      expect(code).toBe(0);
    } finally {
      const r = new Redis(url);
      await deleteKeys(r, prefix);
      r.disconnect();
    }
  }, 15_000);
});
