import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../src/config/load.js";
import { silentLogger } from "../src/core/logger.js";
import { hashApiKey } from "../src/gateway/auth.js";
import { type MockServer, startMockServer } from "../src/gateway/mock/mock-server.js";
import { createGateway, type Gateway } from "../src/gateway/server.js";
import { createMemoryStore } from "../src/stores/memory-store.js";

/**
 * The official `openai` client retries a 429 or 503 by itself (twice by default), sleeping as long
 * as `Retry-After` says. These tests use its default retries, as an application would.
 */
describe("refusals and the official client's own retries", () => {
  let mock: MockServer;
  let gw: Gateway;
  let base: string;
  const KEY = "tf-retry-test-key";
  const ADMIN = "retry-test-admin-token";
  beforeAll(async () => {
    mock = await startMockServer({ completionTokens: 20 });
    const config = loadConfig(
      {
        upstreams: { p: { type: "openai", base_url: mock.baseUrl, api_key: "sk-x" } },
        features: {
          chat: { model: "gpt-4o", max_input: 300, max_output: 100, on_exceed: "trim" },
          off: { model: "gpt-4o", max_input: 300, max_output: 100, on_exceed: "trim" },
        },
        tiers: { tiny: { daily_tokens: 150 } },
        default_tier: "tiny",
        global: { tokens_per_minute: 100_000 },
        keys: [{ hash: hashApiKey(KEY), user: "bob", features: ["chat", "off"], default_feature: "chat" }],
        admin: { token: ADMIN },
      },
      {},
    );
    gw = createGateway({ config, store: createMemoryStore(), logger: silentLogger });
    base = `http://127.0.0.1:${await gw.listen(0)}`;
  });
  afterAll(async () => {
    await gw.close();
    await mock.close();
  });
  const decisions = async (code: string) => {
    const text = await (await fetch(`${base}/metrics`)).text();
    let n = 0;
    for (const line of text.split("\n")) {
      if (line.startsWith("tokenfuse_decisions_total{") && line.includes(`code="${code}"`)) {
        n += Number(line.split(" ").at(-1));
      }
    }
    return n;
  };
  const post = (headers: Record<string, string> = {}, body: object = {}) =>
    fetch(`${base}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${KEY}`, "content-type": "application/json", ...headers },
      body: JSON.stringify({ model: "gpt-4o", messages: [{ role: "user", content: "hi" }], ...body }),
    });

  it("a user out of daily budget gets the 429 at once, not after sleeping until midnight: x-should-retry: false", async () => {
    const client = new OpenAI({ baseURL: `${base}/v1`, apiKey: KEY }); // default retries
    let refused: InstanceType<typeof OpenAI.APIError> | undefined;
    for (let i = 0; i < 10 && !refused; i++) {
      // Bounded: on the old code this call sleeps for Retry-After (hours) and the race ends it.
      const outcome = await Promise.race([
        client.chat.completions.create({ model: "gpt-4o", messages: [{ role: "user", content: "hi" }] }).then(
          () => "answered",
          (e: unknown) => e,
        ),
        new Promise((r) => setTimeout(() => r("still waiting"), 8000)),
      ]);
      expect(outcome).not.toBe("still waiting");
      if (outcome !== "answered") refused = outcome as InstanceType<typeof OpenAI.APIError>;
    }
    expect([refused?.status, refused?.code]).toEqual([429, "user_budget_exceeded"]);
    expect(refused?.headers?.get("x-should-retry")).toBe("false");
    expect(Number(refused?.headers?.get("retry-after"))).toBeGreaterThan(60);
    // The client did not retry: the gateway refused exactly one request.
    expect(await decisions("user_budget_exceeded")).toBe(1);
  }, 30_000);

  it("a switched-off feature says x-should-retry: false; a wait of a minute or less leaves the retry to the client", async () => {
    const put = await fetch(`${base}/admin/features/off`, {
      method: "PUT",
      headers: { authorization: `Bearer ${ADMIN}`, "content-type": "application/json" },
      body: JSON.stringify({ enabled: false }),
    });
    expect(put.status).toBe(200);
    const off = await post({ "x-tokenfuse-feature": "off" });
    expect(off.status).toBe(503);
    expect(off.headers.get("x-should-retry")).toBe("false");
    await off.text();

    // A per-minute limit clears within the minute: the client may retry after Retry-After. A request
    // larger than the whole limit never fits: no Retry-After, and not retryable.
    const g = createGateway({
      config: loadConfig(
        {
          upstreams: { p: { type: "openai", base_url: mock.baseUrl, api_key: "sk-x" } },
          features: { chat: { model: "gpt-4o", max_input: 300, max_output: 500, on_exceed: "trim" } },
          global: { tokens_per_minute: 300 },
          keys: [{ hash: hashApiKey(KEY), user: "bob" }],
        },
        {},
      ),
      store: createMemoryStore(),
      logger: silentLogger,
    });
    const url = `http://127.0.0.1:${await g.listen(0)}`;
    const send = (maxTokens: number, headers: Record<string, string> = {}) =>
      fetch(`${url}/v1/chat/completions`, {
        method: "POST",
        headers: { authorization: `Bearer ${KEY}`, "content-type": "application/json", ...headers },
        body: JSON.stringify({
          model: "gpt-4o",
          messages: [{ role: "user", content: "x" }],
          max_tokens: maxTokens,
        }),
      });
    try {
      // The first uses ~158 of the minute's 300; the second (another ~158) must wait for the next minute.
      const first = await send(150, { "x-mock-completion-tokens": "150" });
      expect(first.status).toBe(200);
      await first.text();
      const later = await send(150);
      expect(later.status).toBe(429);
      expect(Number(later.headers.get("retry-after"))).toBeGreaterThan(0);
      expect(Number(later.headers.get("retry-after"))).toBeLessThanOrEqual(60);
      expect(later.headers.get("x-should-retry")).toBeNull();
      await later.text();
      const never = await send(400);
      expect(never.status).toBe(429);
      expect(never.headers.get("retry-after")).toBeNull();
      expect(never.headers.get("x-should-retry")).toBe("false");
      await never.text();
    } finally {
      await g.close();
    }
  });
});
