import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../config/load.js";
import { createLogger, silentLogger } from "../core/logger.js";
import { createMemoryStore, type MemoryStore } from "../stores/memory-store.js";
import { StoreUnavailableError } from "../stores/types.js";
import { hashApiKey } from "./auth.js";
import { createGateway, type Gateway } from "./server.js";

const ADMIN = `admin-token-${randomUUID()}`;
const OPS_KEY = `tf-ops-${randomUUID()}`;
const BACKEND_KEY = `tf-backend-${randomUUID()}`;

function configWith(extra: Record<string, unknown> = {}) {
  return loadConfig(
    {
      // The mock generates up to 5 000 tokens: with the free tier's 10 000 a day, the second request
      // of a day no longer fits (input + a 5 000-token cap on top of ~5 000 used).
      upstreams: { local: { type: "mock", completion_tokens: 5000 } },
      features: {
        chat: { model: "gpt-4o", max_input: 1000, max_output: 5000, on_exceed: "reject" },
        summarize: { model: "gpt-4o-mini", max_input: 1000, max_output: 100, on_exceed: "reject" },
      },
      tiers: { free: { daily_tokens: 10_000 }, pro: { daily_tokens: 100_000 } },
      default_tier: "free",
      keys: [
        { hash: hashApiKey(OPS_KEY), user: "ops", tier: "pro" },
        { hash: hashApiKey(BACKEND_KEY), user: "backend", trusted: true },
      ],
      admin: { token: ADMIN },
      ...extra,
    },
    {},
  );
}

type Json = Record<string, unknown> & {
  error?: { code: string; type: string; message: string; param: string | null };
};

