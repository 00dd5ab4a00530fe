import { type ChildProcess, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { dayWindow } from "../src/core/windows.js";
import { hashApiKey } from "../src/gateway/auth.js";
import { type MockServer, startMockServer } from "../src/gateway/mock/mock-server.js";

const KEY = `tf-mp-${randomUUID()}`;
const LIMIT = 3_000;

function startGateway(configPath: string): Promise<{ child: ChildProcess; url: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ["bin/tokenfuse.js", "serve", "--config", configPath, "--port", "0"],
      {
        env: { ...process.env, TOKENFUSE_LOG_LEVEL: "error" },
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    let out = "";
    const timer = setTimeout(() => reject(new Error(`gateway did not start: ${out}`)), 15_000);
    child.stdout?.on("data", (d) => {
      out += d;
      const m = /gateway on (http:\/\/127\.0\.0\.1:\d+)/.exec(out);
      if (m?.[1]) {
        clearTimeout(timer);
        resolve({ child, url: m[1] });
      }
    });
    child.stderr?.on("data", (d) => (out += d));
    child.on("exit", (code) => reject(new Error(`gateway exited ${code}: ${out}`)));
  });
}

describe("two gateway processes on one Redis", () => {
  let mock: MockServer;
  const gateways: Array<{ child: ChildProcess; url: string }> = [];
  // Short (config allows 64 characters); every key has a TTL, so nothing outlives the test for long.
  const prefix = `tf:test-gw:${randomUUID().slice(0, 13)}:`;

  beforeAll(async () => {
    mock = await startMockServer({ completionTokens: 60 });
    const dir = mkdtempSync(join(tmpdir(), "tf-gw-"));
    const configPath = join(dir, "tokenfuse.json");
    writeFileSync(
      configPath,
      JSON.stringify({
        store: { url: inject("redisUrl"), key_prefix: prefix, on_error: "deny" },
        upstreams: { provider: { type: "openai", base_url: mock.baseUrl, timeout_ms: 10_000 } },
        features: { chat: { model: "gpt-4o", max_input: 1000, max_output: 80, on_exceed: "trim" } },
        tiers: { free: { daily_tokens: LIMIT } },
        default_tier: "free",
        keys: [{ hash: hashApiKey(KEY), user: "near-limit" }],
      }),
    );
    gateways.push(...(await Promise.all([startGateway(configPath), startGateway(configPath)])));
  }, 30_000);

  afterAll(async () => {
    for (const g of gateways) g.child.kill("SIGTERM");
    await mock.close();
  });

  it("never admits more than the user's limit in total; the upstream's ledger equals the store's counters", async () => {
    let ok = 0;
    let refused = 0;
    const one = async (i: number) => {
      const g = gateways[i % 2] as { url: string };
      const res = await fetch(`${g.url}/v1/chat/completions`, {
        method: "POST",
        headers: { authorization: `Bearer ${KEY}`, "content-type": "application/json" },
        body: JSON.stringify({
          model: "gpt-4o",
          messages: [{ role: "user", content: `request ${i}` }],
          stream: i % 3 === 0,
        }),
      });
      await res.text();
      if (res.status === 200) ok++;
      else if (res.status === 429) refused++;
      else throw new Error(`unexpected status ${res.status}`);
    };
    // 120 requests, 16 at a time, split across the two processes.
    for (let wave = 0; wave < 120; wave += 16) {
      await Promise.all(Array.from({ length: 16 }, (_, k) => one(wave + k)));
    }
    expect(refused).toBeGreaterThan(0);
    expect(ok).toBeGreaterThan(0);
    const redis = new Redis(inject("redisUrl"));
    try {
      const h = await redis.hgetall(`${prefix}c:user:{near-limit}:day:${dayWindow(Date.now(), "UTC").id}`);
      const ledger = mock.upstream.ledger().totals;
      expect(Number(h.u)).toBeLessThanOrEqual(LIMIT);
      expect(Number(h.t)).toBe(Number(h.u)); // nothing left reserved
      expect(Number(h.u)).toBe(ledger.totalTokens);
      expect(ledger.requests).toBe(ok);
    } finally {
      redis.disconnect();
    }
  });
});
