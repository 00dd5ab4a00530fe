import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../src/config/load.js";
import { silentLogger } from "../src/core/logger.js";
import { type MockServer, startMockServer } from "../src/gateway/mock/mock-server.js";
import { createGateway, type Gateway } from "../src/gateway/server.js";
import { createMemoryStore } from "../src/stores/memory-store.js";
import { getChatTokenizer } from "../src/tokenizers/index.js";
import { type RecordingUpstream, startRecordingUpstream } from "./helpers/recording-upstream.js";

/**
 * The pipeline's output cap and model assignment (SPEC §2) reach the provider: what arrives on the
 * wire at the upstream (recorded in front of the mock server), what the mock's ledger saw, and what
 * the caller is charged.
 */
describe("the request the upstream receives", () => {
  let mock: MockServer;
  let rec: RecordingUpstream;
  let gw: Gateway;
  let base: string;
  const messages = [{ role: "user", content: "write me a very long essay" }];
  const INPUT = getChatTokenizer("o200k_base").countChat(messages);

  beforeAll(async () => {
    // The mock would write 200 tokens: only the output cap stops it at 50.
    mock = await startMockServer({ completionTokens: 200, chunkTokens: 7 });
    rec = await startRecordingUpstream(mock.url);
    const config = loadConfig(
      {
        upstreams: { provider: { type: "openai", base_url: `${rec.url}/v1`, timeout_ms: 5000 } },
        features: {
          mini: { model: "gpt-4o-mini", max_input: 1000, max_output: 50, on_exceed: "reject" },
          open: {
            model: "gpt-4o-mini",
            max_input: 1000,
            max_output: 50,
            on_exceed: "reject",
            allowed_models: ["gpt-4.1"],
          },
        },
        tiers: { free: { daily_tokens: 100_000 } },
        default_tier: "free",
      },
      {},
    );
    gw = createGateway({ config, store: createMemoryStore(), logger: silentLogger });
    base = `http://127.0.0.1:${await gw.listen(0)}`;
  });
  afterAll(async () => {
    await gw?.close();
    await rec?.close();
    await mock?.close();
  });

  const budget = async () =>
    (await (await fetch(`${base}/v1/budget`)).json()) as {
      user: { day: { used: number; reserved: number } };
      features: Record<string, { used_today: number }>;
    };
  const call = async (feature: string, body: Record<string, unknown>) => {
    const before = await budget();
    const sent = rec.requests.length;
    const res = await fetch(`${base}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-tokenfuse-feature": feature },
      body: JSON.stringify({ messages, ...body }),
    });
    const text = await res.text();
    const after = await budget();
    expect(rec.requests.length).toBe(sent + 1);
    return {
      status: res.status,
      text,
      upstream: rec.requests.at(-1)?.body as Record<string, unknown>,
      ledger: mock.upstream.ledger().records.at(-1),
      charged: after.user.day.used - before.user.day.used,
      featureCharged:
        (after.features[feature]?.used_today ?? 0) - (before.features[feature]?.used_today ?? 0),
      reserved: after.user.day.reserved,
    };
  };

  it("max_tokens 5000 and model gpt-4.1 reach the upstream as max_tokens 50 and gpt-4o-mini; charged input + 50", async () => {
    const r = await call("mini", { model: "gpt-4.1", max_tokens: 5000 });
    expect(r.status).toBe(200);
    expect(r.upstream).toEqual({ model: "gpt-4o-mini", messages, max_tokens: 50 });
    expect(r.ledger).toMatchObject({
      model: "gpt-4o-mini",
      stream: false,
      n: 1,
      promptTokens: INPUT,
      completionTokens: 50,
      status: "completed",
    });
    const answer = JSON.parse(r.text) as { model: string; usage: Record<string, number> };
    expect(answer.model).toBe("gpt-4o-mini");
    expect(answer.usage).toMatchObject({
      prompt_tokens: INPUT,
      completion_tokens: 50,
      total_tokens: INPUT + 50,
    });
    expect([r.charged, r.featureCharged, r.reserved]).toEqual([INPUT + 50, INPUT + 50, 0]);
  });

  it("no cap from the caller: the feature's cap is injected as max_tokens", async () => {
    const r = await call("mini", { model: "gpt-4o-mini" });
    expect(r.upstream).toEqual({ model: "gpt-4o-mini", messages, max_tokens: 50 });
    expect(r.ledger?.completionTokens).toBe(50);
    expect(r.charged).toBe(INPUT + 50);
  });

  it("max_completion_tokens 5000 is lowered in place; no max_tokens is added", async () => {
    const r = await call("mini", { model: "gpt-4.1", max_completion_tokens: 5000 });
    expect(r.upstream).toEqual({ model: "gpt-4o-mini", messages, max_completion_tokens: 50 });
    expect(r.ledger?.completionTokens).toBe(50);
    expect(r.charged).toBe(INPUT + 50);
  });

  it("a cap below the feature's is kept as the caller sent it", async () => {
    const r = await call("mini", { model: "gpt-4o-mini", max_tokens: 7 });
    expect(r.upstream).toEqual({ model: "gpt-4o-mini", messages, max_tokens: 7 });
    expect(r.ledger?.completionTokens).toBe(7);
    expect(r.charged).toBe(INPUT + 7);
  });

  it("streamed: the same cap and model, usage asked of the upstream; charged input + 50", async () => {
    const r = await call("mini", { model: "gpt-4.1", max_tokens: 5000, stream: true });
    expect(r.upstream).toEqual({
      model: "gpt-4o-mini",
      messages,
      max_tokens: 50,
      stream: true,
      stream_options: { include_usage: true },
    });
    expect(r.ledger).toMatchObject({
      model: "gpt-4o-mini",
      stream: true,
      completionTokens: 50,
      status: "completed",
    });
    // The client did not ask for usage: the usage chunk is dropped again.
    expect(r.text).toContain("data: [DONE]");
    expect(r.text).not.toContain('"prompt_tokens"');
    expect(r.charged).toBe(INPUT + 50);
  });

  it("a model the feature lists in allowed_models is kept; the cap still applies", async () => {
    const r = await call("open", { model: "gpt-4.1", max_tokens: 5000 });
    expect(r.upstream).toEqual({ model: "gpt-4.1", messages, max_tokens: 50 });
    expect(r.ledger).toMatchObject({ model: "gpt-4.1", completionTokens: 50 });
    expect(r.charged).toBe(INPUT + 50);
  });
});
