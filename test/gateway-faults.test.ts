import { type AddressInfo, createServer, type Socket } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../src/config/load.js";
import { silentLogger } from "../src/core/logger.js";
import { type MockServer, startMockServer } from "../src/gateway/mock/mock-server.js";
import { createGateway, type Gateway } from "../src/gateway/server.js";
import { createMemoryStore } from "../src/stores/memory-store.js";
import { getChatTokenizer } from "../src/tokenizers/index.js";

/**
 * Faults from the upstream, over real HTTP on loopback: each must end with the right client error and
 * the right charge — nothing, or what was generated (estimated and flagged when the upstream reported
 * nothing).
 */
describe("gateway: upstream faults and client disconnects", () => {
  let mock: MockServer;
  let gw: Gateway;
  let base: string;
  const messages = [{ role: "user", content: "Tell me a long story" }];
  const prompt = getChatTokenizer("o200k_base").countChat(messages);

  beforeAll(async () => {
    mock = await startMockServer({ completionTokens: 60, chunkTokens: 2, chunkDelayMs: 5 });
    const config = loadConfig(
      {
        upstreams: { provider: { type: "openai", base_url: mock.baseUrl, timeout_ms: 1500 } },
        features: { chat: { model: "gpt-4o", max_input: 1000, max_output: 100, on_exceed: "trim" } },
        tiers: { free: { daily_tokens: 1_000_000 } },
        default_tier: "free",
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

  const used = async (_user: string) => {
    const r = (await (await fetch(`${base}/v1/budget`)).json()) as {
      user: { day: { used: number; reserved: number; remaining: number } };
    };
    return r.user.day;
  };
  // No keys are configured, so every caller is the user "anonymous"; each test compares before/after.
  const post = (body: object, headers: Record<string, string> = {}, signal?: AbortSignal) =>
    fetch(`${base}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", ...headers },
      body: JSON.stringify({ model: "gpt-4o", messages, ...body }),
      ...(signal ? { signal } : {}),
    });
  const lastRecord = () => mock.upstream.ledger().records.at(-1);
  const estimated = async () => {
    const text = await (await fetch(`${base}/metrics`)).text();
    return [...text.matchAll(/^tokenfuse_estimated_settlements_total\{[^}]*\} (\d+)/gm)].reduce(
      (s, m) => s + Number(m[1]),
      0,
    );
  };

  it("500 before any output: 502 upstream_error, nothing charged", async () => {
    const before = await used("anonymous");
    const res = await post({}, { "x-mock-fault": "500" });
    expect(res.status).toBe(502);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("upstream_error");
    expect(await used("anonymous")).toEqual({ ...before, reserved: 0 });
  });

  it("a stall past the upstream timeout: 504, nothing charged", async () => {
    const before = await used("anonymous");
    const res = await post({}, { "x-mock-fault": "stall" });
    expect(res.status).toBe(504);
    expect(await used("anonymous")).toEqual({ ...before, reserved: 0 });
  });

  it("a reset mid-stream: the client sees the stream fail, and is charged what was generated (estimated, flagged)", async () => {
    const before = await used("anonymous");
    const flagged = await estimated();
    const res = await post({ stream: true }, { "x-mock-fault": "reset-mid-stream" });
    expect(res.status).toBe(200);
    await expect(res.text()).rejects.toThrow();
    await new Promise((r) => setTimeout(r, 100));
    const rec = lastRecord();
    expect(rec?.status).toBe("reset");
    const after = await used("anonymous");
    expect(after.reserved).toBe(0);
    expect(after.used - before.used).toBe(prompt + (rec?.completionTokens ?? -1));
    expect(await estimated()).toBe(flagged + 1);
  });

  it("no usage chunk: the stream completes, charged the generated tokens (estimated, flagged)", async () => {
    const before = await used("anonymous");
    const flagged = await estimated();
    const res = await post({ stream: true }, { "x-mock-fault": "no-usage" });
    const text = await res.text();
    expect(text).toContain("data: [DONE]");
    const rec = lastRecord();
    const after = await used("anonymous");
    expect(after.used - before.used).toBe(prompt + (rec?.completionTokens ?? -1));
    expect(await estimated()).toBe(flagged + 1);
  });

  it("no usage from a reasoning model that completed: charged its whole output cap (hidden reasoning is billed), streamed or not", async () => {
    const config = loadConfig(
      {
        upstreams: { provider: { type: "openai", base_url: mock.baseUrl, timeout_ms: 1500 } },
        features: { think: { model: "o3", max_input: 1000, max_output: 100, on_exceed: "trim" } },
        tiers: { free: { daily_tokens: 1_000_000 } },
        default_tier: "free",
      },
      {},
    );
    const g = createGateway({ config, store: createMemoryStore(), logger: silentLogger });
    const url = `http://127.0.0.1:${await g.listen(0)}`;
    try {
      const day = async () =>
        (
          (await (await fetch(`${url}/v1/budget`)).json()) as {
            user: { day: { used: number; reserved: number; remaining: number } };
          }
        ).user.day;
      for (const stream of [false, true]) {
        const before = await day();
        const res = await fetch(`${url}/v1/chat/completions`, {
          method: "POST",
          headers: { "content-type": "application/json", "x-mock-fault": "no-usage" },
          body: JSON.stringify({ model: "o3", messages, stream }),
        });
        expect(res.status).toBe(200);
        await res.text();
        // The visible answer is 60 tokens; the reservation's output allowance is 100.
        expect(lastRecord()?.completionTokens).toBe(60);
        const after = await day();
        expect([stream, after.used - before.used, after.reserved]).toEqual([stream, prompt + 100, 0]);
      }
    } finally {
      await g.close();
    }
  });

  for (const stream of [false, true]) {
    it(`a client that disconnects before the answer (${stream ? "streamed" : "whole"}) is charged its input, estimated and flagged`, async () => {
      const before = await used("anonymous");
      const flagged = await estimated();
      const ac = new AbortController();
      const seen = mock.upstream.ledger().totals.requests;
      const pending = post({ stream }, { "x-mock-fault": "stall" }, ac.signal).catch(() => "aborted");
      // Left once the provider has the request (not during admission: then nothing went upstream).
      const until = Date.now() + 5000;
      while (mock.upstream.ledger().totals.requests === seen && Date.now() < until)
        await new Promise((r) => setTimeout(r, 10));
      ac.abort();
      expect(await pending).toBe("aborted");
      await new Promise((r) => setTimeout(r, 200));
      // The provider had the prompt: its input is billed, so it is charged; nothing stays reserved.
      expect(await used("anonymous")).toEqual({
        ...before,
        used: before.used + prompt,
        remaining: before.remaining - prompt,
        reserved: 0,
      });
      expect(await estimated()).toBe(flagged + 1);
    });
  }

  it("a client that disconnects mid-stream aborts the upstream request and is charged what was generated", async () => {
    const before = await used("anonymous");
    const ac = new AbortController();
    const res = await post({ stream: true }, {}, ac.signal);
    const reader = res.body?.getReader();
    await reader?.read();
    await reader?.read();
    ac.abort();
    await new Promise((r) => setTimeout(r, 200));
    const rec = lastRecord();
    expect(rec?.status).toBe("aborted");
    expect(rec?.completionTokens).toBeLessThan(60);
    const after = await used("anonymous");
    expect(after.reserved).toBe(0);
    const charged = after.used - before.used - prompt;
    // What passed through the gateway before the abort: at least one chunk, at most what the upstream sent.
    expect(charged).toBeGreaterThan(0);
    expect(charged).toBeLessThanOrEqual(rec?.completionTokens ?? 0);
  });
});

describe("gateway: a client that leaves before its request reached the provider", () => {
  it("is charged nothing while the upstream connection is still being set up (TLS handshake never answered)", async () => {
    // Accepts TCP and never answers the TLS handshake: the request is never written.
    const held: Socket[] = [];
    const tcp = createServer((s) => {
      held.push(s);
      s.on("error", () => {});
    });
    await new Promise<void>((r) => tcp.listen(0, "127.0.0.1", r));
    const port = (tcp.address() as AddressInfo).port;
    const config = loadConfig(
      {
        upstreams: {
          provider: { type: "openai", base_url: `https://127.0.0.1:${port}/v1`, timeout_ms: 5000 },
        },
        features: { chat: { model: "gpt-4o", max_input: 1000, max_output: 100, on_exceed: "trim" } },
        tiers: { free: { daily_tokens: 1_000_000 } },
        default_tier: "free",
      },
      {},
    );
    const gw = createGateway({ config, store: createMemoryStore(), logger: silentLogger });
    try {
      const base = `http://127.0.0.1:${await gw.listen(0)}`;
      const ac = new AbortController();
      const pending = fetch(`${base}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: "gpt-4o", messages: [{ role: "user", content: "hello" }] }),
        signal: ac.signal,
      }).catch(() => "aborted");
      const until = Date.now() + 5000;
      while (held.length === 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
      expect(held.length).toBe(1); // the gateway is connecting
      ac.abort();
      expect(await pending).toBe("aborted");
      let day = (await gw.engine.remaining({ user: "anonymous" })).user.day;
      for (let i = 0; i < 50 && day.reserved > 0; i++) {
        await new Promise((r) => setTimeout(r, 20));
        day = (await gw.engine.remaining({ user: "anonymous" })).user.day;
      }
      expect([day.used, day.reserved]).toEqual([0, 0]);
    } finally {
      await gw.close();
      for (const s of held) s.destroy();
      await new Promise((r) => tcp.close(r));
    }
  });
});
