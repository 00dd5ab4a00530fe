import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, expect, inject, it } from "vitest";
import { loadConfig } from "../src/config/load.js";
import { silentLogger } from "../src/core/logger.js";
import { hashApiKey } from "../src/gateway/auth.js";
import { createGateway } from "../src/gateway/server.js";
import { createGuardedStore } from "../src/stores/guarded-store.js";
import { createRedisStore } from "../src/stores/redis/redis-store.js";
import { type OwnRedis, startRedisServer } from "./helpers/redis-server.js";

// A gateway started while the shared store cannot be read does not know the keys created at run
// time yet: such a key is "not known yet" (503, retry), never "unknown" (401, as if revoked); and the
// gateway is not ready until it has read them.

const ADMIN = `admin-token-${randomUUID()}`;
const OPS = `tf-ops-${randomUUID()}`;
const CAROL = `tf-carol-${randomUUID()}`;
let own: OwnRedis;
beforeAll(async () => {
  own = await startRedisServer();
});
afterAll(async () => {
  await own?.stop();
});

it("a run-time key is answered 503 while the store was never read, then works once it is", async () => {
  const prefix = `${inject("redisPrefix")}${randomUUID()}:`;
  const writer = createRedisStore({ url: own.url, keyPrefix: prefix });
  await writer.addApiKey({
    hash: hashApiKey(CAROL),
    user: "carol",
    tier: "pro",
    trusted: false,
    createdAtMs: 1,
  });
  await writer.close();
  own.pause(); // the store stops answering before the gateway starts
  const config = loadConfig(
    {
      store: { url: own.url, on_error: "local" },
      upstreams: { local: { type: "mock", completion_tokens: 20 } },
      features: { chat: { model: "gpt-4o", max_input: 1000, max_output: 100, on_exceed: "reject" } },
      tiers: { free: { daily_tokens: 10_000 }, pro: { daily_tokens: 100_000 } },
      default_tier: "free",
      keys: [{ hash: hashApiKey(OPS), user: "ops", tier: "pro" }],
      admin: { token: ADMIN },
    },
    {},
  );
  const gw = createGateway({
    config,
    store: createGuardedStore({
      primary: createRedisStore({
        url: own.url,
        keyPrefix: prefix,
        connectTimeoutMs: 300,
        commandTimeoutMs: 300,
      }),
      onError: "local",
      logger: silentLogger,
    }),
    logger: silentLogger,
  });
  const base = `http://127.0.0.1:${await gw.listen(0)}`;
  const chat = async (key: string) => {
    const r = await fetch(`${base}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "x-tokenfuse-feature": "chat" },
      body: JSON.stringify({ messages: [{ role: "user", content: "hi" }] }),
    });
    const body = (await r.json()) as { error?: { code: string } };
    return { status: r.status, code: body.error?.code };
  };
  const ready = async () => (await fetch(`${base}/readyz`)).status;
  try {
    expect(await chat(CAROL)).toEqual({ status: 503, code: "budget_store_unavailable" });
    expect(await chat(`tf-nobody-${randomUUID()}`)).toEqual({
      status: 503,
      code: "budget_store_unavailable",
    });
    expect((await chat(OPS)).status).toBe(200); // a config key works (local mode)
    expect(await ready()).toBe(503);
    own.resume();
    const until = Date.now() + 5000;
    let carol = await chat(CAROL);
    while (carol.status !== 200 && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 100));
      carol = await chat(CAROL);
    }
    expect(carol.status).toBe(200);
    expect(await chat(`tf-nobody-${randomUUID()}`)).toEqual({ status: 401, code: "unauthorized" });
    expect(await ready()).toBe(200);
  } finally {
    own.resume();
    await gw.close();
  }
});
