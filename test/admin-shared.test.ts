import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { loadConfig } from "../src/config/load.js";
import { silentLogger } from "../src/core/logger.js";
import { hashApiKey } from "../src/gateway/auth.js";
import { createGateway, type Gateway } from "../src/gateway/server.js";
import { createGuardedStore } from "../src/stores/guarded-store.js";
import { createRedisStore, type RedisStore } from "../src/stores/redis/redis-store.js";
import { freePort } from "./helpers/redis-server.js";

const ADMIN = `admin-token-${randomUUID()}`;
const OPS_KEY = `tf-ops-${randomUUID()}`;

function config(extra: Record<string, unknown> = {}) {
  return loadConfig(
    {
      upstreams: { local: { type: "mock", completion_tokens: 20 } },
      features: { chat: { model: "gpt-4o", max_input: 1000, max_output: 100, on_exceed: "reject" } },
      tiers: { free: { daily_tokens: 10_000 }, pro: { daily_tokens: 100_000 } },
      default_tier: "free",
      keys: [{ hash: hashApiKey(OPS_KEY), user: "ops" }],
      admin: { token: ADMIN },
      ...extra,
    },
    {},
  );
}

async function admin(base: string, method: string, path: string, body?: unknown) {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: { authorization: `Bearer ${ADMIN}` },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

async function chat(base: string, key: string) {
  const res = await fetch(`${base}/v1/chat/completions`, {
    method: "POST",
    headers: { authorization: `Bearer ${key}`, "x-tokenfuse-feature": "chat" },
    body: JSON.stringify({ messages: [{ role: "user", content: "hi" }] }),
  });
  await res.text();
  return { status: res.status, limit: res.headers.get("x-ratelimit-limit-tokens") };
}

/** Polls `probe` every 20 ms until it holds; returns the time it took (ms), or fails after 3 s. */
async function timeUntil(probe: () => Promise<boolean>): Promise<number> {
  const t0 = performance.now();
  while (!(await probe())) {
    if (performance.now() - t0 > 3000) throw new Error("not seen within 3 s");
    await new Promise((r) => setTimeout(r, 20));
  }
  return performance.now() - t0;
}

describe("admin API on a shared Redis: two gateway instances", () => {
  const prefix = `${inject("redisPrefix")}admin-${randomUUID()}:`;
  const stores: RedisStore[] = [];
  let a: Gateway;
  let b: Gateway;
  let baseA: string;
  let baseB: string;
  const newStore = () => {
    const s = createRedisStore({ url: inject("redisUrl"), keyPrefix: prefix });
    stores.push(s);
    return s;
  };

  beforeAll(async () => {
    a = createGateway({ config: config(), store: newStore(), logger: silentLogger });
    b = createGateway({ config: config(), store: newStore(), logger: silentLogger });
    baseA = `http://127.0.0.1:${await a.listen(0)}`;
    baseB = `http://127.0.0.1:${await b.listen(0)}`;
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
  });

  it("a key created on one instance works on the other within a second; revoked on the other, refused on the first", async () => {
    const created = await admin(baseA, "POST", "/admin/keys", { user: "carol", tier: "pro" });
    expect(created.status).toBe(201);
    const key = created.body.key as string;
    expect((await chat(baseA, key)).status).toBe(200); // at once on the instance that made it
    expect(await timeUntil(async () => (await chat(baseB, key)).status === 200)).toBeLessThan(1000);
    expect((await admin(baseB, "GET", "/admin/keys")).body.keys).toContainEqual(
      expect.objectContaining({ hash: hashApiKey(key), user: "carol", source: "store" }),
    );

    expect((await admin(baseB, "DELETE", `/admin/keys/${hashApiKey(key)}`)).status).toBe(200);
    expect((await chat(baseB, key)).status).toBe(401);
    expect(await timeUntil(async () => (await chat(baseA, key)).status === 401)).toBeLessThan(1000);
  });

  it("a tier change on one instance is enforced by the other within a second", async () => {
    const key = (await admin(baseA, "POST", "/admin/keys", { user: "dave" })).body.key as string;
    await timeUntil(async () => (await chat(baseB, key)).status === 200);
    expect((await chat(baseB, key)).limit).toBe("10000");
    expect((await admin(baseA, "PUT", "/admin/users/dave/tier", { tier: "pro" })).status).toBe(200);
    expect(await timeUntil(async () => (await chat(baseB, key)).limit === "100000")).toBeLessThan(1000);
    expect((await admin(baseB, "GET", "/admin/users/dave")).body).toMatchObject({
      tier: "pro",
      source: "override",
    });
    expect((await admin(baseB, "DELETE", "/admin/users/dave/tier")).status).toBe(200);
    expect(await timeUntil(async () => (await chat(baseA, key)).limit === "10000")).toBeLessThan(1000);
  });

  it("a malformed entry in the store is listed with its problem (never used) and can be revoked", async () => {
    const hash = `sha256:${"e".repeat(64)}`;
    const raw = stores[0] as RedisStore;
    await raw.redis.hset(`${prefix}api-keys`, hash, "{not json");
    const listed = await admin(baseA, "GET", "/admin/keys");
    expect(listed.status).toBe(200);
    const entry = (listed.body.keys as Array<Record<string, unknown>>).find((k) => k.hash === hash);
    expect(entry?.problem).toMatch(/malformed entry/);
    expect((await admin(baseA, "DELETE", `/admin/keys/${hash}`)).status).toBe(200);
    expect(await raw.redis.hexists(`${prefix}api-keys`, hash)).toBe(0);
  });

  it("no key is ever stored in clear, and every key under the prefix has a TTL", async () => {
    const keys: string[] = [];
    for (let i = 0; i < 3; i++) {
      const r = await admin(baseA, "POST", "/admin/keys", { user: `u${i}`, features: ["chat"] });
      keys.push(r.body.key as string);
    }
    await admin(baseA, "PUT", "/admin/users/u0/tier", { tier: "pro" });
    for (const k of keys) expect((await chat(baseA, k)).status).toBe(200);
    const redis = (stores[0] as RedisStore).redis;
    const dump: string[] = [];
    let cursor = "0";
    let seen = 0;
    do {
      const [next, names] = await redis.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 1000);
      cursor = next;
      for (const name of names) {
        seen++;
        dump.push(name);
        const type = await redis.type(name);
        if (type === "hash") dump.push(JSON.stringify(await redis.hgetall(name)));
        else if (type === "string") dump.push((await redis.get(name)) ?? "");
        else if (type === "zset")
          dump.push(JSON.stringify(await redis.zrange(name, "0", "-1", "WITHSCORES")));
        else if (type === "set") dump.push(JSON.stringify(await redis.smembers(name)));
        else if (type === "list") dump.push(JSON.stringify(await redis.lrange(name, 0, -1)));
        else throw new Error(`unexpected type ${type} of ${name}`);
        const ttl = await redis.pttl(name);
        expect(ttl, `${name} has no TTL`).toBeGreaterThan(0);
      }
    } while (cursor !== "0");
    expect(seen).toBeGreaterThan(3);
    const all = dump.join("\n");
    expect(all).toContain(hashApiKey(keys[0] as string)); // the dump does hold the entries...
    for (const k of [...keys, OPS_KEY, ADMIN]) expect(all).not.toContain(k); // ...and never a secret
    // Neither a key's random part alone.
    for (const k of keys) expect(all).not.toContain(k.slice(3));
  });
});

