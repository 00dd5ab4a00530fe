import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../src/config/load.js";
import type { Logger } from "../src/core/logger.js";
import { hashApiKey } from "../src/gateway/auth.js";
import { type MockServer, startMockServer } from "../src/gateway/mock/mock-server.js";
import { createGateway, type Gateway } from "../src/gateway/server.js";
import { MemoryStore } from "../src/stores/memory-store.js";
import type { SettleRequest, SettleStatus } from "../src/stores/types.js";

/**
 * The answer does not wait for the store's reply to its settlement: the settlement is handed to the
 * store before the answer is written (so whatever follows the answer sees it), and the request
 * counts as in flight until the store answered (a graceful stop waits for it). The store here holds
 * every settlement until the test lets it through, so "before" and "after" are observed, not timed.
 */
class GatedSettleStore extends MemoryStore {
  settleCalls = 0;
  applied = 0;
  failWith: Error | undefined;
  private gate: Promise<void> = Promise.resolve();
  private openGate: () => void = () => {};

  hold(): void {
    this.gate = new Promise((resolve) => {
      this.openGate = resolve;
    });
  }

  release(): void {
    this.openGate();
  }

  override async settle(req: SettleRequest): Promise<SettleStatus> {
    this.settleCalls++;
    await this.gate;
    if (this.failWith) throw this.failWith;
    const status = await super.settle(req);
    this.applied++;
    return status;
  }
}

function recordingLogger(): Logger & { errors: string[] } {
  const errors: string[] = [];
  return {
    errors,
    info() {},
    warn() {},
    error(_obj, msg) {
      errors.push(msg ?? "");
    },
  };
}

const KEY = "tf-settle-after-answer-key";
const AUTH = { authorization: `Bearer ${KEY}` };
const BODY = { model: "gpt-4o", messages: [{ role: "user", content: "Say hello" }] };

async function until(cond: () => boolean | Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`never happened: ${what}`);
}

