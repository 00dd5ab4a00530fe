import { randomUUID } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { loadConfig } from "../src/config/load.js";
import { createLogger } from "../src/core/logger.js";
import { hashApiKey } from "../src/gateway/auth.js";
import { type MockServer, startMockServer } from "../src/gateway/mock/mock-server.js";
import { createGateway, type Gateway } from "../src/gateway/server.js";
import { createStoreFromConfig } from "../src/stores/from-config.js";
import { type RecordingUpstream, startRecordingUpstream } from "./helpers/recording-upstream.js";
import { scanKeys, testKeyPrefix } from "./helpers/redis-keys.js";
import { freePort } from "./helpers/redis-server.js";

/**
 * SPEC §6: secrets (provider keys, API keys, the admin token) never appear in logs, errors or
 * metrics. A gateway on the shared Redis with canary secrets everywhere a secret goes is driven
 * through admin calls with the right and wrong tokens, plain and streamed calls, refusals, upstream
 * faults and a provider that refuses the gateway's key quoting it (as OpenAI's 401 does); every log
 * line, response status, header and body (SSE bytes included), /metrics, the usage log and every
 * key and value the gateway wrote to Redis are searched for each canary.
 */
const CANARY = {
  provider: `sk-canary-provider-${randomUUID()}`,
  rejectedProvider: `sk-canary-rejected-${randomUUID()}`,
  alice: `tf-canary-alice-${randomUUID()}`,
  backend: `tf-canary-backend-${randomUUID()}`,
  admin: `canary-admin-token-${randomUUID()}`,
  // What clients send that is wrong is a secret too (a mistyped or foreign credential).
  wrongAdmin: `canary-wrong-admin-${randomUUID()}`,
  wrongKey: `tf-canary-wrong-key-${randomUUID()}`,
};