describe("admin API when Redis cannot be reached", () => {
  it("answers 503 budget_store_unavailable for every write, and keeps serving", async () => {
    const port = await freePort(); // nothing listens there
    const store = createGuardedStore({
      primary: createRedisStore({ url: `redis://127.0.0.1:${port}`, connectTimeoutMs: 300 }),
      onError: "allow",
      logger: silentLogger,
    });
    const gw = createGateway({ config: config(), store, logger: silentLogger });
    try {
      const base = `http://127.0.0.1:${await gw.listen(0)}`;
      for (const [method, path, body] of [
        ["POST", "/admin/keys", { user: "carol" }],
        ["GET", "/admin/keys", undefined],
        ["DELETE", `/admin/keys/sha256:${"a".repeat(64)}`, undefined],
        ["PUT", "/admin/users/carol/tier", { tier: "pro" }],
        ["DELETE", "/admin/users/carol/tier", undefined],
      ] as const) {
        const r = await admin(base, method, path, body);
        expect(r.status, `${method} ${path}`).toBe(503);
        expect(r.body.error).toMatchObject({
          code: "budget_store_unavailable",
          type: "service_unavailable_error",
        });
      }
      // Config keys still authenticate (on_error: allow admits); the gateway did not crash.
      expect((await chat(base, OPS_KEY)).status).toBe(200);
      expect((await fetch(`${base}/healthz`)).status).toBe(200);
    } finally {
      await gw.close();
    }
  });
});
