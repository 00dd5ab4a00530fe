import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../src/config/load.js";
import { silentLogger } from "../src/core/logger.js";
import { type MockServer, startMockServer } from "../src/gateway/mock/mock-server.js";
import { createGateway, type Gateway } from "../src/gateway/server.js";
import { createMemoryStore } from "../src/stores/memory-store.js";
import { getChatTokenizer } from "../src/tokenizers/index.js";
import { samplesOf } from "./helpers/prom-text.js";

/**
 * GET /metrics after a known sequence of calls on a fresh gateway (one registry per gateway): every
 * sample of the budget metrics has the value the sequence implies, and no other sample exists.
 */
describe("gateway /metrics after a known sequence of calls", () => {
  let mock: MockServer;
  let gw: Gateway;
  let base: string;
  const COMPLETION = 20;
  const messages = [{ role: "user", content: "count my tokens" }];
  const INPUT = getChatTokenizer("o200k_base").countChat(messages);

  beforeAll(async () => {
    mock = await startMockServer({ completionTokens: COMPLETION, chunkTokens: 3 });
    const config = loadConfig(
      {
        upstreams: { provider: { type: "openai", base_url: mock.baseUrl, timeout_ms: 5000 } },
        features: {
          chat: { model: "gpt-4o", max_input: 1000, max_output: 100, on_exceed: "trim" },
          strict: { model: "gpt-4o-mini", max_input: 5, max_output: 50, on_exceed: "reject" },
        },
        tiers: { free: { daily_tokens: 1_000_000 } },
        default_tier: "free",
      },
      {},
    );
    gw = createGateway({ config, store: createMemoryStore(), logger: silentLogger });
    base = `http://127.0.0.1:${await gw.listen(0)}`;
  });
  afterAll(async () => {
    await gw?.close();
    await mock?.close();
  });

  const post = async (feature: string, body: object = {}, headers: Record<string, string> = {}) => {
    const res = await fetch(`${base}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-tokenfuse-feature": feature, ...headers },
      body: JSON.stringify({ model: "gpt-4o", messages, ...body }),
    });
    await res.text();
    return res.status;
  };

  it("counts tokens, settlements, reservations, upstream latencies, decisions and HTTP requests exactly", async () => {
    const statuses = [
      await post("chat"), // allowed, settled INPUT + 20
      await post("chat"), // allowed, settled INPUT + 20
      await post("chat", { stream: true }), // allowed, streamed, settled INPUT + 20
      await post("strict"), // input over 5 tokens: refused before any reservation
      await post("chat", {}, { "x-mock-fault": "500" }), // admitted, upstream 500, released
      await post("nope"), // unknown feature: refused, the name is not a label
    ];
    expect(statuses).toEqual([200, 200, 200, 400, 502, 400]);
    const text = await (await fetch(`${base}/metrics`)).text();

    expect(samplesOf(text, "tokenfuse_tokens_total")).toEqual({
      "direction=input,feature=chat": 3 * INPUT,
      "direction=output,feature=chat": 3 * COMPLETION,
    });
    // Four reservations were settled: three with usage, one released (the upstream's 500).
    expect(samplesOf(text, "tokenfuse_settlements_total")).toEqual({ "feature=chat,status=settled": 4 });
    expect(samplesOf(text, "tokenfuse_reserved_tokens_total")).toEqual({ "feature=chat": 4 * (INPUT + 100) });
    expect(samplesOf(text, "tokenfuse_upstream_duration_seconds_count")).toEqual({
      "status=2xx,upstream=provider": 3,
      "status=5xx,upstream=provider": 1,
    });
    expect(samplesOf(text, "tokenfuse_decisions_total")).toEqual({
      "code=,decision=allow,feature=chat,store=ok": 4,
      "code=input_budget_exceeded,decision=reject,feature=strict,store=ok": 1,
      "code=unknown_feature,decision=reject,feature=,store=ok": 1,
    });
    expect(samplesOf(text, "tokenfuse_http_requests_total")).toEqual({
      "route=chat,status=200": 3,
      "route=chat,status=400": 2,
      "route=chat,status=502": 1,
    });
    expect(samplesOf(text, "tokenfuse_estimated_settlements_total")).toEqual({});
    expect(samplesOf(text, "tokenfuse_store_errors_total")).toEqual({});
    // The mock agrees on what was generated.
    expect(mock.upstream.ledger().totals).toMatchObject({
      requests: 4,
      promptTokens: 3 * INPUT,
      completionTokens: 3 * COMPLETION,
    });
  });
});
