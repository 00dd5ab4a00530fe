import { randomUUID } from "node:crypto";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../src/config/load.js";
import { createLogger } from "../src/core/logger.js";
import { hashApiKey } from "../src/gateway/auth.js";
import { FORBIDDEN_FIELDS } from "../src/gateway/chat-completions.js";
import { type MockServer, startMockServer } from "../src/gateway/mock/mock-server.js";
import { createGateway, type Gateway } from "../src/gateway/server.js";
import { createGuardedStore } from "../src/stores/guarded-store.js";
import { createMemoryStore } from "../src/stores/memory-store.js";
import { createRedisStore } from "../src/stores/redis/redis-store.js";
import { freePort } from "./helpers/redis-server.js";

/** Canary secrets: none of them may appear in any log line, response body, header or metric. */
const CANARY = {
  provider: `sk-canary-provider-${randomUUID()}`,
  alice: `tf-canary-alice-${randomUUID()}`,
  bob: `tf-canary-bob-${randomUUID()}`,
  backend: `tf-canary-backend-${randomUUID()}`,
  admin: `canary-admin-token-${randomUUID()}`,
};
const logLines: string[] = [];
const seen: string[] = []; // every response body and header we received
const logger = createLogger("debug", { write: (s: string) => void logLines.push(s) });

function configFor(mock: MockServer, extra: Record<string, unknown> = {}) {
  return loadConfig(
    {
      upstreams: {
        provider: { type: "openai", base_url: mock.baseUrl, api_key: CANARY.provider, timeout_ms: 800 },
      },
      features: {
        chat: { model: "gpt-4o", max_input: 300, max_output: 100, on_exceed: "trim" },
        strict: { model: "gpt-4o-mini", max_input: 60, max_output: 50, on_exceed: "reject" },
        off: { model: "gpt-4o", max_input: 1000, max_output: 50, on_exceed: "reject" },
      },
      tiers: { free: { daily_tokens: 10_000 }, tiny: { daily_tokens: 400 } },
      default_tier: "free",
      keys: [
        {
          hash: hashApiKey(CANARY.alice),
          user: "alice",
          features: ["chat", "strict", "off"],
          default_feature: "chat",
        },
        { hash: hashApiKey(CANARY.bob), user: "bob", tier: "tiny", features: ["chat"] },
        { hash: hashApiKey(CANARY.backend), user: "backend", trusted: true },
      ],
      admin: { token: CANARY.admin },
      ...extra,
    },
    {},
  );
}

async function json(res: Response): Promise<Record<string, unknown>> {
  const text = await res.text();
  seen.push(text, JSON.stringify([...res.headers]));
  return JSON.parse(text);
}

