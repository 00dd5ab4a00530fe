import { mkdtempSync, writeFileSync } from "node:fs";
import { createServer as createHttpServer } from "node:http";
import { type AddressInfo, createServer as createTcpServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { CliIo } from "./io.js";
import { main } from "./main.js";

// `tokenfuse demo --config <file>` is a demonstration: whatever the config's store and alert sinks,
// it must not spend shared budgets, add spend, claim alerts, trip breakers or call webhooks.

const dir = mkdtempSync(join(tmpdir(), "tf-demo-"));

function io() {
  const out: string[] = [];
  const err: string[] = [];
  const cliIo: CliIo = { out: (s) => out.push(s), err: (s) => err.push(s), stdin: async () => "", env: {} };
  return { cliIo, out: () => out.join(""), err: () => err.join("") };
}

/** A feature whose hourly cost cap the demo trips (the breaker) and whose alerts it fires. */
const FEATURES = `upstreams: { openai: { type: mock } }
features:
  chat: { model: gpt-4o, max_input: 4000, max_output: 1000, on_exceed: trim, daily_tokens: 50000, hourly_cost_usd: 0.05 }
tiers: { free: { daily_tokens: 10000 }, pro: { daily_tokens: 100000 } }
`;

describe("tokenfuse demo never touches anything shared", () => {
  it("runs on its own memory store when the config names a Redis store, and says so", async () => {
    // A stand-in for the shared Redis on loopback: it only counts the connections made to it.
    let connections = 0;
    const redis = createTcpServer((socket) => {
      connections++;
      socket.destroy();
    });
    await new Promise<void>((r) => redis.listen(0, "127.0.0.1", r));
    const port = (redis.address() as AddressInfo).port;
    const path = join(dir, "redis.yaml");
    writeFileSync(
      path,
      `store: { url: "redis://127.0.0.1:${port}/0", key_prefix: "tfdemo:", on_error: deny, command_timeout_ms: 200 }\n${FEATURES}alerts: { hourly_cost_usd: 0.05 }\n`,
    );
    try {
      const t = io();
      expect(await main(["demo", "--config", path, "--turns", "40"], t.cliIo)).toBe(0);
      expect(connections).toBe(0);
      const notes = t
        .out()
        .split("\n")
        .filter((l) => /shared redis store/.test(l));
      expect(notes).toHaveLength(1);
      expect(notes[0]).toMatch(/own memory store/);
      // The demo still shows what the config does, in its own process: trimming, then the breaker.
      expect(t.out()).toMatch(/\btrim\b/);
      expect(t.out()).toMatch(/turn \d+ refused with feature_disabled/);
      expect(t.out()).not.toMatch(/budget_store_unavailable/);
    } finally {
      await new Promise((r) => redis.close(r));
    }
  });

  it("calls none of the config's webhooks, though its run fires alerts and trips the breaker", async () => {
    const posts: string[] = [];
    const hook = createHttpServer((req, res) => {
      posts.push(req.url ?? "");
      req.resume();
      res.end("ok");
    });
    await new Promise<void>((r) => hook.listen(0, "127.0.0.1", r));
    const url = `http://127.0.0.1:${(hook.address() as AddressInfo).port}/hook`;
    const path = join(dir, "webhook.yaml");
    writeFileSync(
      path,
      `${FEATURES}alerts: { hourly_cost_usd: 0.05, sinks: [{ type: webhook, url: "${url}" }] }\n`,
    );
    try {
      const t = io();
      expect(await main(["demo", "--config", path, "--turns", "40"], t.cliIo)).toBe(0);
      expect(posts).toEqual([]);
      expect(t.out()).toMatch(/turn \d+ refused with feature_disabled/);
      expect(t.out()).toMatch(/calls none of the config's webhooks/);
      expect(t.out()).not.toMatch(/shared .* store/); // the store is memory: no note about it
    } finally {
      hook.closeAllConnections();
      await new Promise((r) => hook.close(r));
    }
  });
});
