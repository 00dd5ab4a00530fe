import { randomUUID } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { fixedTestNow } from "./helpers/clock.js";
import { runLoadWorker, type WorkerLedger } from "./helpers/load-worker.js";

/** A real webhook receiver on loopback, recording every alert body. */
async function receiver(): Promise<{
  url: string;
  bodies: Array<{ scope: string; kind: string; text: string }>;
  server: Server;
}> {
  const bodies: Array<{ scope: string; kind: string; text: string }> = [];
  const server = createServer((req, res) => {
    let b = "";
    req.on("data", (d) => (b += d));
    req.on("end", () => {
      bodies.push(JSON.parse(b));
      res.end("ok");
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/alerts`, bodies, server };
}

describe("hourly cost alerts across 4 processes", () => {
  let hook: Awaited<ReturnType<typeof receiver>>;
  let ledgers: WorkerLedger[] = [];
  beforeAll(async () => {
    hook = await receiver();
    const prefix = `${inject("redisPrefix")}al-${randomUUID()}:`;
    // Fixed and ahead (helpers/clock.ts): Redis keeps the minute counters for the whole run.
    const nowMs = fixedTestNow();
    const config = {
      features: {
        chat: { model: "gpt-4o", max_input: 2000, max_output: 300, on_exceed: "trim", hourly_cost_usd: 0.01 },
        summarize: { model: "gpt-4o-mini", max_input: 4000, max_output: 200, on_exceed: "reject" },
      },
      tiers: { free: { daily_tokens: 1_000_000 } },
      default_tier: "free",
      alerts: { hourly_cost_usd: 0.02, sinks: [{ type: "webhook", url: hook.url }] },
    };
    ledgers = await Promise.all(
      Array.from({ length: 4 }, (_, w) =>
        runLoadWorker({
          redisUrl: inject("redisUrl"),
          keyPrefix: prefix,
          nowMs,
          requests: 60,
          concurrency: 16,
          users: ["a", "b", "c"],
          features: ["chat", "summarize"],
          seed: 7 + w,
          config,
        }),
      ),
    );
  }, 120_000);
  afterAll(() => new Promise<void>((r) => hook.server.close(() => r())));

  it("crossing a threshold with 4 processes produces exactly one alert per scope and hour", () => {
    // chat's own hourly_cost_usd is a breaker: once crossed, chat is refused with feature_disabled.
    const admitted = ledgers.reduce((s, l) => s + l.admitted, 0);
    const refusedCodes = new Set(ledgers.flatMap((l) => Object.keys(l.refused)));
    const refused = ledgers.reduce((s, l) => s + Object.values(l.refused).reduce((a, b) => a + b, 0), 0);
    expect(admitted + refused).toBe(240);
    expect([...refusedCodes].every((c) => c === "feature_disabled")).toBe(true);
    const byScope = new Map<string, number>();
    for (const b of hook.bodies) byScope.set(b.scope, (byScope.get(b.scope) ?? 0) + 1);
    expect(Object.fromEntries(byScope)).toEqual({ global: 1, "feature:chat": 1 });
    for (const b of hook.bodies) {
      expect(b.kind).toBe("hourly_cost");
      expect(b.text).toMatch(/^tokenfuse: .* spent \$\d+\.\d{2,9} in the hour from/);
      if (b.scope === "feature:chat") expect(b.text).toMatch(/switched off until \d\d:00Z/);
    }
  });
});
