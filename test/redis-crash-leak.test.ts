import { spawn } from "node:child_process";
import { join } from "node:path";
import { Redis } from "ioredis";
import { afterAll, expect, inject, it } from "vitest";
import { createRedisStore } from "../src/stores/redis/redis-store.js";
import type { ScopeCharge } from "../src/stores/types.js";
import { keysWithoutTtl, scanKeys, testKeyPrefix } from "./helpers/redis-keys.js";

// A process that dies holding reservations (SIGKILL: no settlement, no cleanup) leaks nothing: its
// reservations expire by themselves in Redis and the next reader finds the budget whole again.

const url = inject("redisUrl");
const prefix = testKeyPrefix("crash");
const redis = new Redis(url);
const store = createRedisStore({ url, keyPrefix: prefix, commandTimeoutMs: 5000 });
afterAll(async () => {
  await store.close();
  redis.disconnect();
});

const now = Date.now();
const scopes: ScopeCharge[] = [
  {
    key: "user:{alice}:day:d",
    kind: "user",
    window: "day",
    limit: 100_000,
    resetAtMs: now + 864e5,
    expireAtMs: now + 2 * 864e5,
  },
  {
    key: "global:minute:m",
    kind: "global",
    window: "minute",
    limit: 100_000,
    resetAtMs: now + 6e4,
    expireAtMs: now + 12e4,
  },
];

it("reservations of a SIGKILLed process expire by themselves: nothing stays reserved, no key lacks a TTL", async () => {
  const child = `
import { createRedisStore } from ${JSON.stringify(join(process.cwd(), "dist/stores/redis/redis-store.js"))};
const store = createRedisStore({ url: ${JSON.stringify(url)}, keyPrefix: ${JSON.stringify(prefix)}, commandTimeoutMs: 5000 });
const scopes = ${JSON.stringify(scopes)};
const now = Date.now();
const rs = await Promise.all(Array.from({ length: 20 }, (_, i) =>
  store.reserve({ id: "held-" + i, tokens: 300, scopes, nowMs: now, ttlMs: 800 })));
if (!rs.every((r) => r.ok)) throw new Error("not reserved");
process.stdout.write("held\\n");
setInterval(() => {}, 1000); // holds them until killed
`;
  const p = spawn(process.execPath, ["--input-type=module", "-e", child], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  try {
    await new Promise<void>((resolve, reject) => {
      p.stdout?.on("data", (d: Buffer) => {
        if (d.toString().includes("held")) resolve();
      });
      p.on("exit", (code) => reject(new Error(`the child exited (${code}) before holding its reservations`)));
      setTimeout(() => reject(new Error("the child did not reserve in time")), 10_000);
    });
    const keys = scopes.map((s) => s.key);
    expect(await store.read(keys, Date.now())).toEqual([
      { used: 0, reserved: 6000 },
      { used: 0, reserved: 6000 },
    ]);
    p.kill("SIGKILL");
    await new Promise((r) => setTimeout(r, 1200));
    // The next reader (any process) releases what expired: the budget is whole again.
    expect(await store.read(keys, Date.now())).toEqual([
      { used: 0, reserved: 0 },
      { used: 0, reserved: 0 },
    ]);
    expect(await redis.zcard(`${prefix}exp`)).toBe(0);
    expect(await redis.hlen(`${prefix}rec`)).toBe(0);
    expect(await keysWithoutTtl(redis, prefix)).toEqual([]);
    expect((await scanKeys(redis, `${prefix}*`)).length).toBeGreaterThan(0);
  } finally {
    p.kill("SIGKILL");
  }
}, 30_000);
