import { type ChildProcess, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { hashApiKey } from "../src/gateway/auth.js";
import { type MockServer, startMockServer } from "../src/gateway/mock/mock-server.js";
import { testKeyPrefix } from "./helpers/redis-keys.js";

const KEY = `tf-mp-${randomUUID()}`;
const FLIP_KEY = `tf-mp-flip-${randomUUID()}`;
const ADMIN = `admin-${randomUUID()}`;
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
  // Under the run's prefix: the global teardown deletes these keys.
  const prefix = testKeyPrefix("gw");

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
        tiers: { free: { daily_tokens: LIMIT }, big: { daily_tokens: 1_000_000 } },
        default_tier: "free",
        keys: [
          { hash: hashApiKey(KEY), user: "near-limit" },
          { hash: hashApiKey(FLIP_KEY), user: "flipper", tier: "big" },
        ],
        admin: { token: ADMIN },
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
    // The gateways run on the real clock: the UTC day may change during the run (it is charged to
    // the day of each request), so every day from the first request to the last is read.
    const utcDay = (ms: number) => new Date(ms).toISOString().slice(0, 10);
    const firstDay = utcDay(Date.now());
    // 120 requests, 16 at a time, split across the two processes.
    for (let wave = 0; wave < 120; wave += 16) {
      await Promise.all(Array.from({ length: 16 }, (_, k) => one(wave + k)));
    }
    const days = [...new Set([firstDay, utcDay(Date.now())])];
    expect(refused).toBeGreaterThan(0);
    expect(ok).toBeGreaterThan(0);
    const redis = new Redis(inject("redisUrl"));
    try {
      let used = 0;
      for (const d of days) {
        const h = await redis.hgetall(`${prefix}c:user:{near-limit}:day:${d}`);
        expect(Number(h.u ?? 0)).toBeLessThanOrEqual(LIMIT);
        expect(Number(h.t ?? 0)).toBe(Number(h.u ?? 0)); // nothing left reserved
        used += Number(h.u ?? 0);
      }
      const ledger = mock.upstream.ledger().totals;
      expect(used).toBe(ledger.totalTokens);
      expect(ledger.requests).toBe(ok);
    } finally {
      redis.disconnect();
    }
  });

  it("a switch flipped through the admin API on one process is seen by the other within 1 s", async () => {
    const [a, b] = gateways as unknown as [{ url: string }, { url: string }];
    const chat = (url: string) =>
      fetch(`${url}/v1/chat/completions`, {
        method: "POST",
        headers: { authorization: `Bearer ${FLIP_KEY}`, "content-type": "application/json" },
        body: JSON.stringify({ model: "gpt-4o", messages: [{ role: "user", content: "hi" }] }),
      }).then(async (r) => ({
        status: r.status,
        code: r.status === 200 ? "" : ((await r.json()) as { error: { code: string } }).error.code,
      }));
    const put = (url: string, enabled: boolean, token = ADMIN) =>
      fetch(`${url}/admin/features/chat`, {
        method: "PUT",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: JSON.stringify({ enabled }),
      });
    expect((await chat(b.url)).status).toBe(200);
    expect((await put(a.url, false, "wrong-token")).status).toBe(401);
    expect((await chat(b.url)).status).toBe(200);
    const t0 = Date.now();
    expect((await put(a.url, false)).status).toBe(200);
    expect(await chat(a.url)).toEqual({ status: 503, code: "feature_disabled" });
    let seenAfter = -1;
    while (Date.now() - t0 < 3000) {
      if ((await chat(b.url)).code === "feature_disabled") {
        seenAfter = Date.now() - t0;
        break;
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(seenAfter).toBeGreaterThanOrEqual(0);
    expect(seenAfter).toBeLessThan(1000);
    expect((await put(a.url, true)).status).toBe(200);
    const t1 = Date.now();
    while ((await chat(b.url)).status !== 200 && Date.now() - t1 < 3000)
      await new Promise((r) => setTimeout(r, 20));
    expect(Date.now() - t1).toBeLessThan(1000);
  });
});
