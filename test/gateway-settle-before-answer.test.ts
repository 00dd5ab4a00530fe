import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../src/config/load.js";
import type { Logger } from "../src/core/logger.js";
import { hashApiKey } from "../src/gateway/auth.js";
import { type MockServer, startMockServer } from "../src/gateway/mock/mock-server.js";
import { createGateway, type Gateway } from "../src/gateway/server.js";
import { MemoryStore } from "../src/stores/memory-store.js";
import type { SettleRequest, SettleStatus } from "../src/stores/types.js";

/**
 * The answer is written only once the store applied its settlement (or release): whatever the
 * client sends after the answer (a budget read, a retry, its next request) finds it applied. And a
 * settlement that fails cannot turn the provider's answer, which is paid for, into an error. The
 * store here holds every settlement until the test lets it through.
 */
class GatedSettleStore extends MemoryStore {
  settleCalls = 0;
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
    return super.settle(req);
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

describe("settlement before the answer", () => {
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
  /**
   * Holds settlements, runs `send`, waits until the store holds the request's settlement, checks
   * `send` has not finished yet (the answer, or a stream's end, is not out), then lets it through.
   */
  const heldAnswer = async <T>(send: () => Promise<T>): Promise<T> => {
    store.hold();
    const calls = store.settleCalls;
    let answered = false;
    const pending = send().then((r) => {
      answered = true;
      return r;
    });
    await until(() => store.settleCalls === calls + 1, "the settlement reached the store");
    // The settlement is held: the answer must still be waiting (a few event-loop turns to show it).
    await new Promise((r) => setTimeout(r, 50));
    expect(answered).toBe(false);
    store.release();
    return pending;
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

  it("a non-streamed answer waits for its settlement; a budget read right after it sees the usage", async () => {
    const before = await day();
    const res = await heldAnswer(() => post(BODY));
    expect(res.status).toBe(200);
    const json = (await res.json()) as { usage: { prompt_tokens: number; completion_tokens: number } };
    const after = await day();
    expect(after.reserved).toBe(0);
    expect(after.used).toBe(before.used + json.usage.prompt_tokens + json.usage.completion_tokens);
  });

  it("a stream ends only after its settlement; a budget read right after it sees the usage", async () => {
    const before = await day();
    const text = await heldAnswer(async () => {
      const res = await post({ ...BODY, stream: true, stream_options: { include_usage: true } });
      expect(res.status).toBe(200); // the 200 goes out with the first chunk: only the end waits
      return res.text();
    });
    expect(text).toContain("data: [DONE]");
    const usage = JSON.parse(
      text
        .split("\n")
        .filter((l) => l.startsWith("data: {") && l.includes('"usage":{'))
        .at(-1)
        ?.slice(6) ?? "{}",
    ) as { usage: { total_tokens: number } };
    const after = await day();
    expect(after.reserved).toBe(0);
    expect(after.used).toBe(before.used + usage.usage.total_tokens);
  });

  it("an upstream 4xx passed through: released before the answer", async () => {
    const before = await day();
    const res = await heldAnswer(() => post(BODY, { "x-mock-fault": "429" }));
    expect(res.status).toBe(429);
    await res.text();
    const after = await day();
    expect(after.reserved).toBe(0);
    expect(after.used).toBe(before.used);
  });

  it("an upstream 5xx: released before the 502", async () => {
    const before = await day();
    const res = await heldAnswer(() => post(BODY, { "x-mock-fault": "500" }));
    expect(res.status).toBe(502);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("upstream_error");
    const after = await day();
    expect(after.reserved).toBe(0);
    expect(after.used).toBe(before.used);
  });

  it("a settlement that fails leaves a non-streamed answer whole and is logged", async () => {
    store.failWith = new Error("planted settle failure");
    const errors = logger.errors.length;
    const res = await post(BODY);
    expect(res.status).toBe(200);
    const json = (await res.json()) as { choices: unknown[] };
    expect(json.choices.length).toBe(1);
    expect(logger.errors.slice(errors)).toEqual(["settlement failed"]);
  });

  it("a settlement that fails leaves a stream whole and is logged", async () => {
    store.failWith = new Error("planted settle failure");
    const errors = logger.errors.length;
    const res = await post({ ...BODY, stream: true });
    expect(res.status).toBe(200);
    expect(await res.text()).toMatch(/data: \[DONE\]\s*$/);
    expect(logger.errors.slice(errors)).toEqual(["settlement failed"]);
  });
});
