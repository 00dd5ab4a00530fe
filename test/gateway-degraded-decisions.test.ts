import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../src/config/load.js";
import { createLogger } from "../src/core/logger.js";
import { type MockServer, startMockServer } from "../src/gateway/mock/mock-server.js";
import { createGateway } from "../src/gateway/server.js";
import { createStoreFromConfig } from "../src/stores/from-config.js";
import { getChatTokenizer } from "../src/tokenizers/index.js";
import { samplesOf } from "./helpers/prom-text.js";
import { testKeyPrefix } from "./helpers/redis-keys.js";
import { freePort, type OwnRedis, startRedisServer } from "./helpers/redis-server.js";

/**
 * SPEC §4 "never silent": with the Redis store unreachable (a port where nothing listens), N requests
 * in each on_error mode give exactly N store errors and N degraded decisions in /metrics with the
 * mode, exactly N log lines saying the store was unavailable for a reservation, and the answers the
 * mode promises. The store is built from the config as `tokenfuse serve` builds it.
 */
const N = 4;
const COMPLETION = 20; // = max_output: each answer settles exactly what it reserved
const messages = [{ role: "user", content: "is the store up?" }];
const INPUT = getChatTokenizer("o200k_base").countChat(messages);
const RESERVED = INPUT + COMPLETION;

interface LogLine {
  level: number;
  msg: string;
  [k: string]: unknown;
}

function post(base: string): Promise<Response> {
  return fetch(`${base}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: "gpt-4o", messages }),
  });
}

/**
 * N requests (one more with local, past this process's share) with the store unreachable; with
 * `stopRedis`, one healthy request first, then Redis is stopped.
 */
async function degradedScenario(
  mode: "deny" | "allow" | "local",
  redisUrl: string,
  mock: MockServer,
  stopRedis?: () => Promise<void>,
): Promise<void> {
  const lines: LogLine[] = [];
  const logger = createLogger("debug", { write: (s: string) => void lines.push(JSON.parse(s)) });
  const config = loadConfig(
    {
      store: {
        url: redisUrl,
        key_prefix: testKeyPrefix(mode),
        on_error: mode,
        command_timeout_ms: 300,
      },
      upstreams: { provider: { type: "openai", base_url: mock.baseUrl, timeout_ms: 5000 } },
      features: { chat: { model: "gpt-4o", max_input: 1000, max_output: COMPLETION, on_exceed: "trim" } },
      // With local (a tenth of each budget per process), exactly N reservations fit this process's share.
      tiers: { free: { daily_tokens: 10 * N * RESERVED } },
      default_tier: "free",
    },
    {},
  );
  const store = createStoreFromConfig(config.store, logger);
  const gw = createGateway({ config, store, logger });
  const base = `http://127.0.0.1:${await gw.listen(0)}`;
  try {
    let healthy = 0;
    if (stopRedis) {
      // Served while Redis is up, then Redis goes away under the running gateway.
      const res = await post(base);
      expect(res.status).toBe(200);
      await res.text();
      await stopRedis();
      healthy = 1;
    }
    const sentBefore = mock.upstream.ledger().totals.requests;
    const answers: Array<{ status: number; code?: string; retryAfter: string | null; tokens?: number }> = [];
    for (let i = 0; i < N; i++) {
      const res = await post(base);
      const body = (await res.json()) as { error?: { code: string }; usage?: { total_tokens: number } };
      answers.push({
        status: res.status,
        ...(body.error ? { code: body.error.code } : { tokens: body.usage?.total_tokens }),
        retryAfter: res.headers.get("retry-after"),
      });
    }
    const refused = { status: 503, code: "budget_store_unavailable", retryAfter: "1" };
    const admitted = { status: 200, tokens: RESERVED, retryAfter: null };
    expect(answers).toEqual(Array.from({ length: N }, () => (mode === "deny" ? refused : admitted)));
    let extra = 0;
    if (mode === "local") {
      // This process's share is used up: the next one is refused by it, and says to retry soon.
      const res = await post(base);
      const body = (await res.json()) as { error: { code: string; message: string } };
      expect([res.status, body.error.code, res.headers.get("retry-after")]).toEqual([
        429,
        "user_budget_exceeded",
        "1",
      ]);
      expect(body.error.message).toContain("this process's share while the budget store is unreachable");
      extra = 1;
    }

    const text = await (await fetch(`${base}/metrics`)).text();
    const admittedCount = mode === "deny" ? 0 : N;
    expect(samplesOf(text, "tokenfuse_store_errors_total")).toEqual({
      [`mode=${mode},op=reserve`]: N + extra,
      // Each admitted answer's settlement could not reach the store either: queued, not lost.
      ...(admittedCount > 0 ? { "mode=deferred,op=settle": admittedCount } : {}),
    });
    const whileUp = healthy > 0 ? { "code=,decision=allow,feature=chat,store=ok": healthy } : {};
    expect(samplesOf(text, "tokenfuse_decisions_total")).toEqual(
      mode === "deny"
        ? {
            ...whileUp,
            "code=budget_store_unavailable,decision=reject,feature=chat,store=store_unavailable": N,
          }
        : mode === "allow"
          ? { ...whileUp, "code=,decision=allow,feature=chat,store=store_unavailable": N }
          : {
              ...whileUp,
              "code=,decision=allow,feature=chat,store=local": N,
              "code=user_budget_exceeded,decision=reject,feature=chat,store=local": 1,
            },
    );
    expect(samplesOf(text, "tokenfuse_settlements_total")).toEqual({
      ...(healthy > 0 ? { "feature=chat,status=settled": healthy } : {}),
      ...(admittedCount > 0 ? { "feature=chat,status=deferred": admittedCount } : {}),
    });
    // Only admitted requests reached the provider.
    expect(mock.upstream.ledger().totals.requests - sentBefore).toBe(admittedCount);

    const unavailable = lines.filter((l) => l.msg === "budget store unavailable for a reservation");
    expect(unavailable.length).toBe(N + extra);
    expect(new Set(unavailable.map((l) => [l.level, l.onError].join(" ")))).toEqual(new Set([`40 ${mode}`]));
    const admittedLines = lines.filter((l) => l.msg === "admitted while the budget store is unavailable");
    expect(admittedLines.length).toBe(admittedCount);
    if (admittedCount > 0) expect(new Set(admittedLines.map((l) => l.onError))).toEqual(new Set([mode]));
  } finally {
    await gw.close();
  }
}

describe("degraded decisions: the Redis store at a port where nothing listens", () => {
  let mock: MockServer;
  beforeAll(async () => {
    mock = await startMockServer({ completionTokens: COMPLETION });
  });
  afterAll(async () => {
    await mock?.close();
  });

  for (const mode of ["deny", "allow", "local"] as const) {
    it(`on_error: ${mode}`, async () => {
      await degradedScenario(mode, `redis://127.0.0.1:${await freePort()}`, mock);
    });
  }
});

describe("degraded decisions: a private redis-server killed under a running gateway", () => {
  let mock: MockServer;
  let own: OwnRedis;
  beforeAll(async () => {
    mock = await startMockServer({ completionTokens: COMPLETION });
    own = await startRedisServer();
  });
  afterAll(async () => {
    await own?.stop();
    await mock?.close();
  });

  for (const mode of ["deny", "allow", "local"] as const) {
    it(`on_error: ${mode}`, async () => {
      await degradedScenario(mode, own.url, mock, () => own.kill());
      await own.restart();
    }, 30_000);
  }
});
