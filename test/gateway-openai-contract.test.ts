import { randomUUID } from "node:crypto";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { loadConfig } from "../src/config/load.js";
import { silentLogger } from "../src/core/logger.js";
import { hashApiKey } from "../src/gateway/auth.js";
import { type MockServer, startMockServer } from "../src/gateway/mock/mock-server.js";
import { createGateway } from "../src/gateway/server.js";
import { createMemoryStore } from "../src/stores/memory-store.js";
import { getChatTokenizer } from "../src/tokenizers/index.js";

/**
 * The gateway's contract as the official `openai` client sees it (SPEC §5 error envelope and codes,
 * §6 response headers and GET /v1/models), with exact values. Date is frozen (only Date: timers and
 * sockets run) so that reset times and Retry-After are known to the second:
 * 2026-03-10T15:20:30.250Z is 8 h 39 min 29.75 s before the UTC day ends (31 170 s rounded up) and
 * 29.75 s before the minute ends (30 s rounded up).
 */
const NOW = Date.UTC(2026, 2, 10, 15, 20, 30, 250);
const DAY_RESET_S = 31_170;
const DAY_RESET_TEXT = "8h39m30s";
const MINUTE_RESET_S = 30;

const KEY = `tf-contract-${randomUUID()}`;
const DAILY_LIMIT = 10_000;
const COMPLETION = 20; // what the mock generates per answer (below every output cap here)
const messages = [{ role: "user" as const, content: "hello budget" }];
/** The prompt tokens of `messages` for gpt-4o and gpt-4o-mini (o200k_base), as the provider reports them. */
const INPUT = getChatTokenizer("o200k_base").countChat(messages);

type ApiError = InstanceType<typeof OpenAI.APIError>;

function configFor(mock: MockServer, extra: Record<string, unknown> = {}) {
  return loadConfig(
    {
      upstreams: { provider: { type: "openai", base_url: mock.baseUrl, timeout_ms: 5000 } },
      features: {
        chat: {
          model: "gpt-4o",
          max_input: 1000,
          max_output: 100,
          on_exceed: "trim",
          allowed_models: ["gpt-4.1"],
        },
        // One answer (INPUT + 20 settled) leaves 40 tokens: the next reservation (INPUT + 50) cannot fit.
        capped: {
          model: "gpt-4o-mini",
          max_input: 1000,
          max_output: 50,
          on_exceed: "reject",
          daily_tokens: INPUT + 60,
        },
        // A model no price table knows; one feature has a cost cap, the other none.
        unpriced_capped: {
          model: "acme-unpriced-1",
          max_input: 1000,
          max_output: 50,
          on_exceed: "reject",
          hourly_cost_usd: 5,
        },
        unpriced: { model: "acme-unpriced-2", max_input: 1000, max_output: 50, on_exceed: "reject" },
      },
      tiers: { free: { daily_tokens: DAILY_LIMIT } },
      default_tier: "free",
      keys: [{ hash: hashApiKey(KEY), user: "alice", default_feature: "chat" }],
      ...extra,
    },
    {},
  );
}

async function start(mock: MockServer, extra: Record<string, unknown> = {}) {
  const gw = createGateway({
    config: configFor(mock, extra),
    store: createMemoryStore(),
    logger: silentLogger,
  });
  const base = `http://127.0.0.1:${await gw.listen(0)}`;
  const client = (feature?: string) =>
    new OpenAI({
      baseURL: `${base}/v1`,
      apiKey: KEY,
      maxRetries: 0,
      defaultHeaders: feature ? { "x-tokenfuse-feature": feature } : {},
    });
  const day = async () => {
    const r = (await (
      await fetch(`${base}/v1/budget`, { headers: { authorization: `Bearer ${KEY}` } })
    ).json()) as {
      user: { day: { used: number; reserved: number } };
    };
    return r.user.day;
  };
  return { gw, base, client, day };
}

async function refusal(p: Promise<unknown>): Promise<ApiError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(OpenAI.APIError);
  return e as ApiError;
}

const OURS = [
  "x-tokenfuse-input-tokens",
  "x-tokenfuse-decision",
  "x-tokenfuse-trimmed-messages",
  "x-ratelimit-limit-tokens",
  "x-ratelimit-remaining-tokens",
  "x-ratelimit-reset-tokens",
];
const ourHeaders = (h: Headers | undefined) => Object.fromEntries(OURS.map((n) => [n, h?.get(n) ?? null]));
/**
 * The SPEC §6 headers of an admitted call: `input` tokens counted, `trimmed` messages dropped, and the
 * user's day as this call's reservation left it (`usedBefore` + the input + the whole output cap of
 * 100, still held when the headers are made).
 */
