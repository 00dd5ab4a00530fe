import { mkdtempSync, readFileSync } from "node:fs";
import { connect, createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { loadConfig } from "../src/config/load.js";
import { silentLogger } from "../src/core/logger.js";
import { hashApiKey } from "../src/gateway/auth.js";
import { type MockServer, startMockServer } from "../src/gateway/mock/mock-server.js";
import { createGateway } from "../src/gateway/server.js";
import { createGuardedStore } from "../src/stores/guarded-store.js";
import { createRedisStore } from "../src/stores/redis/redis-store.js";
import { testKeyPrefix } from "./helpers/redis-keys.js";

/**
 * On Redis, a client's next request is decided after its previous request's settlement was applied
 * and recorded: the usage log holds each settlement line before the decision of the request the
 * client sent after that answer (so a replay decides as the store did), and a budget read right
 * after an answer shows it settled. Redis's replies pass through a proxy that holds them for a
 * couple of milliseconds and delivers them together, as a busy network or server does: a settlement
 * reply and the next reservation's reply then arrive in one read. A build that wrote the answer
 * before its settlement was recorded failed this: 19 of 30 second decisions were logged ahead of
 * the first request's settlement.
 */
const KEY = "tf-settle-order-key";

/** Client → Redis at once; Redis → client held and flushed every `ms` in one write. */
function coalescingProxy(port: number, ms: number): Promise<{ url: string; close: () => void }> {
  const sockets: Socket[] = [];
  const server: Server = createServer((client) => {
    const upstream = connect(port, "127.0.0.1");
    sockets.push(client, upstream);
    let held: Buffer[] = [];
    const timer = setInterval(() => {
      if (held.length > 0) {
        client.write(Buffer.concat(held));
        held = [];
      }
    }, ms);
    client.on("data", (d) => upstream.write(d));
    upstream.on("data", (d) => held.push(d));
    const end = () => {
      clearInterval(timer);
      client.destroy();
      upstream.destroy();
    };
    for (const s of [client, upstream]) {
      s.on("close", end);
      s.on("error", () => {});
    }
  });
  return new Promise((resolve) =>
    server.listen(0, "127.0.0.1", () => {
      resolve({
        url: `redis://127.0.0.1:${(server.address() as { port: number }).port}`,
        close: () => {
          for (const s of sockets) s.destroy();
          server.close();
        },
      });
    }),
  );
}

describe("gateway on Redis: what follows an answer sees its settlement", { timeout: 30_000 }, () => {
  let mock: MockServer;
  beforeAll(async () => {
    mock = await startMockServer({ completionTokens: 20 });
  });
  afterAll(async () => {
    await mock.close();
  });

  it("sequential requests: each settlement line precedes the next decision, and a read right after shows it", async () => {
    const redisUrl = new URL(inject("redisUrl"));
    const proxy = await coalescingProxy(Number(redisUrl.port || 6379), 3);
    const logPath = join(mkdtempSync(join(tmpdir(), "tf-settle-order-")), "usage.jsonl");
    const store = createGuardedStore({
      primary: createRedisStore({ url: proxy.url, keyPrefix: testKeyPrefix("setord") }),
      onError: "deny",
      logger: silentLogger,
    });
    const gw = createGateway({
      config: loadConfig(
        {
          usage_log: { path: logPath },
          upstreams: { provider: { type: "openai", base_url: mock.baseUrl, timeout_ms: 5000 } },
          features: { chat: { model: "gpt-4o", max_input: 1000, max_output: 100, on_exceed: "reject" } },
          tiers: { free: { daily_tokens: 1_000_000 } },
          default_tier: "free",
          keys: [{ hash: hashApiKey(KEY), user: "svc", trusted: true }],
        },
        {},
      ),
      store,
      logger: silentLogger,
    });
    const base = `http://127.0.0.1:${await gw.listen(0)}`;
    const PAIRS = 30;
    const stillReserved: number[] = [];
    try {
      for (let i = 0; i < PAIRS; i++) {
        const headers = { authorization: `Bearer ${KEY}`, "x-tokenfuse-user": `pair-${i}` };
        for (let j = 0; j < 2; j++) {
          const r = await fetch(`${base}/v1/chat/completions`, {
            method: "POST",
            headers: { "content-type": "application/json", ...headers },
            body: JSON.stringify({ messages: [{ role: "user", content: "hi" }] }),
          });
          expect(r.status).toBe(200);
          await r.text();
        }
        // Read after the pair's second answer only: a read between the two would let the first
        // settlement land before the second request is sent, hiding an overtaking.
        const b = await fetch(`${base}/v1/budget`, { headers });
        const day = ((await b.json()) as { user: { day: { reserved: number } } }).user.day;
        if (day.reserved !== 0) stillReserved.push(i);
      }
    } finally {
      await gw.close();
      proxy.close();
    }
    expect(stillReserved).toEqual([]);
    const lines = readFileSync(logPath, "utf8")
      .trimEnd()
      .split("\n")
      .map((l) => JSON.parse(l) as { type: string; id: string; user: string });
    const settled = new Set<string>();
    const firstId = new Map<string, string>();
    const overtaken: string[] = [];
    for (const l of lines) {
      if (l.type !== "decision") {
        settled.add(l.id);
        continue;
      }
      const first = firstId.get(l.user);
      if (first === undefined) firstId.set(l.user, l.id);
      else if (!settled.has(first)) overtaken.push(l.user);
    }
    expect(firstId.size).toBe(PAIRS);
    expect(settled.size).toBe(2 * PAIRS);
    expect(overtaken).toEqual([]);
  });
});
