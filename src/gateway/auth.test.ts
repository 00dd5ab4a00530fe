import { describe, expect, it } from "vitest";
import { loadConfig } from "../config/load.js";
import type { KeyConfig } from "../config/types.js";
import { createAuthenticator, hashApiKey } from "./auth.js";

const CONFIG_KEY = "tf-config-key-0123456789";
const STORE_KEY = "tf-store-key-0123456789";

const config = loadConfig(
  {
    tiers: {
      free: { daily_tokens: 10_000 },
      pro: { daily_tokens: 100_000 },
      enterprise: { daily_tokens: 1e6 },
    },
    keys: [
      { hash: hashApiKey(CONFIG_KEY), user: "alice", tier: "free" },
      { hash: hashApiKey("tf-backend-0123456789"), user: "backend", trusted: true },
    ],
  },
  {},
);

describe("authenticator with run-time keys and tiers", () => {
  const storeKeys = new Map<string, KeyConfig>();
  const overrides = new Map<string, string>();
  const auth = createAuthenticator(config, { keys: storeKeys, tiers: overrides });

  it("accepts config keys first, then run-time keys; refuses others", () => {
    // A run-time entry with a config key's hash never replaces the config's entry.
    storeKeys.set(hashApiKey(CONFIG_KEY), { hash: hashApiKey(CONFIG_KEY), user: "mallory", trusted: true });
    storeKeys.set(hashApiKey(STORE_KEY), {
      hash: hashApiKey(STORE_KEY),
      user: "carol",
      tier: "pro",
      trusted: false,
    });
    expect(auth.authenticate(`Bearer ${CONFIG_KEY}`, undefined)).toMatchObject({
      user: "alice",
      tier: "free",
    });
    expect(() => auth.authenticate(`Bearer ${CONFIG_KEY}`, "x")).toThrow(/may not name end users/);
    expect(auth.authenticate(`Bearer ${STORE_KEY}`, undefined)).toMatchObject({ user: "carol", tier: "pro" });
    storeKeys.delete(hashApiKey(STORE_KEY));
    expect(() => auth.authenticate(`Bearer ${STORE_KEY}`, undefined)).toThrow(/unknown API key/);
  });

  it("applies the override of the user budgets are charged to (namespaced for end users)", () => {
    overrides.set("alice", "enterprise");
    overrides.set("backend/u1", "pro");
    overrides.set("u2", "enterprise"); // not namespaced: not the end user u2 of backend
    expect(auth.authenticate(`Bearer ${CONFIG_KEY}`, undefined)).toMatchObject({ tier: "enterprise" });
    expect(auth.authenticate("Bearer tf-backend-0123456789", "u1")).toMatchObject({
      user: "backend/u1",
      tier: "pro",
    });
    expect(auth.authenticate("Bearer tf-backend-0123456789", "u2")).toMatchObject({
      user: "backend/u2",
      tier: undefined,
    });
    overrides.delete("alice");
    expect(auth.authenticate(`Bearer ${CONFIG_KEY}`, undefined)).toMatchObject({ tier: "free" });
  });

  it("without keys in the config stays keyless whatever the run-time keys hold", () => {
    const keyless = createAuthenticator(loadConfig({}, {}), {
      keys: new Map([
        [hashApiKey(STORE_KEY), { hash: hashApiKey(STORE_KEY), user: "carol", trusted: false }],
      ]),
      tiers: new Map([["anonymous", "pro"]]),
    });
    expect(keyless.required).toBe(false);
    expect(keyless.authenticate(undefined, undefined)).toMatchObject({ user: "anonymous", tier: "pro" });
    expect(keyless.authenticate(`Bearer ${STORE_KEY}`, undefined)).toMatchObject({ user: "anonymous" });
  });
});