const expectedHeaders = (input: number, usedBefore: number, trimmed = 0) => ({
  "x-tokenfuse-input-tokens": String(input),
  "x-tokenfuse-decision": trimmed > 0 ? "trim" : "allow",
  "x-tokenfuse-trimmed-messages": String(trimmed),
  "x-ratelimit-limit-tokens": String(DAILY_LIMIT),
  "x-ratelimit-remaining-tokens": String(DAILY_LIMIT - usedBefore - (input + 100)),
  "x-ratelimit-reset-tokens": DAY_RESET_TEXT,
});

describe("gateway contract through the official openai client (frozen date)", () => {
  let mock: MockServer;
  let main: Awaited<ReturnType<typeof start>>;

  beforeAll(async () => {
    vi.useFakeTimers({ toFake: ["Date"], now: NOW });
    mock = await startMockServer({ completionTokens: COMPLETION });
    main = await start(mock);
  });
  afterAll(async () => {
    await main?.gw.close();
    await mock?.close();
    vi.useRealTimers();
  });

  it("feature_budget_exceeded: 429, the full envelope, Retry-After to the UTC day's end, nothing sent upstream", async () => {
    const first = await main.client("capped").chat.completions.create({ model: "gpt-4o-mini", messages });
    expect(first.usage?.total_tokens).toBe(INPUT + COMPLETION);
    const sent = mock.upstream.ledger().totals.requests;
    const e = await refusal(
      main.client("capped").chat.completions.create({ model: "gpt-4o-mini", messages }),
    );
    expect(e.status).toBe(429);
    expect(e.error).toEqual({
      message: `request needs ${INPUT + 50} tokens (${INPUT} input + 50 output) but the feature's daily token budget has 40 of ${INPUT + 60} left`,
      type: "rate_limit_error",
      code: "feature_budget_exceeded",
      param: null,
    });
    expect(e.headers?.get("retry-after")).toBe(String(DAY_RESET_S));
    // Longer than a client's own retry may wait: the openai client is told not to sleep until midnight.
    expect(e.headers?.get("x-should-retry")).toBe("false");
    expect(e.headers?.get("content-type")).toBe("application/json");
    // A refusal carries Retry-After, not the budget headers of an admitted request (README).
    expect(ourHeaders(e.headers)).toEqual(Object.fromEntries(OURS.map((n) => [n, null])));
    expect(mock.upstream.ledger().totals.requests).toBe(sent);
  });

  it("price_unknown: 400 with the full envelope for a model with no price, with or without a cost cap; nothing sent upstream", async () => {
    const sent = mock.upstream.ledger().totals.requests;
    const before = await main.day();
    for (const [feature, model] of [
      ["unpriced_capped", "acme-unpriced-1"],
      ["unpriced", "acme-unpriced-2"],
    ] as const) {
      const e = await refusal(main.client(feature).chat.completions.create({ model, messages }));
      expect(e.status).toBe(400);
      expect(e.error).toEqual({
        message: `model "${model}" has no known price: add it under prices: in the config, or set unknown_price: allow_and_alert`,
        type: "invalid_request_error",
        code: "price_unknown",
        param: null,
      });
      expect(e.headers?.get("retry-after")).toBeNull();
    }
    expect(mock.upstream.ledger().totals.requests).toBe(sent);
    expect(await main.day()).toEqual(before);
  });

  it("global_rate_limited: 429, the full envelope, Retry-After to the minute's end", async () => {
    // The global minute holds one reservation (INPUT + 100); its answer settles INPUT + 20 and leaves 90.
    const g = await start(mock, { global: { tokens_per_minute: INPUT + 110 } });
    try {
      await g.client().chat.completions.create({ model: "gpt-4o", messages });
      const e = await refusal(g.client().chat.completions.create({ model: "gpt-4o", messages }));
      expect(e.status).toBe(429);
      expect(e.error).toEqual({
        message: `request needs ${INPUT + 100} tokens (${INPUT} input + 100 output) but the global tokens-per-minute limit has 90 of ${INPUT + 110} left`,
        type: "rate_limit_error",
        code: "global_rate_limited",
        param: null,
      });
      expect(e.headers?.get("retry-after")).toBe(String(MINUTE_RESET_S));
      // 30 s is a wait a client's own retry may take: no x-should-retry.
      expect(e.headers?.get("x-should-retry")).toBeNull();
      expect(ourHeaders(e.headers)).toEqual(Object.fromEntries(OURS.map((n) => [n, null])));
    } finally {
      await g.gw.close();
    }
  });

  it("the SPEC §6 headers of an admitted call: the user's day as the reservation left it", async () => {
    const before = await main.day();
    expect(before.reserved).toBe(0);
    const { data, response } = await main
      .client()
      .chat.completions.create({ model: "gpt-4o", messages })
      .withResponse();
    expect(data.usage?.prompt_tokens).toBe(INPUT);
    expect(ourHeaders(response.headers)).toEqual(expectedHeaders(INPUT, before.used));
    expect((await main.day()).used).toBe(before.used + INPUT + COMPLETION);
  });

  it("the same headers on a streamed call", async () => {
    const before = await main.day();
    const { data: stream, response } = await main
      .client()
      .chat.completions.create({ model: "gpt-4o", messages, stream: true })
      .withResponse();
    let text = "";
    for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? "";
    expect(text.length).toBeGreaterThan(0);
    expect(ourHeaders(response.headers)).toEqual(expectedHeaders(INPUT, before.used));
  });

  it("a trimmed call says trim, how many messages were dropped, and the input that was sent", async () => {
    const system = { role: "system" as const, content: "Be brief." };
    const last = { role: "user" as const, content: "and now?" };
    const kept = getChatTokenizer("o200k_base").countChat([system, last]);
    // Each old turn alone is larger than the room left beside the kept messages: all four are dropped.
    const old = "budget history ".repeat(40);
    const history = [
      system,
      { role: "user" as const, content: `q1 ${old}` },
      { role: "assistant" as const, content: `a1 ${old}` },
      { role: "user" as const, content: `q2 ${old}` },
      { role: "assistant" as const, content: `a2 ${old}` },
      last,
    ];
    const g = await start(mock, {
      features: { chat: { model: "gpt-4o", max_input: kept + 10, max_output: 100, on_exceed: "trim" } },
    });
    try {
      const { data, response } = await g
        .client()
        .chat.completions.create({ model: "gpt-4o", messages: history })
        .withResponse();
      expect(data.usage?.prompt_tokens).toBe(kept);
      expect(ourHeaders(response.headers)).toEqual(expectedHeaders(kept, 0, 4));
    } finally {
      await g.gw.close();
    }
  });

  it("a provider's own 429 is passed through with the headers of the reservation it was admitted with, and released", async () => {
    const before = await main.day();
    const e = await refusal(
      main
        .client()
        .chat.completions.create({ model: "gpt-4o", messages }, { headers: { "x-mock-fault": "429" } }),
    );
    expect(e.status).toBe(429);
    expect(e.error).toEqual({
      message: "Rate limit reached for requests (mock fault). Please try again in 1s.",
      type: "requests",
      param: null,
      code: "rate_limit_exceeded",
    });
    expect(ourHeaders(e.headers)).toEqual(expectedHeaders(INPUT, before.used));
    expect(await main.day()).toEqual(before);
  });

  it("GET /v1/models lists each feature's model and allowed models once, in config order, in the OpenAI list shape", async () => {
    const res = await fetch(`${main.base}/v1/models`, { headers: { authorization: `Bearer ${KEY}` } });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/json");
    const entry = (id: string) => ({ id, object: "model", created: 0, owned_by: "tokenfuse" });
    expect(await res.json()).toEqual({
      object: "list",
      data: ["gpt-4o", "gpt-4.1", "gpt-4o-mini", "acme-unpriced-1", "acme-unpriced-2"].map(entry),
    });
    // The official client reads it as is.
    const ids: string[] = [];
    for await (const m of main.client().models.list()) ids.push(m.id);
    expect(ids).toEqual(["gpt-4o", "gpt-4.1", "gpt-4o-mini", "acme-unpriced-1", "acme-unpriced-2"]);
    // With keys configured, the list needs one.
    const e = await refusal(
      new OpenAI({ baseURL: `${main.base}/v1`, apiKey: "tf-not-a-key", maxRetries: 0 }).models.list(),
    );
    expect([e.status, e.code, e.type]).toEqual([401, "unauthorized", "authentication_error"]);
  });
});