describe("no secret anywhere the gateway writes", () => {
  let mock: MockServer;
  let rec: RecordingUpstream;
  let gw: Gateway;
  let base: string;
  const logLines: string[] = [];
  const seen: string[] = [];
  const dir = mkdtempSync(join(tmpdir(), "tf-secrets-"));
  const usageLogPath = join(dir, "usage.jsonl");
  const prefix = testKeyPrefix("secrets");
  let createdKey = "";

  beforeAll(async () => {
    mock = await startMockServer({ completionTokens: 12, chunkTokens: 2 });
    // In front of the mock; requests under /reject are answered as OpenAI answers a wrong key:
    // a 401 whose message quotes the key it was sent.
    rec = await startRecordingUpstream(mock.url, (r) =>
      r.path.startsWith("/reject/")
        ? {
            status: 401,
            body: JSON.stringify({
              error: {
                message: `Incorrect API key provided: ${String(r.headers.authorization).replace(/^Bearer /, "")}. You can find your API key at https://platform.openai.com/account/api-keys.`,
                type: "invalid_request_error",
                param: null,
                code: "invalid_api_key",
              },
            }),
          }
        : undefined,
    );
    const config = loadConfig(
      {
        store: { url: inject("redisUrl"), key_prefix: prefix, on_error: "deny" },
        upstreams: {
          provider: { type: "openai", base_url: `${rec.url}/v1`, api_key: CANARY.provider, timeout_ms: 3000 },
          rejecting: {
            type: "openai",
            base_url: `${rec.url}/reject/v1`,
            api_key: CANARY.rejectedProvider,
            timeout_ms: 3000,
          },
          down: {
            type: "openai",
            base_url: `http://127.0.0.1:${await freePort()}/v1`,
            api_key: CANARY.provider,
            timeout_ms: 3000,
          },
        },
        features: {
          chat: { model: "gpt-4o", max_input: 300, max_output: 40, on_exceed: "trim" },
          strict: { model: "gpt-4o-mini", max_input: 20, max_output: 40, on_exceed: "reject" },
          refused: {
            model: "gpt-4o",
            max_input: 300,
            max_output: 40,
            on_exceed: "trim",
            upstream: "rejecting",
          },
          down: { model: "gpt-4o", max_input: 300, max_output: 40, on_exceed: "trim", upstream: "down" },
        },
        tiers: { free: { daily_tokens: 100_000 } },
        default_tier: "free",
        keys: [
          { hash: hashApiKey(CANARY.alice), user: "alice", default_feature: "chat" },
          { hash: hashApiKey(CANARY.backend), user: "backend", trusted: true, default_feature: "chat" },
        ],
        admin: { token: CANARY.admin },
        usage_log: { path: usageLogPath },
        alerts: { hourly_cost_usd: 0.000001, sinks: [{ type: "log" }] },
      },
      {},
    );
    const logger = createLogger("debug", { write: (s: string) => void logLines.push(s) });
    gw = createGateway({ config, store: createStoreFromConfig(config.store, logger), logger });
    base = `http://127.0.0.1:${await gw.listen(0)}`;
  });
  let closed = false;
  afterAll(async () => {
    if (!closed) await gw?.close();
    await rec?.close();
    await mock?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /**
   * Sends a request and keeps its status line, every header and every byte of the body as it arrives
   * (SSE included, also when the stream breaks: `broken` then says why).
   */
  async function call(path: string, init: RequestInit & { headers?: Record<string, string> } = {}) {
    const res = await fetch(`${base}${path}`, init);
    seen.push(`${res.status} ${res.statusText}`, JSON.stringify([...res.headers]));
    const decoder = new TextDecoder();
    let text = "";
    let broken: string | undefined;
    try {
      for await (const chunk of res.body ?? []) text += decoder.decode(chunk as Uint8Array, { stream: true });
    } catch (e) {
      broken = String(e);
    } finally {
      seen.push(text);
    }
    return { status: res.status, text, headers: res.headers, broken };
  }
  const chat = (key: string | undefined, body: object, headers: Record<string, string> = {}) =>
    call("/v1/chat/completions", {
      method: "POST",
      headers: {
        "content-type": "application/json",
        ...(key === undefined ? {} : { authorization: `Bearer ${key}` }),
        ...headers,
      },
      body: JSON.stringify({ model: "gpt-4o", messages: [{ role: "user", content: "hello" }], ...body }),
    });
  const admin = (method: string, path: string, token: string | undefined, body?: object) =>
    call(path, {
      method,
      headers: {
        ...(token === undefined ? {} : { authorization: `Bearer ${token}` }),
        ...(body ? { "content-type": "application/json" } : {}),
      },
      ...(body ? { body: JSON.stringify(body) } : {}),
    });

  it("admin calls with the right token work; with a wrong or no token they are refused", async () => {
    expect((await admin("GET", "/admin/features", CANARY.admin)).status).toBe(200);
    expect((await admin("PUT", "/admin/features/strict", CANARY.admin, { enabled: false })).status).toBe(200);
    expect((await admin("PUT", "/admin/features/strict", CANARY.admin, { enabled: true })).status).toBe(200);
    expect((await admin("GET", "/admin/usage?hours=1", CANARY.admin)).status).toBe(200);
    const created = await admin("POST", "/admin/keys", CANARY.admin, { user: "carol", tier: "free" });
    expect(created.status).toBe(201);
    createdKey = (JSON.parse(created.text) as { key: string }).key;
    expect(createdKey.length).toBeGreaterThan(20);
    expect((await admin("GET", "/admin/keys", CANARY.admin)).status).toBe(200);
    for (const token of [CANARY.wrongAdmin, CANARY.alice, undefined]) {
      const r = await admin("GET", "/admin/features", token);
      expect([r.status, (JSON.parse(r.text) as { error: { code: string } }).error.code]).toEqual([
        401,
        "unauthorized",
      ]);
    }
    expect((await admin("PUT", "/admin/features/chat", CANARY.wrongAdmin, { enabled: false })).status).toBe(
      401,
    );
    // Sent without the Bearer scheme: still refused, and never echoed.
    const bare = await call("/admin/features", { headers: { authorization: CANARY.admin } });
    expect(bare.status).toBe(401);
  });

  it("plain, streamed, trusted and run-time-key calls are answered", async () => {
    expect((await chat(CANARY.alice, {})).status).toBe(200);
    const sse = await chat(CANARY.alice, { stream: true });
    expect(sse.status).toBe(200);
    expect(sse.text).toContain("data: [DONE]");
    const sseUsage = await chat(CANARY.alice, { stream: true, stream_options: { include_usage: true } });
    expect(sseUsage.text).toContain('"usage":{"prompt_tokens"');
    expect((await chat(CANARY.backend, {}, { "x-tokenfuse-user": "dave" })).status).toBe(200);
    // A key created at run time is usable within the refresh interval.
    let status = 0;
    for (let i = 0; i < 40 && status !== 200; i++) {
      status = (await chat(createdKey, {}, { "x-tokenfuse-feature": "chat" })).status;
      if (status !== 200) await new Promise((r) => setTimeout(r, 100));
    }
    expect(status).toBe(200);
    for (const path of ["/v1/budget", "/v1/models"])
      expect((await call(path, { headers: { authorization: `Bearer ${CANARY.alice}` } })).status).toBe(200);
    for (const path of ["/healthz", "/readyz", "/dashboard"]) expect((await call(path)).status).toBe(200);
  });

  it("refusals and upstream faults are answered without a secret", async () => {
    const code = (r: { status: number; text: string }) => [
      r.status,
      (JSON.parse(r.text) as { error: { code: string } }).error.code,
    ];
    expect(code(await chat(CANARY.wrongKey, {}))).toEqual([401, "unauthorized"]);
    expect(code(await chat(undefined, {}, { authorization: CANARY.alice }))).toEqual([401, "unauthorized"]);
    expect(code(await chat(undefined, {}, { authorization: `Basic ${CANARY.alice}` }))).toEqual([
      401,
      "unauthorized",
    ]);
    expect(code(await chat(CANARY.alice, {}, { "x-tokenfuse-user": "eve" }))).toEqual([401, "unauthorized"]);
    expect(code(await chat(CANARY.alice, {}, { "x-tokenfuse-feature": "nope" }))).toEqual([
      400,
      "unknown_feature",
    ]);
    expect(
      code(
        await chat(
          CANARY.alice,
          { messages: [{ role: "user", content: "word ".repeat(100) }] },
          {
            "x-tokenfuse-feature": "strict",
          },
        ),
      ),
    ).toEqual([400, "input_budget_exceeded"]);
    expect(code(await chat(CANARY.alice, { api_key: CANARY.wrongKey }))).toEqual([400, "invalid_request"]);
    const badJson = await call("/v1/chat/completions", {
      method: "POST",
      headers: { authorization: `Bearer ${CANARY.alice}`, "content-type": "application/json" },
      body: "{not json",
    });
    expect(code(badJson)).toEqual([400, "invalid_request"]);
    expect(code(await chat(CANARY.alice, {}, { "x-mock-fault": "500" }))).toEqual([502, "upstream_error"]);
    expect(code(await chat(CANARY.alice, { stream: true }, { "x-mock-fault": "500" }))).toEqual([
      502,
      "upstream_error",
    ]);
    const midStream = await chat(CANARY.alice, { stream: true }, { "x-mock-fault": "reset-mid-stream" });
    expect(midStream.status).toBe(200);
    expect(midStream.text).toContain("data: {");
    expect(midStream.broken).toBeDefined();
    expect(code(await chat(CANARY.alice, {}, { "x-tokenfuse-feature": "down" }))).toEqual([
      502,
      "upstream_error",
    ]);
  });

  it("a provider refusing the gateway's key (quoting it) becomes a 502 that names the upstream, never the key", async () => {
    for (const stream of [false, true]) {
      const r = await chat(CANARY.alice, { stream }, { "x-tokenfuse-feature": "refused" });
      expect(r.status).toBe(502);
      expect(JSON.parse(r.text)).toEqual({
        error: {
          message: `upstream "rejecting" refused the gateway's credentials (401)`,
          type: "upstream_error",
          code: "upstream_error",
          param: null,
        },
      });
      expect(r.headers.get("x-should-retry")).toBe("false");
    }
    const said = logLines.filter((l) => l.includes("the upstream refused the gateway's credentials"));
    expect(said.length).toBe(2);
  });

  it("the upstream received only the gateway's own key, and nothing of the client's", () => {
    const fromProvider = rec.requests.filter((r) => r.path === "/v1/chat/completions");
    const fromRejecting = rec.requests.filter((r) => r.path === "/reject/v1/chat/completions");
    expect(fromProvider.length).toBeGreaterThan(5);
    expect(fromRejecting.length).toBe(2);
    expect(new Set(fromProvider.map((r) => r.headers.authorization))).toEqual(
      new Set([`Bearer ${CANARY.provider}`]),
    );
    expect(new Set(fromRejecting.map((r) => r.headers.authorization))).toEqual(
      new Set([`Bearer ${CANARY.rejectedProvider}`]),
    );
    for (const r of rec.requests) {
      const { authorization: _, ...headers } = r.headers;
      const text = JSON.stringify([headers, r.body]);
      for (const [name, secret] of Object.entries(CANARY)) expect(text.includes(secret), name).toBe(false);
      expect(text.includes(createdKey)).toBe(false);
    }
  });

  it("no canary in any log line, response, /metrics, the usage log or what the gateway stored in Redis", async () => {
    const metrics = await (await fetch(`${base}/metrics`)).text();
    // Redis: every key under this gateway's prefix, with its value whatever its type.
    const redis = new Redis(inject("redisUrl"));
    const stored: string[] = [];
    try {
      for (const k of await scanKeys(redis, `${prefix}*`)) {
        const type = await redis.type(k);
        const value =
          type === "hash"
            ? await redis.hgetall(k)
            : type === "string"
              ? await redis.get(k)
              : type === "zset"
                ? await redis.zrange(k, "0", "-1", "WITHSCORES")
                : type === "set"
                  ? await redis.smembers(k)
                  : type === "list"
                    ? await redis.lrange(k, 0, -1)
                    : `(${type})`;
        stored.push(k, JSON.stringify(value));
      }
    } finally {
      redis.disconnect();
    }
    expect(stored.length).toBeGreaterThan(0);
    closed = true;
    await gw.close(); // flushes the usage log
    const usageLog = readFileSync(usageLogPath, "utf8");
    expect(usageLog.split("\n").filter(Boolean).length).toBeGreaterThan(10);
    expect(logLines.length).toBeGreaterThan(10);
    expect(metrics).toContain("tokenfuse_decisions_total");
    const places: Record<string, string> = {
      logs: logLines.join("\n"),
      responses: seen.join("\n"),
      metrics,
      usageLog,
      redis: stored.join("\n"),
    };
    for (const [where, text] of Object.entries(places)) {
      for (const [name, secret] of Object.entries(CANARY)) {
        expect(text.includes(secret), `canary ${name} in ${where}`).toBe(false);
        // Nor a recognisable part of it (OpenAI quotes keys shortened, "sk-canar***1234").
        expect(text.includes(secret.slice(-12)), `the end of canary ${name} in ${where}`).toBe(false);
      }
    }
    // The key created at run time appears once: in the one answer that created it.
    const responsesWithKey = seen.filter((s) => s.includes(createdKey));
    expect(responsesWithKey.length).toBe(1);
    for (const where of ["logs", "metrics", "usageLog", "redis"] as const)
      expect(places[where]?.includes(createdKey), `the created key in ${where}`).toBe(false);
  });
});
