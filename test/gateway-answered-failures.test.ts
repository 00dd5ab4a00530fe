import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../src/config/load.js";
import { silentLogger } from "../src/core/logger.js";
import { hashApiKey } from "../src/gateway/auth.js";
import { type MockServer, startMockServer } from "../src/gateway/mock/mock-server.js";
import { createGateway, type Gateway } from "../src/gateway/server.js";
import type { UpstreamClient } from "../src/gateway/upstream/types.js";
import { createMemoryStore } from "../src/stores/memory-store.js";
import { getChatTokenizer } from "../src/tokenizers/index.js";

/**
 * Calls the upstream answered and then failed, with the official client at its defaults (2 retries):
 * what is charged, and what the client sees. A non-streamed answer is generated whole before its
 * first byte (the mock's ledger counts it so), so a body cut after the headers is charged; a stream
 * that fails before its first byte is answered with an error envelope, not a 200 that breaks.
 */
const KEY = "tf-answered-failures-key";
const messages = [{ role: "user" as const, content: "Tell me a long story" }];
const prompt = getChatTokenizer("o200k_base").countChat(messages);

function configFor(baseUrl: string) {
  return loadConfig(
    {
      upstreams: { provider: { type: "openai", base_url: baseUrl, api_key: "sk-x", timeout_ms: 700 } },
      features: { chat: { model: "gpt-4o", max_input: 1000, max_output: 100, on_exceed: "trim" } },
      tiers: { free: { daily_tokens: 1_000_000 } },
      default_tier: "free",
      keys: [{ hash: hashApiKey(KEY), user: "u" }],
    },
    {},
  );
}

async function day(base: string) {
  const r = await fetch(`${base}/v1/budget`, { headers: { authorization: `Bearer ${KEY}` } });
  return ((await r.json()) as { user: { day: { used: number; reserved: number } } }).user.day;
}

/** Resolves with the outcome of `p`, or "still waiting" after `ms` (a hang is a failure, not a timeout). */
const bounded = <T>(p: Promise<T>, ms: number) =>
  Promise.race([p, new Promise<string>((r) => setTimeout(() => r("still waiting"), ms))]);

describe("a non-streamed answer cut after its headers", () => {
  let mock: MockServer;
  let gw: Gateway;
  let base: string;
  beforeAll(async () => {
    mock = await startMockServer({ completionTokens: 60, chunkTokens: 2, chunkDelayMs: 5 });
    gw = createGateway({ config: configFor(mock.baseUrl), store: createMemoryStore(), logger: silentLogger });
    base = `http://127.0.0.1:${await gw.listen(0)}`;
  });
  afterAll(async () => {
    await gw.close();
    await mock.close();
  });

  for (const [fault, status] of [
    ["reset-mid-stream", 502],
    ["stall-mid-stream", 504],
  ] as const) {
    it(`${fault}: ${status}, and every answer the upstream generated is charged (input + the output cap)`, async () => {
      mock.upstream.resetLedger();
      const before = await day(base);
      const client = new OpenAI({ baseURL: `${base}/v1`, apiKey: KEY }); // default retries
      const outcome = await bounded(
        client.chat.completions
          .create({ model: "gpt-4o", messages }, { headers: { "x-mock-fault": fault } })
          .then(
            () => "answered",
            (e: { status?: number; code?: string }) => `${e.status} ${e.code}`,
          ),
        15_000,
      );
      expect(outcome).toBe(`${status} upstream_error`);
      const ledger = mock.upstream.ledger();
      // The 502 may be retried by the client (each try generated and charged); the 504 is not.
      expect(ledger.totals.requests).toBe(status === 504 ? 1 : 3);
      const after = await day(base);
      expect(after.reserved).toBe(0);
      // Each answer: its input and the whole output cap (its size is unknown): at least what it cost.
      expect(after.used - before.used).toBe(ledger.totals.requests * (prompt + 100));
      expect(after.used - before.used).toBeGreaterThanOrEqual(ledger.totals.totalTokens);
    }, 20_000);
  }
});

describe("a stream that fails before its first byte", () => {
  let gw: Gateway;
  let base: string;
  let calls = 0;
  let mode: "silent" | "broken" = "silent";
  beforeAll(async () => {
    /** Answers 200 (text/event-stream), then: nothing until the timeout, or a failure at once. */
    const upstream: UpstreamClient = {
      name: "provider",
      type: "openai",
      timeoutMs: 700,
      async send({ cancel }) {
        calls++;
        const broken = mode === "broken";
        return {
          status: 200,
          headers: { "content-type": "text/event-stream" },
          body: (async function* () {
            if (broken) throw new Error("socket hang up");
            await new Promise((_, reject) => cancel.once("abort", () => reject(cancel.reason)));
            yield "";
          })(),
          text: async () => "",
        };
      },
      async close() {},
    };
    gw = createGateway({
      config: configFor("http://127.0.0.1:9/v1"),
      store: createMemoryStore(),
      logger: silentLogger,
      upstreams: new Map([["provider", upstream]]),
    });
    base = `http://127.0.0.1:${await gw.listen(0)}`;
  });
  afterAll(async () => {
    await gw.close();
  });

  it("a timeout before any output: a 504 envelope with x-should-retry: false, one upstream call, the input charged", async () => {
    calls = 0;
    mode = "silent";
    const before = await day(base);
    const client = new OpenAI({ baseURL: `${base}/v1`, apiKey: KEY }); // default retries
    const outcome = await bounded(
      (async () => {
        const s = await client.chat.completions.create({ model: "gpt-4o", messages, stream: true });
        for await (const _ of s);
        return "answered";
      })().catch((e: { status?: number; code?: string }) => `${e.status} ${e.code}`),
      15_000,
    );
    expect(outcome).toBe("504 upstream_error");
    expect(calls).toBe(1);
    const after = await day(base);
    // The upstream answered (200): the input it processed is charged, nothing is left reserved.
    expect([after.used - before.used, after.reserved]).toEqual([prompt, 0]);
  }, 20_000);

  it("a failure before any output: a 502 envelope the client can read", async () => {
    mode = "broken";
    const res = await fetch(`${base}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${KEY}`, "content-type": "application/json" },
      body: JSON.stringify({ model: "gpt-4o", messages, stream: true }),
    });
    expect(res.status).toBe(502);
    expect(((await res.json()) as { error: { code: string; message: string } }).error).toMatchObject({
      code: "upstream_error",
      message: "upstream stream failed before any output",
    });
  });
});