describe("settlement after the answer", () => {
  let mock: MockServer;
  let store: GatedSettleStore;
  let logger: ReturnType<typeof recordingLogger>;
  let gw: Gateway;
  let base: string;
  const post = (body: object, headers: Record<string, string> = {}) =>
    fetch(`${base}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", ...AUTH, ...headers },
      body: JSON.stringify(body),
    });
  const day = async () => {
    const r = await fetch(`${base}/v1/budget`, { headers: AUTH });
    return ((await r.json()) as { user: { day: { used: number; reserved: number } } }).user.day;
  };

  beforeAll(async () => {
    mock = await startMockServer({ completionTokens: 20 });
    store = new GatedSettleStore();
    logger = recordingLogger();
    gw = createGateway({
      config: loadConfig(
        {
          upstreams: { provider: { type: "openai", base_url: mock.baseUrl, timeout_ms: 5000 } },
          features: { chat: { model: "gpt-4o", max_input: 1000, max_output: 100, on_exceed: "trim" } },
          tiers: { free: { daily_tokens: 1_000_000 } },
          default_tier: "free",
          keys: [{ hash: hashApiKey(KEY), user: "u" }],
        },
        {},
      ),
      store,
      logger,
    });
    base = `http://127.0.0.1:${await gw.listen(0)}`;
  });
  afterEach(() => {
    store.failWith = undefined;
    store.release();
  });
  afterAll(async () => {
    store.release();
    await gw.close();
    await mock.close();
  });

  it("a non-streamed answer arrives while its settlement is held; the settlement was already handed to the store", async () => {
    const before = await day();
    store.hold();
    const calls = store.settleCalls;
    const res = await post(BODY);
    expect(res.status).toBe(200);
    const json = (await res.json()) as { usage: { prompt_tokens: number; completion_tokens: number } };
    expect(store.settleCalls).toBe(calls + 1);
    // Not applied yet: the reservation still holds its tokens.
    const held = await day();
    expect(held.reserved).toBeGreaterThan(0);
    expect(held.used).toBe(before.used);
    store.release();
    const total = json.usage.prompt_tokens + json.usage.completion_tokens;
    await until(async () => (await day()).reserved === 0, "the settlement applied");
    expect((await day()).used).toBe(before.used + total);
  });

  it("a stream ends while its settlement is held", async () => {
    const before = await day();
    store.hold();
    const calls = store.settleCalls;
    const res = await post({ ...BODY, stream: true, stream_options: { include_usage: true } });
    expect(res.status).toBe(200);
    const text = await res.text();
    expect(text).toContain("data: [DONE]");
    expect(store.settleCalls).toBe(calls + 1);
    expect((await day()).reserved).toBeGreaterThan(0);
    store.release();
    const usage = JSON.parse(
      text
        .split("\n")
        .filter((l) => l.startsWith("data: {") && l.includes('"usage":{'))
        .at(-1)
        ?.slice(6) ?? "{}",
    ) as { usage: { total_tokens: number } };
    await until(async () => (await day()).reserved === 0, "the settlement applied");
    expect((await day()).used).toBe(before.used + usage.usage.total_tokens);
  });

  it("an upstream 4xx passed through: the release is handed to the store before the answer", async () => {
    const before = await day();
    store.hold();
    const calls = store.settleCalls;
    const res = await post(BODY, { "x-mock-fault": "429" });
    expect(res.status).toBe(429);
    await res.text();
    expect(store.settleCalls).toBe(calls + 1);
    store.release();
    await until(async () => (await day()).reserved === 0, "the release applied");
    expect((await day()).used).toBe(before.used);
  });

  it("an upstream 5xx: the release is handed to the store before the 502", async () => {
    store.hold();
    const calls = store.settleCalls;
    const res = await post(BODY, { "x-mock-fault": "500" });
    expect(res.status).toBe(502);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("upstream_error");
    expect(store.settleCalls).toBe(calls + 1);
    store.release();
    await until(async () => (await day()).reserved === 0, "the release applied");
  });

  it("a settlement that fails after the answer leaves the answer whole and is logged", async () => {
    store.failWith = new Error("planted settle failure");
    const errors = logger.errors.length;
    const res = await post(BODY);
    expect(res.status).toBe(200);
    const json = (await res.json()) as { choices: unknown[] };
    expect(json.choices.length).toBe(1);
    await until(() => logger.errors.length > errors, "the failure logged");
    expect(logger.errors.slice(errors)).toEqual(["settlement failed after the answer was sent"]);
  });
});

describe("a graceful stop waits for settlements of answered requests", () => {
  it("close() resolves only after the held settlement reached the store", async () => {
    const mock = await startMockServer({ completionTokens: 20 });
    const store = new GatedSettleStore();
    const gw = createGateway({
      config: loadConfig(
        {
          upstreams: { provider: { type: "openai", base_url: mock.baseUrl, timeout_ms: 5000 } },
          features: { chat: { model: "gpt-4o", max_input: 1000, max_output: 100, on_exceed: "trim" } },
          tiers: { free: { daily_tokens: 1_000_000 } },
          default_tier: "free",
          keys: [{ hash: hashApiKey(KEY), user: "u" }],
        },
        {},
      ),
      store,
      logger: recordingLogger(),
    });
    const base = `http://127.0.0.1:${await gw.listen(0)}`;
    try {
      store.hold();
      const res = await fetch(`${base}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json", ...AUTH },
        body: JSON.stringify(BODY),
      });
      expect(res.status).toBe(200);
      await res.text();
      let closed = false;
      const closing = gw.close().then(() => {
        closed = true;
      });
      await new Promise((r) => setTimeout(r, 100));
      expect(closed).toBe(false);
      expect(store.applied).toBe(0);
      store.release();
      await closing;
      expect(store.applied).toBe(1);
    } finally {
      store.release();
      await mock.close();
    }
  });
});
