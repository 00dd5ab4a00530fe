import { describe, expect, it } from "vitest";
import { loadConfig } from "../config/load.js";
import { parseKeyRequest, resolveStoredKey } from "./key-entries.js";
import { isBudgetUserId } from "./user-ids.js";

const config = loadConfig(
  {
    features: {
      chat: { model: "gpt-4o", max_input: 1000, max_output: 100, on_exceed: "trim" },
      summarize: { model: "gpt-4o-mini", max_input: 1000, max_output: 100, on_exceed: "reject" },
    },
    tiers: { free: { daily_tokens: 10_000 }, pro: { daily_tokens: 100_000 } },
  },
  {},
);

describe("key requests", () => {
  it("accepts what a config entry accepts", () => {
    expect(parseKeyRequest({ user: "alice" }, config)).toEqual({
      ok: true,
      entry: { user: "alice", trusted: false },
    });
    expect(
      parseKeyRequest(
        {
          user: "a.b+c@d",
          tier: "pro",
          features: ["chat", "summarize"],
          default_feature: "chat",
          trusted: true,
        },
        config,
      ),
    ).toEqual({
      ok: true,
      entry: {
        user: "a.b+c@d",
        tier: "pro",
        features: ["chat", "summarize"],
        defaultFeature: "chat",
        trusted: true,
      },
    });
  });

  it.each([
    [{}, "user", /user is required/],
    [{ user: "" }, "user", /user must be 1-128/],
    [{ user: "a/b" }, "user", /user must be/],
    [{ user: "a:b" }, "user", /user must be/],
    [{ user: "-a" }, "user", /user must be/],
    [{ user: "x".repeat(129) }, "user", /user must be/],
    [{ user: 7 }, "user", /user must be/],
    [{ user: "a", tier: "gold" }, "tier", /unknown tier "gold"; tiers: free, pro/],
    [{ user: "a", tier: "constructor" }, "tier", /unknown tier/],
    [{ user: "a", tier: 1 }, "tier", /tier must be a string/],
    [{ user: "a", features: [] }, "features", /non-empty list/],
    [{ user: "a", features: "chat" }, "features", /non-empty list/],
    [{ user: "a", features: ["nope"] }, "features", /unknown feature "nope"; features: chat, summarize/],
    [{ user: "a", features: ["chat", "chat"] }, "features", /twice/],
    [{ user: "a", features: ["chat"], default_feature: "summarize" }, "default_feature", /not among/],
    [{ user: "a", default_feature: "nope" }, "default_feature", /unknown feature/],
    [{ user: "a", trusted: "yes" }, "trusted", /true or false/],
    [{ user: "a", teir: "pro" }, "teir", /unknown field "teir"; allowed fields: user, tier/],
    [{ user: "a", key: "tf-chosen" }, "key", /unknown field "key"/],
  ])("refuses %j, naming %s", (body, param, message) => {
    const r = parseKeyRequest(body as Record<string, unknown>, config);
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.param).toBe(param);
      expect(r.message).toMatch(message);
    }
  });

  it("resolves a stored key like the config loader, or says why this config cannot use it", () => {
    const base = { hash: `sha256:${"a".repeat(64)}`, user: "alice", trusted: false, createdAtMs: 1 };
    expect(resolveStoredKey({ ...base, features: ["summarize"] }, config)).toEqual({
      hash: base.hash,
      user: "alice",
      trusted: false,
      features: ["summarize"],
      defaultFeature: "summarize",
    });
    expect(resolveStoredKey({ ...base, tier: "gold" }, config)).toMatch(/unknown tier "gold"/);
    expect(resolveStoredKey({ ...base, features: ["chat", "gone"] }, config)).toMatch(
      /unknown feature "gone"/,
    );
  });

  it("knows the ids budgets are charged to", () => {
    for (const ok of ["alice", "backend/u1", "backend/_x:y@z", "anonymous"])
      expect(isBudgetUserId(ok)).toBe(true);
    for (const bad of ["", "/u1", "backend/", "a/b/c", "a b", "#rev", "_a", `a/${"x".repeat(129)}`, 5])
      expect(isBudgetUserId(bad)).toBe(false);
  });

  it("refuses a stored key whose user is not a key user, whoever wrote it (no way into a trusted key's end users)", () => {
    for (const user of ["backend/u1", "", "a b", "__proto__/x"])
      expect(
        resolveStoredKey({ hash: `sha256:${"d".repeat(64)}`, user, trusted: false, createdAtMs: 1 }, config),
      ).toMatch(/not a valid key user/);
  });
});