describe("admin API: keys and tiers (memory store)", () => {
  let gw: Gateway;
  let store: MemoryStore;
  let base: string;
  const logLines: string[] = [];
  const seen: string[] = [];

  async function call(method: string, path: string, body?: unknown, token = ADMIN) {
    const res = await fetch(`${base}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      ...(body === undefined ? {} : { body: typeof body === "string" ? body : JSON.stringify(body) }),
    });
    const text = await res.text();
    seen.push(text);
    return { status: res.status, headers: res.headers, body: JSON.parse(text) as Json };
  }
  async function chat(key: string, endUser?: string) {
    const res = await fetch(`${base}/v1/chat/completions`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${key}`,
        "content-type": "application/json",
        "x-tokenfuse-feature": "chat",
        ...(endUser ? { "x-tokenfuse-user": endUser } : {}),
      },
      body: JSON.stringify({ model: "gpt-4o", messages: [{ role: "user", content: "Hello there" }] }),
    });
    const text = await res.text();
    seen.push(text);
    return {
      status: res.status,
      limit: res.headers.get("x-ratelimit-limit-tokens"),
      body: JSON.parse(text) as Json,
    };
  }
  const listKeys = async () => (await call("GET", "/admin/keys")).body.keys as Array<Record<string, unknown>>;

  beforeAll(async () => {
    store = createMemoryStore();
    gw = createGateway({
      config: configWith(),
      store,
      logger: createLogger("debug", { write: (s: string) => void logLines.push(s) }),
    });
    base = `http://127.0.0.1:${await gw.listen(0)}`;
  });
  afterAll(async () => {
    await gw?.close();
  });

  it("POST /admin/keys creates a key, shown once; it works at once, is listed by hash only, and is revoked", async () => {
    const created = await call("POST", "/admin/keys", {
      user: "carol",
      tier: "pro",
      features: ["chat"],
      trusted: false,
    });
    expect(created.status).toBe(201);
    expect(created.headers.get("cache-control")).toBe("no-store");
    const key = created.body.key as string;
    expect(key).toMatch(/^tf-[A-Za-z0-9_-]{32}$/);
    expect(created.body).toEqual({
      key,
      hash: hashApiKey(key),
      user: "carol",
      tier: "pro",
      features: ["chat"],
      default_feature: "chat",
      trusted: false,
      source: "store",
      created_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
    });
    const ok = await chat(key);
    expect(ok.status).toBe(200);
    expect(ok.limit).toBe("100000");

    const listed = await listKeys();
    expect(listed.map((k) => [k.user, k.source])).toEqual([
      ["ops", "config"],
      ["backend", "config"],
      ["carol", "store"],
    ]);
    expect(listed[2]).toEqual({ ...created.body, key: undefined });
    expect(JSON.stringify(listed)).not.toContain(key);
    // Only the hash is stored.
    const stored = await store.readApiKeys();
    expect(stored.entries?.map((k) => k.hash)).toEqual([hashApiKey(key)]);
    expect(JSON.stringify(stored)).not.toContain(key);

    expect((await call("DELETE", `/admin/keys/${hashApiKey(key)}`)).body).toEqual({
      hash: hashApiKey(key),
      revoked: true,
    });
    const refused = await chat(key);
    expect(refused.status).toBe(401);
    expect(refused.body.error).toMatchObject({ code: "unauthorized", message: "unknown API key" });
    const again = await call("DELETE", `/admin/keys/${hashApiKey(key)}`);
    expect(again.status).toBe(404);
    expect(again.body.error?.message).toMatch(/no run-time API key has the hash/);

    // The key appeared in the 201 body and nowhere else: no log line, no other body, no metric.
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).not.toContain(key);
    expect(logLines.join("\n")).not.toContain(key);
    expect(logLines.join("\n")).not.toContain(ADMIN);
    expect(seen.filter((s) => s.includes(key))).toHaveLength(1);
    expect(logLines.join("\n")).toContain("admin: API key created");
  });

  it("refuses bad key requests with a clear 400 naming the field, and stores nothing", async () => {
    const before = await listKeys();
    for (const [body, param, message] of [
      [{ tier: "pro" }, "user", /user is required/],
      [{ user: "a b" }, "user", /user must be 1-128/],
      [{ user: "x", tier: "gold" }, "tier", /unknown tier "gold"; tiers: free, pro/],
      [{ user: "x", features: ["nope"] }, "features", /unknown feature "nope"; features: chat, summarize/],
      [{ user: "x", features: ["chat"], default_feature: "summarize" }, "default_feature", /not among/],
      [{ user: "x", trusted: "yes" }, "trusted", /true or false/],
      [{ user: "x", hash: `sha256:${"0".repeat(64)}` }, "hash", /unknown field "hash"/],
    ] as const) {
      const r = await call("POST", "/admin/keys", body);
      expect(r.status, JSON.stringify(body)).toBe(400);
      expect(r.body.error).toEqual({
        code: "invalid_request",
        type: "invalid_request_error",
        param,
        message: expect.stringMatching(message),
      });
    }
    for (const raw of ["{not json", "[1,2]", ""]) {
      const r = await call("POST", "/admin/keys", raw);
      expect(r.status, raw).toBe(400);
      expect(r.body.error?.code).toBe("invalid_request");
    }
    expect((await call("POST", "/admin/keys", { user: "x" }, "wrong-token")).status).toBe(401);
    expect(await listKeys()).toEqual(before);
    expect((await store.readApiKeys()).entries).toEqual([]);
  });

  it("a stored key this config cannot use is listed with its problem and refused, never guessed at", async () => {
    const key = `tf-foreign-${randomUUID()}`;
    // Written by a process whose config has a "gold" tier (or before this config dropped it).
    await store.addApiKey({
      hash: hashApiKey(key),
      user: "frank",
      tier: "gold",
      trusted: false,
      createdAtMs: 1,
    });
    await gw.keys.refresh();
    expect((await chat(key)).status).toBe(401);
    expect((await listKeys()).find((k) => k.user === "frank")).toMatchObject({
      hash: hashApiKey(key),
      tier: "gold",
      problem: 'unknown tier "gold"; tiers: free, pro',
    });
    expect(logLines.find((l) => l.includes("refusing a run-time API key"))).toMatch(
      /"problem":"unknown tier/,
    );
    expect((await call("DELETE", `/admin/keys/${hashApiKey(key)}`)).status).toBe(200);
  });

  it("DELETE /admin/keys refuses config keys (409) and malformed hashes (400)", async () => {
    const cfg = await call("DELETE", `/admin/keys/${hashApiKey(OPS_KEY)}`);
    expect(cfg.status).toBe(409);
    expect(cfg.body.error?.message).toMatch(/in the config file/);
    expect((await chat(OPS_KEY)).status).toBe(200);
    for (const bad of ["sha256:abc", "nope", "%E0%A4%A"]) {
      const r = await call("DELETE", `/admin/keys/${bad}`);
      expect(r.status, bad).toBe(400);
      expect(r.body.error?.code).toBe("invalid_request");
    }
  });

  it("a tier override changes the budget that is enforced (free 10 000/day → pro), and clearing it restores the key's", async () => {
    const created = await call("POST", "/admin/keys", { user: "dana", features: ["chat"] });
    const key = created.body.key as string;
    expect(created.body.tier).toBeNull(); // the default tier: free
    const first = await chat(key);
    expect(first.status).toBe(200);
    expect(first.limit).toBe("10000");
    const refused = await chat(key);
    expect(refused.status).toBe(429);
    expect(refused.body.error?.code).toBe("user_budget_exceeded");

    const set = await call("PUT", "/admin/users/dana/tier", { tier: "pro" });
    expect(set.status).toBe(200);
    expect(set.body).toEqual({
      user: "dana",
      tier: "pro",
      source: "override",
      override: "pro",
      keys: [{ hash: hashApiKey(key), source: "store", tier: null }],
    });
    const upgraded = await chat(key);
    expect(upgraded.status).toBe(200);
    expect(upgraded.limit).toBe("100000");
    const budget = (await (
      await fetch(`${base}/v1/budget`, { headers: { authorization: `Bearer ${key}` } })
    ).json()) as { user: { tier: string; day: { limit: number } } };
    expect(budget.user).toMatchObject({ tier: "pro", day: { limit: 100_000 } });

    const cleared = await call("DELETE", "/admin/users/dana/tier");
    expect(cleared.body).toMatchObject({
      user: "dana",
      tier: "free",
      source: "default_tier",
      override: null,
    });
    expect((await chat(key)).status).toBe(429);
    // {"tier": null} clears too.
    await call("PUT", "/admin/users/dana/tier", { tier: "pro" });
    expect((await call("PUT", "/admin/users/dana/tier", { tier: null })).body.override).toBeNull();
    expect((await chat(key)).status).toBe(429);
  });

  it("GET /admin/users shows the effective tier and where it comes from", async () => {
    expect((await call("GET", "/admin/users/ops")).body).toEqual({
      user: "ops",
      tier: "pro",
      source: "key",
      override: null,
      keys: [{ hash: hashApiKey(OPS_KEY), source: "config", tier: "pro" }],
    });
    expect((await call("GET", "/admin/users/nobody")).body).toEqual({
      user: "nobody",
      tier: "free",
      source: "default_tier",
      override: null,
      keys: [],
    });
    expect((await call("GET", "/admin/users/backend%2Fu9")).body).toMatchObject({
      user: "backend/u9",
      source: "default_tier",
      keys: [{ hash: hashApiKey(BACKEND_KEY), source: "config", tier: null }],
    });
  });

  it("an end user's override is keyed by the namespaced user, as budgets are", async () => {
    expect((await call("PUT", "/admin/users/backend%2Fu1/tier", { tier: "pro" })).status).toBe(200);
    // An override for a bare "u2" is not the end user u2 of backend.
    expect((await call("PUT", "/admin/users/u2/tier", { tier: "pro" })).status).toBe(200);
    expect((await chat(BACKEND_KEY, "u1")).limit).toBe("100000");
    expect((await chat(BACKEND_KEY, "u2")).limit).toBe("10000");
  });

  it("refuses bad tier changes with a clear 400 and changes nothing", async () => {
    await call("PUT", "/admin/users/erin/tier", { tier: "pro" });
    for (const [path, body, param, message] of [
      ["/admin/users/erin/tier", { tier: "gold" }, "tier", /unknown tier "gold"; tiers: free, pro/],
      ["/admin/users/erin/tier", { tier: 3 }, "tier", /unknown tier 3/],
      ["/admin/users/erin/tier", { tier: "" }, "tier", /unknown tier ""/],
      ["/admin/users/erin/tier", {}, "tier", /body must be \{"tier"/],
      ["/admin/users/erin/tier", { tier: "free", user: "x" }, "user", /body must be/],
      ["/admin/users/a%20b/tier", { tier: "free" }, null, /user in the path must be/],
      ["/admin/users/backend%2Fu1%2Fx/tier", { tier: "free" }, null, /user in the path must be/],
      ["/admin/users/%23rev/tier", { tier: "free" }, null, /user in the path must be/],
      ["/admin/users/%E0%A4%A/tier", { tier: "free" }, null, /percent-encoding/],
    ] as const) {
      const r = await call("PUT", path, body);
      expect(r.status, `${path} ${JSON.stringify(body)}`).toBe(400);
      expect(r.body.error).toEqual({
        code: "invalid_request",
        type: "invalid_request_error",
        param,
        message: expect.stringMatching(message),
      });
    }
    expect((await call("PUT", "/admin/users/erin/tier", "{oops")).status).toBe(400);
    expect((await call("PUT", "/admin/users/erin/tier", { tier: "free" }, "wrong")).status).toBe(401);
    expect((await call("GET", "/admin/users/erin")).body).toMatchObject({ tier: "pro", override: "pro" });
    expect((await store.readUserTiers()).entries?.erin).toBe("pro");
    expect((await call("POST", "/admin/users/erin/tier", { tier: "free" })).status).toBe(404);
  });
});