describe("gateway with the official openai client", () => {
  let mock: MockServer;
  let gw: Gateway;
  let base: string;
  const client = (key: string, headers: Record<string, string> = {}) =>
    new OpenAI({ baseURL: `${base}/v1`, apiKey: key, maxRetries: 0, defaultHeaders: headers });
  const budget = async (key: string) =>
    json(await fetch(`${base}/v1/budget`, { headers: { authorization: `Bearer ${key}` } }));

  beforeAll(async () => {
    mock = await startMockServer({ completionTokens: 20, chunkTokens: 3 });
    gw = createGateway({ config: configFor(mock), store: createMemoryStore(), logger });
    base = `http://127.0.0.1:${await gw.listen(0)}`;
  });
  afterAll(async () => {
    await gw.close();
    await mock.close();
  });

  it("a normal call is charged exactly what the provider reported, as /v1/budget shows", async () => {
    const before = (await budget(CANARY.alice)) as { user: { day: { used: number } } };
    const { data, response } = await client(CANARY.alice)
      .chat.completions.create({ model: "gpt-4o", messages: [{ role: "user", content: "Say hi" }] })
      .withResponse();
    seen.push(JSON.stringify(data));
    expect(data.choices[0]?.message.content?.length).toBeGreaterThan(0);
    expect(response.headers.get("x-tokenfuse-decision")).toBe("allow");
    expect(Number(response.headers.get("x-tokenfuse-input-tokens"))).toBe(data.usage?.prompt_tokens);
    expect(response.headers.get("x-ratelimit-limit-tokens")).toBe("10000");
    const after = (await budget(CANARY.alice)) as { user: { day: { used: number; reserved: number } } };
    expect(after.user.day.used - before.user.day.used).toBe(data.usage?.total_tokens);
    expect(after.user.day.reserved).toBe(0);
  });

  it("streamed and non-streamed requests for the same completion are charged the same", async () => {
    const messages = [{ role: "user" as const, content: "Count to five" }];
    const b0 = (await budget(CANARY.alice)) as { user: { day: { used: number } } };
    await client(CANARY.alice).chat.completions.create({ model: "gpt-4o", messages });
    const b1 = (await budget(CANARY.alice)) as { user: { day: { used: number } } };
    const stream = await client(CANARY.alice).chat.completions.create({
      model: "gpt-4o",
      messages,
      stream: true,
    });
    let text = "";
    let sawUsage = false;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta?.content ?? "";
      if (chunk.usage) sawUsage = true;
    }
    const b2 = (await budget(CANARY.alice)) as { user: { day: { used: number } } };
    expect(text.length).toBeGreaterThan(0);
    expect(sawUsage).toBe(false); // the client did not ask for the usage chunk
    expect(b2.user.day.used - b1.user.day.used).toBe(b1.user.day.used - b0.user.day.used);
  });

  it("a streamed call that asks for usage receives it", async () => {
    const stream = await client(CANARY.alice).chat.completions.create({
      model: "gpt-4o",
      messages: [{ role: "user", content: "hi" }],
      stream: true,
      stream_options: { include_usage: true },
    });
    let usage: { total_tokens: number } | undefined;
    for await (const chunk of stream) if (chunk.usage) usage = chunk.usage;
    expect(usage?.total_tokens).toBeGreaterThan(0);
  });

  it("a long history is trimmed, and the headers say so", async () => {
    const messages: OpenAI.ChatCompletionMessageParam[] = [{ role: "system", content: "Be brief." }];
    for (let i = 0; i < 12; i++) {
      messages.push({ role: "user", content: `question ${i} ${"about the budget ".repeat(8)}` });
      messages.push({ role: "assistant", content: `answer ${i} ${"it is fine ".repeat(8)}` });
    }
    messages.push({ role: "user", content: "and now?" });
    const { data, response } = await client(CANARY.alice)
      .chat.completions.create({ model: "gpt-4o", messages })
      .withResponse();
    expect(response.headers.get("x-tokenfuse-decision")).toBe("trim");
    expect(Number(response.headers.get("x-tokenfuse-trimmed-messages"))).toBeGreaterThan(0);
    expect(data.usage?.prompt_tokens).toBeLessThanOrEqual(300);
    expect(Number(response.headers.get("x-tokenfuse-input-tokens"))).toBe(data.usage?.prompt_tokens);
  });

  const refusals: Array<[string, number, () => Promise<unknown>]> = [
    [
      "unauthorized",
      401,
      () =>
        client("tf-wrong-key").chat.completions.create({
          model: "gpt-4o",
          messages: [{ role: "user", content: "x" }],
        }),
    ],
    [
      "unknown_feature",
      400,
      () =>
        client(CANARY.alice, { "x-tokenfuse-feature": "nope" }).chat.completions.create({
          model: "gpt-4o",
          messages: [{ role: "user", content: "x" }],
        }),
    ],
    [
      "invalid_request",
      400,
      () =>
        client(CANARY.alice).chat.completions.create({
          model: "gpt-4o",
          messages: [{ role: "user", content: "x" }],
          n: 0,
        }),
    ],
    [
      "input_budget_exceeded",
      400,
      () =>
        client(CANARY.alice, { "x-tokenfuse-feature": "strict" }).chat.completions.create({
          model: "gpt-4o",
          messages: [{ role: "user", content: "word ".repeat(200) }],
        }),
    ],
    [
      "upstream_error",
      502,
      () =>
        client(CANARY.alice, { "x-mock-fault": "500" }).chat.completions.create({
          model: "gpt-4o",
          messages: [{ role: "user", content: "x" }],
        }),
    ],
    [
      "upstream_error",
      504,
      () =>
        client(CANARY.alice, { "x-mock-fault": "stall" }).chat.completions.create({
          model: "gpt-4o",
          messages: [{ role: "user", content: "x" }],
        }),
    ],
  ];
  for (const [code, status, call] of refusals) {
    it(`refuses with ${code} (${status}) in the OpenAI error envelope`, async () => {
      const before = (await budget(CANARY.alice)) as { user: { day: { used: number; reserved: number } } };
      const e = (await call().catch((err: unknown) => err)) as InstanceType<typeof OpenAI.APIError>;
      expect(e).toBeInstanceOf(OpenAI.APIError);
      expect(e.status).toBe(status);
      expect(e.code).toBe(code);
      seen.push(JSON.stringify(e.error ?? {}));
      const after = (await budget(CANARY.alice)) as { user: { day: { used: number; reserved: number } } };
      expect(after.user.day).toMatchObject({ used: before.user.day.used, reserved: 0 });
    });
  }

  it("refuses with feature_disabled (503) when the switch is off", async () => {
    await gw.switches.set("off", false);
    const e = (await client(CANARY.alice, { "x-tokenfuse-feature": "off" })
      .chat.completions.create({ model: "gpt-4o", messages: [{ role: "user", content: "x" }] })
      .catch((err: unknown) => err)) as InstanceType<typeof OpenAI.APIError>;
    expect([e.status, e.code]).toEqual([503, "feature_disabled"]);
  });

  it("refuses with user_budget_exceeded (429) and a Retry-After to the day's reset", async () => {
    let e: InstanceType<typeof OpenAI.APIError> | undefined;
    for (let i = 0; i < 60 && !e; i++) {
      e = (await client(CANARY.bob)
        .chat.completions.create({ model: "gpt-4o", messages: [{ role: "user", content: "hello" }] })
        .then(() => undefined)
        .catch((err: unknown) => err)) as InstanceType<typeof OpenAI.APIError> | undefined;
    }
    expect([e?.status, e?.code]).toEqual([429, "user_budget_exceeded"]);
    const retryAfter = Number(e?.headers?.get("retry-after"));
    expect(retryAfter).toBeGreaterThan(0);
    expect(retryAfter).toBeLessThanOrEqual(86_400);
    const b = (await budget(CANARY.bob)) as { user: { day: { used: number; limit: number } } };
    expect(b.user.day.used).toBeLessThanOrEqual(400);
  });

  it("refuses a body over the size limit with 413", async () => {
    const res = await fetch(`${base}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${CANARY.alice}`, "content-type": "application/json" },
      body: JSON.stringify({ model: "gpt-4o", messages: [{ role: "user", content: "x".repeat(1_100_000) }] }),
    });
    expect(res.status).toBe(413);
    expect(((await json(res)).error as { code: string }).code).toBe("invalid_request");
  });

  it("refuses client-sent upstream URLs and keys, and priority processing it cannot price, reserving nothing", async () => {
    const budget = async () =>
      (await fetch(`${base}/v1/budget`, { headers: { authorization: `Bearer ${CANARY.alice}` } })).text();
    const before = await budget();
    const cases: Array<[string, unknown]> = FORBIDDEN_FIELDS.map((f) => [f, "http://evil.test"]);
    cases.push(["service_tier", "priority"]);
    expect(cases.length).toBe(14);
    for (const [field, value] of cases) {
      const res = await fetch(`${base}/v1/chat/completions`, {
        method: "POST",
        headers: { authorization: `Bearer ${CANARY.alice}`, "content-type": "application/json" },
        body: JSON.stringify({ model: "gpt-4o", messages: [{ role: "user", content: "x" }], [field]: value }),
      });
      expect(res.status).toBe(400);
      const err = (await json(res)).error as { message: string; code: string };
      expect([err.code, err.message.includes(field)]).toEqual(["invalid_request", true]);
    }
    expect(await budget()).toBe(before);
  });

  it("refuses what every provider would refuse before reserving: a message without content, a non-string model, a repeated feature header", async () => {
    const before = await (
      await fetch(`${base}/v1/budget`, { headers: { authorization: `Bearer ${CANARY.alice}` } })
    ).text();
    const cases: Array<[Record<string, unknown>, Record<string, string> | undefined, RegExp]> = [
      [{ model: "gpt-4o", messages: [{ role: "user" }] }, undefined, /messages\[0\] \(user\) has no content/],
      [{ model: 5, messages: [{ role: "user", content: "x" }] }, undefined, /model must be a string/],
      [
        { model: "gpt-4o", messages: [{ role: "user", content: "x" }] },
        { "x-tokenfuse-feature": "chat" },
        /x-tokenfuse-feature header holds several values/,
      ],
    ];
    for (const [body, extraHeader, message] of cases) {
      const headers = new Headers({
        authorization: `Bearer ${CANARY.alice}`,
        "content-type": "application/json",
      });
      if (extraHeader) {
        headers.append("x-tokenfuse-feature", "chat");
        headers.append("x-tokenfuse-feature", "strict");
      }
      const res = await fetch(`${base}/v1/chat/completions`, {
        method: "POST",
        headers,
        body: JSON.stringify(body),
      });
      expect(res.status).toBe(400);
      const err = (await json(res)).error as { code: string; message: string };
      expect(err.code).toBe("invalid_request");
      expect(err.message).toMatch(message);
    }
    // Refused before any reservation: the budget is as it was.
    const after = await (
      await fetch(`${base}/v1/budget`, { headers: { authorization: `Bearer ${CANARY.alice}` } })
    ).text();
    expect(after).toBe(before);
    // An assistant message may have null content beside its tool calls: still accepted.
    const ok = await fetch(`${base}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${CANARY.alice}`, "content-type": "application/json" },
      body: JSON.stringify({
        model: "gpt-4o",
        messages: [
          { role: "user", content: "weather?" },
          {
            role: "assistant",
            content: null,
            tool_calls: [{ id: "t1", type: "function", function: { name: "w", arguments: "{}" } }],
          },
          { role: "tool", tool_call_id: "t1", content: "sunny" },
        ],
      }),
    });
    expect(ok.status).toBe(200);
    await ok.text();
  });

  it("a known path with the wrong method is a 405 naming the method to use; an unknown path a 404", async () => {
    const wrong = await fetch(`${base}/v1/chat/completions`, {
      headers: { authorization: `Bearer ${CANARY.alice}` },
    });
    expect(wrong.status).toBe(405);
    expect(wrong.headers.get("allow")).toBe("POST");
    expect(((await json(wrong)).error as { message: string }).message).toBe(
      "GET is not allowed on /v1/chat/completions: use POST",
    );
    const none = await fetch(`${base}/v1/nothing-here`);
    expect(none.status).toBe(404);
    await none.text();
    // The AI SDK's openai(model) calls the Responses API: the answer says what to use instead.
    const responses = await fetch(`${base}/v1/responses`, {
      method: "POST",
      headers: { authorization: `Bearer ${CANARY.alice}`, "content-type": "application/json" },
      body: JSON.stringify({ model: "gpt-4o", input: "hi" }),
    });
    expect(responses.status).toBe(404);
    expect(((await json(responses)).error as { message: string }).message).toMatch(
      /does not serve \/v1\/responses: .*POST \/v1\/chat\/completions.*openai\.chat\(model\)/,
    );
  });

  it("a key sent in another form is told the form it must take, and its text is never echoed", async () => {
    const post = (authorization: string) =>
      fetch(`${base}/v1/chat/completions`, {
        method: "POST",
        headers: { authorization, "content-type": "application/json" },
        body: JSON.stringify({ model: "gpt-4o", messages: [{ role: "user", content: "x" }] }),
      });
    const basic = await post("Basic Zm9vOmJhcg==");
    expect(basic.status).toBe(401);
    expect(((await json(basic)).error as { message: string }).message).toBe(
      'the Authorization header must be "Bearer <key>" (it uses the Basic scheme)',
    );
    const bare = await post(CANARY.alice); // the key without a scheme
    expect(bare.status).toBe(401);
    const text = JSON.stringify(await json(bare));
    expect(text).not.toContain(CANARY.alice.slice(0, 8));
    expect(text).toContain('the Authorization header must be \\"Bearer <key>\\"');
  });

  it("a trusted key may name end users, namespaced under the key; others may not", async () => {
    const b = (await json(
      await fetch(`${base}/v1/budget`, {
        headers: { authorization: `Bearer ${CANARY.backend}`, "x-tokenfuse-user": "carol" },
      }),
    )) as { user: { id: string } };
    expect(b.user.id).toBe("backend/carol");
    const res = await fetch(`${base}/v1/budget`, {
      headers: { authorization: `Bearer ${CANARY.alice}`, "x-tokenfuse-user": "carol" },
    });
    expect(res.status).toBe(401);
    seen.push(await res.text());
  });

  it("refuses with global_rate_limited (429) when the global tokens per minute would be exceeded", async () => {
    const g = createGateway({
      config: configFor(mock, { global: { tokens_per_minute: 50 } }),
      store: createMemoryStore(),
      logger,
    });
    const url = `http://127.0.0.1:${await g.listen(0)}`;
    try {
      const c = new OpenAI({ baseURL: `${url}/v1`, apiKey: CANARY.alice, maxRetries: 0 });
      const e = (await c.chat.completions
        .create({ model: "gpt-4o", messages: [{ role: "user", content: "x" }], max_tokens: 250 })
        .catch((err: unknown) => err)) as InstanceType<typeof OpenAI.APIError>;
      expect([e.status, e.code]).toEqual([429, "global_rate_limited"]);
      // 258 tokens against a limit of 50 a minute: it can never fit, so no wait is offered.
      expect(e.message).toMatch(/can never fit/);
      expect(e.headers?.get("retry-after")).toBeNull();
      expect(e.headers?.get("x-should-retry")).toBe("false");
    } finally {
      await g.close();
    }
  });

  it("refuses with budget_store_unavailable (503) when the store is down and on_error is deny", async () => {
    const deadPort = await freePort();
    const store = createGuardedStore({
      primary: createRedisStore({
        url: `redis://127.0.0.1:${deadPort}`,
        connectTimeoutMs: 200,
        commandTimeoutMs: 200,
      }),
      onError: "deny",
      logger,
    });
    const g = createGateway({ config: configFor(mock), store, logger });
    const url = `http://127.0.0.1:${await g.listen(0)}`;
    try {
      const c = new OpenAI({ baseURL: `${url}/v1`, apiKey: CANARY.alice, maxRetries: 0 });
      const e = (await c.chat.completions
        .create({ model: "gpt-4o", messages: [{ role: "user", content: "x" }] })
        .catch((err: unknown) => err)) as InstanceType<typeof OpenAI.APIError>;
      expect([e.status, e.code]).toEqual([503, "budget_store_unavailable"]);
      expect((await fetch(`${url}/readyz`)).status).toBe(503);
      expect(await (await fetch(`${url}/metrics`)).text()).toMatch(
        /tokenfuse_store_errors_total\{op="reserve",mode="deny"\} 1/,
      );
      const budget = await fetch(`${url}/v1/budget`, {
        headers: { authorization: `Bearer ${CANARY.alice}` },
      });
      expect(budget.status).toBe(503);
      expect(((await json(budget)).error as { code: string }).code).toBe("budget_store_unavailable");
    } finally {
      await g.close();
    }
  });

  it("never shows a secret in logs, responses or metrics", async () => {
    const metrics = await (await fetch(`${base}/metrics`)).text();
    const everything = [...logLines, ...seen, metrics].join("\n");
    expect(logLines.length).toBeGreaterThan(0);
    for (const [name, secret] of Object.entries(CANARY)) {
      expect(everything.includes(secret), `canary ${name} leaked`).toBe(false);
    }
  });
});
