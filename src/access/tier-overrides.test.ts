import { describe, expect, it } from "vitest";
import { loadConfig } from "../config/load.js";
import type { Logger } from "../core/logger.js";
import { createMemoryStore } from "../stores/memory-store.js";
import { createTierOverrides } from "./tier-overrides.js";

describe("tier overrides", () => {
  it("apply at once in the process that set them; an override naming a tier this config lacks is ignored, with a warning", async () => {
    const config = loadConfig({ tiers: { free: { daily_tokens: 10 }, pro: { daily_tokens: 100 } } }, {});
    const store = createMemoryStore();
    const warnings: unknown[] = [];
    const logger: Logger = { info() {}, warn: (o) => void warnings.push(o), error() {} };
    const tiers = createTierOverrides({ config, store, logger, refreshMs: 0 });
    await tiers.set("alice", "pro");
    expect(tiers.get("alice")).toBe("pro");
    // Written by a process whose config has a "gold" tier.
    await store.setUserTier("bob", "gold");
    await tiers.refresh();
    expect(tiers.get("bob")).toBeUndefined();
    expect(tiers.get("alice")).toBe("pro");
    expect(warnings).toEqual([{ overrides: [{ user: "bob", tier: "gold" }], count: 1 }]);
    await tiers.set("alice", undefined);
    expect(tiers.get("alice")).toBeUndefined();
    // Own entries only: no prototype property reads as an override.
    expect(tiers.get("constructor")).toBeUndefined();
    tiers.close();
  });
});