describe("admin API: keyless gateway and store failures", () => {
  it("without keys: in the config, POST /admin/keys is a 409 saying why, and nothing is stored", async () => {
    const store = createMemoryStore();
    const gw = createGateway({ config: configWith({ keys: [] }), store, logger: silentLogger });
    try {
      const base = `http://127.0.0.1:${await gw.listen(0)}`;
      const res = await fetch(`${base}/admin/keys`, {
        method: "POST",
        headers: { authorization: `Bearer ${ADMIN}` },
        body: JSON.stringify({ user: "carol" }),
      });
      expect(res.status).toBe(409);
      const body = (await res.json()) as Json;
      expect(body.error).toMatchObject({ code: "invalid_request", type: "invalid_request_error" });
      expect(body.error?.message).toMatch(/runs without API keys.*add at least one entry under keys:/);
      expect((await store.readApiKeys()).entries).toEqual([]);
      // Tier overrides still work: the keyless user is "anonymous".
      await fetch(`${base}/admin/users/anonymous/tier`, {
        method: "PUT",
        headers: { authorization: `Bearer ${ADMIN}` },
        body: JSON.stringify({ tier: "pro" }),
      });
      const chat = await fetch(`${base}/v1/chat/completions`, {
        method: "POST",
        headers: { "x-tokenfuse-feature": "chat" },
        body: JSON.stringify({ messages: [{ role: "user", content: "hi" }] }),
      });
      expect(chat.headers.get("x-ratelimit-limit-tokens")).toBe("100000");
    } finally {
      await gw.close();
    }
  });

  it("a store that cannot be reached answers 503 budget_store_unavailable on every admin write, never a crash", async () => {
    const store = createMemoryStore();
    const gw = createGateway({ config: configWith(), store, logger: silentLogger });
    try {
      const base = `http://127.0.0.1:${await gw.listen(0)}`;
      const down = () =>
        Promise.reject(new StoreUnavailableError("redis store unavailable: connection is end"));
      store.addApiKey = down;
      store.deleteApiKey = down;
      store.setUserTier = down;
      store.readApiKeys = down;
      const hash = `sha256:${"f".repeat(64)}`;
      for (const [method, path, body, message] of [
        [
          "POST",
          "/admin/keys",
          { user: "carol" },
          /the key was not created \(if sha256:[0-9a-f]{64} appears/,
        ],
        ["DELETE", `/admin/keys/${hash}`, undefined, /the key was not revoked/],
        ["PUT", "/admin/users/carol/tier", { tier: "pro" }, /the tier was not changed/],
        ["DELETE", "/admin/users/carol/tier", undefined, /the tier was not changed/],
        ["GET", "/admin/keys", undefined, /cannot be listed/],
      ] as const) {
        const res = await fetch(`${base}${path}`, {
          method,
          headers: { authorization: `Bearer ${ADMIN}` },
          ...(body ? { body: JSON.stringify(body) } : {}),
        });
        expect(res.status, `${method} ${path}`).toBe(503);
        const json = (await res.json()) as Json;
        expect(json.error).toEqual({
          code: "budget_store_unavailable",
          type: "service_unavailable_error",
          param: null,
          message: expect.stringMatching(message),
        });
      }
      // The gateway still serves.
      expect((await fetch(`${base}/healthz`)).status).toBe(200);
    } finally {
      await gw.close();
    }
  });
});

describe("admin API: a tier override to another time zone", () => {
  it("says that the user's day now follows that zone (usage of another date does not carry over)", async () => {
    const gw = createGateway({
      config: configWith({
        tiers: {
          free: { daily_tokens: 10_000 },
          pro: { daily_tokens: 100_000, time_zone: "America/New_York" },
        },
      }),
      store: createMemoryStore(),
      logger: silentLogger,
    });
    const base = `http://127.0.0.1:${await gw.listen(0)}`;
    const put = async (tier: string | null) => {
      const r = await fetch(`${base}/admin/users/ops/tier`, {
        method: "PUT",
        headers: { authorization: `Bearer ${ADMIN}`, "content-type": "application/json" },
        body: JSON.stringify({ tier }),
      });
      return { status: r.status, body: (await r.json()) as Json };
    };
    try {
      const down = await put("free"); // the ops key's tier is pro (New York); free counts UTC dates
      expect(down.status).toBe(200);
      expect(down.body.tier).toBe("free");
      expect(down.body.time_zone_change).toMatchObject({ from: "America/New_York", to: "UTC" });
      expect(String((down.body.time_zone_change as { note: string }).note)).toMatch(/does not carry over/);
      const same = await put("free");
      expect(same.body.time_zone_change).toBeUndefined();
      const back = await put(null);
      expect(back.body.time_zone_change).toMatchObject({ from: "UTC", to: "America/New_York" });
    } finally {
      await gw.close();
    }
  });
});
