import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../src/config/load.js";
import { silentLogger } from "../src/core/logger.js";
import { type MockServer, startMockServer } from "../src/gateway/mock/mock-server.js";
import { createGateway, type Gateway } from "../src/gateway/server.js";
import { createStoreFromConfig } from "../src/stores/from-config.js";
import { freePort } from "./helpers/redis-server.js";

interface Summarizing {
  mock: MockServer;
  gw: Gateway;
  base: string;
}

/**
 * A gateway on a mock server whose `chat` feature (gpt-4o) summarizes through `digest`
 * (gpt-4o-mini), with the given caps, tier and store (memory unless given).
 */
async function startSummarizing(o: {
  completionTokens: number;
  maxInput: number;
  maxOutput: number;
  digestMaxOutput: number;
  tier: Record<string, number>;
  store?: Record<string, unknown>;
}): Promise<Summarizing> {
  const mock = await startMockServer({ completionTokens: o.completionTokens });
  const config = loadConfig(
    {
      upstreams: { provider: { type: "openai", base_url: mock.baseUrl, timeout_ms: 5000 } },
      ...(o.store ? { store: o.store } : {}),
      features: {
        chat: {
          model: "gpt-4o",
          max_input: o.maxInput,
          max_output: o.maxOutput,
          on_exceed: "summarize",
          summarize_with: "digest",
        },
        digest: {
          model: "gpt-4o-mini",
          max_input: 16000,
          max_output: o.digestMaxOutput,
          on_exceed: "reject",
        },
      },
      tiers: { free: o.tier },
      default_tier: "free",
    },
    {},
  );
  const gw = createGateway({
    config,
    store: createStoreFromConfig(config.store, silentLogger),
    logger: silentLogger,
  });
  return { mock, gw, base: `http://127.0.0.1:${await gw.listen(0)}` };
}

/** {@link startSummarizing} for the tests of a describe block: started before them, closed after. */
function useSummarizing(
  o: Parameters<typeof startSummarizing>[0] | (() => Promise<Parameters<typeof startSummarizing>[0]>),
) {
  const box: { s?: Summarizing } = {};
  beforeAll(async () => {
    box.s = await startSummarizing(typeof o === "function" ? await o() : o);
  });
  afterAll(async () => {
    await box.s?.gw.close();
    await box.s?.mock.close();
  });
  return () => box.s as Summarizing;
}

/** A system message, `turns` questions and answers of `repeat` phrases each, and a last question. */
function history(turns: number, repeat: number) {
  const messages = [{ role: "system", content: "Be brief." }];
  for (let i = 0; i < turns; i++) {
    messages.push({ role: "user", content: `question ${i} ${"about the budget ".repeat(repeat)}` });
    messages.push({ role: "assistant", content: `answer ${i} ${"it is fine ".repeat(repeat)}` });
  }
  messages.push({ role: "user", content: "and now?" });
  return messages;
}

function ask(base: string, messages: object[]) {
  return fetch(`${base}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-tokenfuse-feature": "chat" },
    body: JSON.stringify({ model: "gpt-4o", messages }),
  });
}

interface BudgetReport {
  user: { day: { used: number; reserved: number } };
  features: Record<string, { used_today: number }>;
}

describe("gateway: on_exceed summarize, wired to the upstream through summarize_with", () => {
  const summarizing = useSummarizing({
    completionTokens: 30,
    maxInput: 300,
    maxOutput: 50,
    digestMaxOutput: 60,
    tier: { daily_tokens: 100_000 },
  });

  it("replaces the dropped turns with a summary made (and charged) under the summarize_with feature", async () => {
    const s = summarizing();
    const res = await ask(s.base, history(10, 4));
    const body = (await res.json()) as { usage: { prompt_tokens: number; total_tokens: number } };
    expect(res.status).toBe(200);
    expect(res.headers.get("x-tokenfuse-decision")).toBe("trim");
    expect(body.usage.prompt_tokens).toBeLessThanOrEqual(300);
    const records = s.mock.upstream.ledger().records;
    expect(records.map((r) => r.model)).toEqual(["gpt-4o-mini", "gpt-4o"]);
    const digest = records[0];
    const report = (await (await fetch(`${s.base}/v1/budget`)).json()) as BudgetReport;
    expect(report.features.digest?.used_today).toBe(
      (digest?.promptTokens ?? 0) + (digest?.completionTokens ?? 0),
    );
    expect(report.features.chat?.used_today).toBe(body.usage.total_tokens);
    expect(report.user.day.used).toBe(body.usage.total_tokens + (report.features.digest?.used_today ?? 0));
  });
});

describe("gateway: a summary that would leave no room for the request", () => {
  const summarizing = useSummarizing({
    completionTokens: 10,
    maxInput: 80,
    maxOutput: 20,
    digestMaxOutput: 15,
    tier: { daily_tokens: 100_000, tokens_per_minute: 400 },
  });

  it("is not made: the request is trimmed instead and nothing is charged for a summary", async () => {
    const s = summarizing();
    // The dropped turns make a summary request of over 300 tokens: it fits the 400 per minute, but
    // then the request (up to 80 + 20) would not. Before, the summary was made and charged, and the
    // request refused with 429, again at every retry.
    const res = await ask(s.base, history(8, 4));
    const body = (await res.json()) as { usage: { total_tokens: number } };
    expect(res.status).toBe(200);
    expect(res.headers.get("x-tokenfuse-decision")).toBe("trim");
    // One provider call, the request's; the digest feature charged nothing.
    expect(s.mock.upstream.ledger().records.map((r) => r.model)).toEqual(["gpt-4o"]);
    const report = (await (await fetch(`${s.base}/v1/budget`)).json()) as BudgetReport;
    expect(report.features.digest?.used_today).toBe(0);
    expect(report.user.day).toMatchObject({ used: body.usage.total_tokens, reserved: 0 });
  });
});

describe("gateway: summarize while the Redis store is down (on_error: local)", () => {
  const summarizing = useSummarizing(async () => ({
    completionTokens: 10,
    maxInput: 80,
    maxOutput: 20,
    digestMaxOutput: 15,
    tier: { daily_tokens: 100_000, tokens_per_minute: 3500 },
    store: { url: `redis://127.0.0.1:${await freePort()}`, on_error: "local" },
  }));

  it("makes no summary that this process's share could not fit with the request: trims instead", async () => {
    const s = summarizing();
    // The local share is 10 % of 3 500 a minute: the summary's reservation (~300) fits it, and then
    // the request would not. Before, the summary was made and charged, and the request refused.
    const res = await ask(s.base, history(8, 4));
    expect(res.status).toBe(200);
    await res.text();
    expect(res.headers.get("x-tokenfuse-decision")).toBe("trim");
    expect(s.mock.upstream.ledger().records.map((r) => r.model)).toEqual(["gpt-4o"]);
  });
});
