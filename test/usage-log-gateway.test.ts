import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../src/config/load.js";
import { createLogger } from "../src/core/logger.js";
import type { ChatMessage } from "../src/core/types.js";
import { hashApiKey } from "../src/gateway/auth.js";
import { type MockServer, startMockServer } from "../src/gateway/mock/mock-server.js";
import { createGateway } from "../src/gateway/server.js";
import { createMemoryStore } from "../src/stores/memory-store.js";
import { getChatTokenizer } from "../src/tokenizers/index.js";

const tok = getChatTokenizer("o200k_base");

/** Secrets and message text: none may reach the usage log. */
const CANARY = {
  provider: `sk-canary-provider-${randomUUID()}`,
  alice: `tf-canary-alice-${randomUUID()}`,
  bob: `tf-canary-bob-${randomUUID()}`,
  backend: `tf-canary-backend-${randomUUID()}`,
  admin: `canary-admin-token-${randomUUID()}`,
  message: `canary-message-text-${randomUUID()}`,
  wrongKey: `tf-canary-wrong-${randomUUID()}`,
};
const dir = mkdtempSync(join(tmpdir(), "tf-usage-log-gw-"));
const logLines: string[] = [];
const logger = createLogger("debug", { write: (s: string) => void logLines.push(s) });
const COMPLETION = 20;

function configFor(mock: MockServer, usageLog: unknown) {
  return loadConfig(
    {
      usage_log: usageLog,
      upstreams: {
        provider: { type: "openai", base_url: mock.baseUrl, api_key: CANARY.provider, timeout_ms: 2000 },
      },
      features: { chat: { model: "gpt-4o", max_input: 200, max_output: 100, on_exceed: "trim" } },
      tiers: { free: { daily_tokens: 100_000 }, tiny: { daily_tokens: 400 } },
      default_tier: "free",
      keys: [
        { hash: hashApiKey(CANARY.alice), user: "alice" },
        { hash: hashApiKey(CANARY.bob), user: "bob", tier: "tiny" },
        { hash: hashApiKey(CANARY.backend), user: "backend", trusted: true },
      ],
      admin: { token: CANARY.admin },
      prices: { "gpt-4o": { input: 2.5, output: 10 } },
    },
    {},
  );
}

const costOf = (input: number, output: number) => Math.ceil((input * 2_500_000 + output * 10_000_000) / 1000);

describe("usage log from the gateway", () => {
  let mock: MockServer;
  beforeAll(async () => {
    mock = await startMockServer({ completionTokens: COMPLETION, chunkTokens: 3 });
  });
  afterAll(async () => {
    await mock.close();
  });

  it("one decision line per admission and one settlement line per settlement, exact, and no secrets or text", async () => {
    const path = join(dir, "usage.jsonl");
    const gw = createGateway({ config: configFor(mock, { path }), store: createMemoryStore(), logger });
    const base = `http://127.0.0.1:${await gw.listen(0)}`;
    const post = async (key: string, body: object, headers: Record<string, string> = {}) => {
      const res = await fetch(`${base}/v1/chat/completions`, {
        method: "POST",
        headers: { authorization: `Bearer ${key}`, "content-type": "application/json", ...headers },
        body: JSON.stringify(body),
      });
      const text = await res.text();
      return { status: res.status, input: Number(res.headers.get("x-tokenfuse-input-tokens")), text };
    };
    const say = (content: string) => ({ messages: [{ role: "user", content }] });
    // 1. plain, 2. streamed, 3. trimmed history, 4. upstream 500 (released), 5. no usage (estimated),
    // 6. an end user named by a trusted key, 7. refused by the tiny tier's budget (n = 5),
    // 8. not authenticated (never reaches the engine: no line).
    const r1 = await post(CANARY.alice, say(`Hello ${CANARY.message}`));
    const r2 = await post(CANARY.alice, { ...say(`Stream ${CANARY.message}`), stream: true });
    const history = {
      messages: [
        { role: "system", content: `Be brief. ${CANARY.message}` },
        { role: "user", content: `${CANARY.message} ${"old words ".repeat(150)}` },
        { role: "assistant", content: `${CANARY.message} ok` },
        { role: "user", content: `now ${CANARY.message}` },
      ],
    };
    const r3 = await post(CANARY.alice, history);
    const r4 = await post(CANARY.alice, say(CANARY.message), { "x-mock-fault": "500" });
    const r5 = await post(CANARY.alice, say(CANARY.message), { "x-mock-fault": "no-usage" });
    const r6 = await post(CANARY.backend, say(CANARY.message), { "x-tokenfuse-user": "end-user-1" });
    const r7 = await post(CANARY.bob, { ...say(CANARY.message), n: 5 });
    const r8 = await post(CANARY.wrongKey, say(CANARY.message));
    expect([r1, r2, r3, r4, r5, r6, r7, r8].map((r) => r.status)).toEqual([
      200, 200, 200, 502, 200, 200, 429, 401,
    ]);
    await gw.close(); // flushes the log

    const text = readFileSync(path, "utf8");
    for (const secret of Object.values(CANARY)) expect(text).not.toContain(secret);
    const lines = text
      .trimEnd()
      .split("\n")
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const decisions = lines.filter((l) => l.type === "decision");
    const settles = lines.filter((l) => l.type === "settle");
    expect(decisions).toHaveLength(7);
    expect(settles).toHaveLength(6);
    // Each admitted decision is followed, later, by exactly one settlement with its id.
    for (const d of decisions.filter((x) => x.decision !== "reject")) {
      expect(settles.filter((s) => s.id === d.id)).toHaveLength(1);
      expect(lines.indexOf(d)).toBeLessThan(lines.findIndex((s) => s.type === "settle" && s.id === d.id));
    }
    const pair = (i: number) => {
      const d = decisions[i] as Record<string, unknown>;
      return { d, s: settles.find((s) => s.id === d.id) as Record<string, unknown> };
    };
    const plain = pair(0);
    expect(plain.d).toMatchObject({
      user: "alice",
      feature: "chat",
      decision: "allow",
      input_tokens: r1.input,
      input_tokens_before: r1.input,
      max_output: 100,
      reserved_tokens: r1.input + 100,
    });
    expect(plain.s).toMatchObject({
      usage_source: "provider",
      input_tokens: r1.input,
      output_tokens: COMPLETION,
      charged_tokens: r1.input + COMPLETION,
      cost_nano_usd: costOf(r1.input, COMPLETION),
    });
    expect(pair(1).s).toMatchObject({
      usage_source: "provider",
      input_tokens: r2.input,
      output_tokens: COMPLETION,
      cost_nano_usd: costOf(r2.input, COMPLETION),
    });
    const trimmed = pair(2);
    // The old question goes, and its answer with it (turns are dropped whole).
    const [sys, , , last] = history.messages;
    const keptTokens = tok.countChat([sys, last] as ChatMessage[]);
    expect(r3.input).toBe(keptTokens);
    expect(trimmed.d).toMatchObject({
      decision: "trim",
      messages: 4,
      trimmed_messages: 2,
      input_tokens: keptTokens,
      input_tokens_before: tok.countChat(history.messages),
      input_tokens_floor: tok.countChat([sys, last] as ChatMessage[]),
      max_input: 200,
    });
    expect(trimmed.s).toMatchObject({ input_tokens: r3.input, output_tokens: COMPLETION });
    expect(pair(3).s).toMatchObject({ usage_source: "none", charged_tokens: 0, cost_nano_usd: 0 });
    const estimated = pair(4).s;
    expect(estimated).toMatchObject({ usage_source: "estimate", estimate_reason: "no usage reported" });
    expect(estimated.charged_tokens).toBe(
      (estimated.input_tokens as number) + (estimated.output_tokens as number),
    );
    expect(pair(5).d).toMatchObject({ user: "backend/end-user-1", decision: "allow" });
    expect(decisions[6]).toMatchObject({
      user: "bob",
      tier: "tiny",
      decision: "reject",
      code: "user_budget_exceeded",
      n: 5,
      reserved_tokens: (decisions[6]?.input_tokens as number) + 500,
    });
    // The log says where the usage log goes, once, at start; the process log has no canary either.
    expect(logLines.join("")).toContain('"msg":"usage log on"');
  });

  it("a request in flight when the gateway closes is settled and logged before the log closes", async () => {
    const path = join(dir, "in-flight.jsonl");
    // A short grace: the stalled request is still in flight when it ends, and is cut.
    const gw = createGateway({
      config: configFor(mock, { path }),
      store: createMemoryStore(),
      logger,
      shutdownGraceMs: 100,
    });
    const base = `http://127.0.0.1:${await gw.listen(0)}`;
    const stalled = fetch(`${base}/v1/chat/completions`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${CANARY.alice}`,
        "content-type": "application/json",
        "x-mock-fault": "stall",
      },
      body: JSON.stringify({ messages: [{ role: "user", content: "hi" }] }),
    }).catch(() => "cut");
    const seen = mock.upstream.ledger().totals.requests;
    while (mock.upstream.ledger().totals.requests === seen) await new Promise((r) => setTimeout(r, 10));
    await gw.close();
    expect(await stalled).toBe("cut");
    const lines = readFileSync(path, "utf8")
      .trimEnd()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(lines.map((l) => l.type)).toEqual(["decision", "settle"]);
    // Cut while the provider had its prompt: the input is charged, estimated (the client's side left).
    expect(lines[1]).toMatchObject({
      id: lines[0].id,
      usage_source: "estimate",
      output_tokens: 0,
      charged_tokens: lines[0].input_tokens,
    });
    expect(lines[0].input_tokens).toBeGreaterThan(0);
  });

  it("a failing usage log never fails a request, and is counted in /metrics", async () => {
    if (!existsSync("/dev/full")) return;
    const gw = createGateway({
      config: configFor(mock, { path: "/dev/full" }),
      store: createMemoryStore(),
      logger,
    });
    const base = `http://127.0.0.1:${await gw.listen(0)}`;
    for (let i = 0; i < 3; i++) {
      const res = await fetch(`${base}/v1/chat/completions`, {
        method: "POST",
        headers: { authorization: `Bearer ${CANARY.alice}`, "content-type": "application/json" },
        body: JSON.stringify({ messages: [{ role: "user", content: "hi" }] }),
      });
      expect(res.status).toBe(200);
      await res.text();
    }
    await new Promise((r) => setTimeout(r, 300)); // past the 100 ms flush interval
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toMatch(/^tokenfuse_usage_log_write_errors_total [1-9]/m);
    expect(metrics).toMatch(/^tokenfuse_usage_log_dropped_lines_total\{reason="write_failed"\} 6$/m);
    expect(metrics).toMatch(/^tokenfuse_usage_log_lines_total 0$/m);
    await gw.close();
  });
});

describe("tokenfuse serve with a usage log", () => {
  let mock: MockServer;
  beforeAll(async () => {
    mock = await startMockServer({ completionTokens: COMPLETION });
  });
  afterAll(async () => {
    await mock.close();
  });

  function serve(config: object) {
    const configPath = join(dir, `${randomUUID()}.json`);
    writeFileSync(configPath, JSON.stringify(config));
    const child = spawn(
      process.execPath,
      ["bin/tokenfuse.js", "serve", "--config", configPath, "--port", "0"],
      {
        env: { ...process.env, TOKENFUSE_LOG_LEVEL: "error" },
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
    return { child, exited, out: () => stdout, err: () => stderr };
  }

  const upstreams = () => ({ provider: { type: "openai", base_url: mock.baseUrl, timeout_ms: 5000 } });

  it("usage_log: stdout keeps stdout for JSON lines (the banner goes to stderr), flushed at SIGTERM", async () => {
    const p = serve({ usage_log: "stdout", upstreams: upstreams() });
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setInterval(() => {
        const m = /gateway on (http:\/\/127\.0\.0\.1:\d+) .*usage log: stdout/.exec(p.err());
        if (m?.[1]) {
          clearInterval(timer);
          resolve(m[1]);
        }
      }, 20);
      p.exited.then((code) => reject(new Error(`exited ${code}: ${p.err()}`)));
    });
    for (let i = 0; i < 3; i++) {
      const res = await fetch(`${url}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json", "x-tokenfuse-feature": "chat" },
        body: JSON.stringify({ messages: [{ role: "user", content: `hi ${i}` }] }),
      });
      expect(res.status).toBe(200);
      await res.text();
    }
    p.child.kill("SIGTERM");
    expect(await p.exited).toBe(0);
    const lines = p.out().trimEnd().split("\n");
    expect(lines).toHaveLength(6);
    expect(lines.map((l) => JSON.parse(l).type)).toEqual([
      "decision",
      "settle",
      "decision",
      "settle",
      "decision",
      "settle",
    ]);
  });

  it("SIGHUP reopens the usage log file (logrotate): lines before the rename in the old file, after in the new", async () => {
    const path = join(dir, `rotate-${randomUUID()}.jsonl`);
    const p = serve({ usage_log: { path }, upstreams: upstreams() });
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setInterval(() => {
        const m = /gateway on (http:\/\/127\.0\.0\.1:\d+)/.exec(p.out());
        if (m?.[1]) {
          clearInterval(timer);
          resolve(m[1]);
        }
      }, 20);
      p.exited.then((code) => reject(new Error(`exited ${code}: ${p.err()}`)));
    });
    const call = async (content: string) => {
      const res = await fetch(`${url}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json", "x-tokenfuse-feature": "chat" },
        body: JSON.stringify({ messages: [{ role: "user", content }] }),
      });
      expect(res.status).toBe(200);
      await res.text();
    };
    await call("before");
    await new Promise((r) => setTimeout(r, 300)); // past the flush interval: on disk
    renameSync(path, `${path}.1`);
    p.child.kill("SIGHUP");
    await new Promise((r) => setTimeout(r, 200));
    await call("after");
    p.child.kill("SIGTERM");
    expect(await p.exited).toBe(0);
    const types = (f: string) =>
      readFileSync(f, "utf8")
        .trimEnd()
        .split("\n")
        .map((l) => JSON.parse(l).type);
    expect(types(`${path}.1`)).toEqual(["decision", "settle"]);
    expect(types(path)).toEqual(["decision", "settle"]);
  });

  it("a usage log path that cannot be opened: exit 2 with one clear line, at start", async () => {
    const p = serve({ usage_log: { path: join(dir, "missing-dir", "u.jsonl") }, upstreams: upstreams() });
    expect(await p.exited).toBe(2);
    expect(p.err()).toBe(
      "tokenfuse serve: usage_log.path: cannot open the usage log for appending: its directory does not exist (ENOENT)\n",
    );
    expect(p.out()).toBe("");
  });
});
