import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { loadConfig } from "../src/config/load.js";
import { silentLogger } from "../src/core/logger.js";
import { type MockServer, startMockServer } from "../src/gateway/mock/mock-server.js";
import { createGateway, type Gateway } from "../src/gateway/server.js";
import type { UpstreamClient } from "../src/gateway/upstream/types.js";
import { createMemoryStore } from "../src/stores/memory-store.js";
import { getChatTokenizer } from "../src/tokenizers/index.js";

/**
 * Graceful stop (`tokenfuse serve` on SIGTERM calls close()): new connections are refused, the
 * requests in flight finish within the grace period and are charged once; past the grace, what is
 * left is cut as a client disconnect and settled once.
 */

const messages = [{ role: "user", content: "Tell me a long story" }];
const prompt = getChatTokenizer("o200k_base").countChat(messages);

let mock: MockServer | undefined;
let gw: Gateway | undefined;
afterEach(async () => {
  await gw?.close();
  await mock?.close();
  gw = undefined;
  mock = undefined;
});

async function start(mockOptions: Parameters<typeof startMockServer>[0], shutdownGraceMs: number) {
  mock = await startMockServer(mockOptions);
  const config = loadConfig(
    {
      upstreams: { provider: { type: "openai", base_url: mock.baseUrl, timeout_ms: 10_000 } },
      features: { chat: { model: "gpt-4o", max_input: 1000, max_output: 100, on_exceed: "trim" } },
      tiers: { free: { daily_tokens: 1_000_000 } },
      default_tier: "free",
    },
    {},
  );
  gw = createGateway({ config, store: createMemoryStore(), logger: silentLogger, shutdownGraceMs });
  const port = await gw.listen(0);
  return { gw, mock, port, base: `http://127.0.0.1:${port}` };
}

/** A raw HTTP exchange; resolves with all that was received once the server closed the connection. */
function rawRequest(port: number, text: string): { done: Promise<string> } {
  const sock = connect({ host: "127.0.0.1", port });
  let received = "";
  sock.on("error", () => {});
  sock.on("data", (d) => {
    received += d.toString("utf8");
  });
  const giveUp = setTimeout(() => sock.destroy(), 8000);
  const done = new Promise<string>((resolve) =>
    sock.on("close", () => {
      clearTimeout(giveUp);
      resolve(received);
    }),
  );
  sock.write(text);
  return { done };
}

function chatRequest(body: object, headers = ""): string {
  const text = JSON.stringify({ model: "gpt-4o", messages, ...body });
  return `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n${headers}content-length: ${Buffer.byteLength(text)}\r\n\r\n${text}`;
}

function splitResponse(raw: string) {
  const at = raw.indexOf("\r\n\r\n");
  const head = at === -1 ? raw : raw.slice(0, at);
  return {
    status: Number(head.match(/^HTTP\/1\.1 (\d{3})/)?.[1] ?? 0),
    head: head.toLowerCase(),
    body: at === -1 ? "" : raw.slice(at + 4),
  };
}

/** A new TCP connection to the port: "refused" or "accepted". */
function tryConnect(port: number): Promise<string> {
  return new Promise((resolve) => {
    const sock = connect({ host: "127.0.0.1", port });
    sock.on("connect", () => {
      sock.destroy();
      resolve("accepted");
    });
    sock.on("error", (e: NodeJS.ErrnoException) =>
      resolve(e.code === "ECONNREFUSED" ? "refused" : String(e.code)),
    );
  });
}

async function waitUntil(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Settlement events and settled tokens, from the gateway's metrics. */
async function settlements(g: Gateway) {
  const text = await g.metrics.registry.metrics();
  const sum = (re: RegExp) => [...text.matchAll(re)].reduce((s, m) => s + Number(m[1]), 0);
  return {
    settled: sum(/^tokenfuse_settlements_total\{[^}]*status="settled"[^}]*\} (\d+)/gm),
    other: sum(/^tokenfuse_settlements_total\{[^}]*status="(?!settled")[^"]*"[^}]*\} (\d+)/gm),
    input: sum(/^tokenfuse_tokens_total\{[^}]*direction="input"[^}]*\} (\d+)/gm),
    output: sum(/^tokenfuse_tokens_total\{[^}]*direction="output"[^}]*\} (\d+)/gm),
  };
}

async function day(g: Gateway) {
  const r = await g.engine.remaining({ user: "anonymous", tier: "free" });
  return { used: r.user.day.used, reserved: r.user.day.reserved };
}

describe("gateway: graceful stop", () => {
  it("lets a slow call and a stream finish (200, whole bodies, charged once), refuses new connections, /readyz 503", async () => {
    // Each answer is 30 tokens after 300 ms; the stream's 10 chunks come 40 ms apart.
    const {
      gw: g,
      mock: m,
      port,
    } = await start({ completionTokens: 30, chunkTokens: 3, chunkDelayMs: 40, latencyMs: 300 }, 5000);
    const whole = rawRequest(port, chatRequest({}));
    const stream = rawRequest(port, chatRequest({ stream: true }));
    // A readiness probe under way on its own connection (its request line sent, not its headers).
    const probe = connect({ host: "127.0.0.1", port });
    probe.on("error", () => {});
    let probeAnswer = "";
    probe.on("data", (d) => {
      probeAnswer += d.toString("utf8");
    });
    const probeClosed = new Promise((r) => probe.on("close", r));
    probe.write("GET /readyz HTTP/1.1\r\n");
    await waitUntil(
      () => m.upstream.ledger().records.filter((r) => r.status === "open").length === 2,
      "both calls upstream",
    );
    await new Promise((r) => setTimeout(r, 20)); // the probe's first line has been read

    let closedAt = 0;
    const closing = g.close().then(() => {
      closedAt = Date.now();
    });
    expect(await tryConnect(port)).toBe("refused");
    probe.write("Host: x\r\n\r\n");

    const [w, s] = await Promise.all([whole.done, stream.done]);
    const endedAt = Date.now();
    const wr = splitResponse(w);
    expect(wr.status).toBe(200);
    const answer = JSON.parse(wr.body) as {
      choices: Array<{ message: { content: string } }>;
      usage: { prompt_tokens: number; completion_tokens: number };
    };
    expect(answer.usage).toEqual(expect.objectContaining({ prompt_tokens: prompt, completion_tokens: 30 }));
    // Not started when the stop began: it says its connection closes.
    expect(wr.head).toContain("connection: close");
    const sr = splitResponse(s);
    expect(sr.status).toBe(200);
    expect(sr.body).toContain("data: [DONE]");
    // The whole text: the same the non-streamed answer holds (the mock's text depends on its length only).
    const streamedText = [...sr.body.matchAll(/^data: (\{.*\})$/gm)]
      .map((l) => JSON.parse(l[1] ?? "{}") as { choices?: Array<{ delta?: { content?: string } }> })
      .map((c) => c.choices?.[0]?.delta?.content ?? "")
      .join("");
    expect(streamedText).toBe(answer.choices[0]?.message.content);
    expect(streamedText.length).toBeGreaterThan(0);

    await Promise.race([closing, new Promise((r) => setTimeout(r, 5000))]);
    expect(closedAt).toBeGreaterThan(0);
    expect(closedAt).toBeGreaterThanOrEqual(endedAt - 50);

    await Promise.race([probeClosed, new Promise((r) => setTimeout(r, 2000))]);
    const pr = splitResponse(probeAnswer);
    expect(pr.status).toBe(503);
    expect(JSON.parse(pr.body)).toMatchObject({ status: "draining" });
    expect(pr.head).toContain("connection: close");

    expect(m.upstream.ledger().records.map((r) => r.status)).toEqual(["completed", "completed"]);
    expect(await settlements(g)).toEqual({ settled: 2, other: 0, input: 2 * prompt, output: 60 });
    expect(await day(g)).toEqual({ used: 2 * (prompt + 30), reserved: 0 });
  });

  it("two pipelined calls on one connection are both answered whole before it closes, each charged once", async () => {
    const { gw: g, mock: m, port } = await start({ completionTokens: 20, latencyMs: 300 }, 5000);
    const r = rawRequest(port, chatRequest({}) + chatRequest({}));
    await waitUntil(() => m.upstream.ledger().totals.requests === 2, "both calls at the mock");
    await g.close();
    const raw = await r.done;
    const answers = raw.split(/(?=HTTP\/1\.1 )/).map(splitResponse);
    expect(answers.map((a) => a.status)).toEqual([200, 200]);
    for (const a of answers) expect(JSON.parse(a.body).usage.completion_tokens).toBe(20);
    expect(await day(g)).toEqual({ used: 2 * (prompt + 20), reserved: 0 });
  });

  it("past the grace period, what is left is cut as a client disconnect and settled once", async () => {
    // A stream of 30 chunks 50 ms apart (1.5 s), and a whole answer that never comes (stall).
    const {
      gw: g,
      mock: m,
      port,
    } = await start({ completionTokens: 60, chunkTokens: 2, chunkDelayMs: 50 }, 300);
    const stalled = rawRequest(port, chatRequest({}, "x-mock-fault: stall\r\n"));
    const stream = rawRequest(port, chatRequest({ stream: true }));
    await waitUntil(
      () => m.upstream.ledger().records.filter((r) => r.status === "open").length === 2,
      "both calls upstream",
    );
    await new Promise((r) => setTimeout(r, 150)); // a few chunks have passed

    const started = Date.now();
    await Promise.race([g.close(), new Promise((r) => setTimeout(r, 5000))]);
    const took = Date.now() - started;
    expect(took).toBeGreaterThanOrEqual(250);
    expect(took).toBeLessThan(2000);

    const [st, s] = await Promise.all([stalled.done, stream.done]);
    expect(st).toBe(""); // cut before any answer
    expect(splitResponse(s).status).toBe(200);
    expect(s).not.toContain("data: [DONE]");

    const records = m.upstream.ledger().records;
    expect(records.map((r) => r.status)).toEqual(["aborted", "aborted"]);
    const streamed = records.find((r) => r.stream)?.completionTokens ?? 0;
    expect(streamed).toBeGreaterThan(0);
    expect(streamed).toBeLessThan(60);
    // One settlement each, as a client that left: the stall its input (the provider had the prompt),
    // the stream its input and what passed.
    const after = await settlements(g);
    expect(after).toMatchObject({ settled: 2, other: 0, input: 2 * prompt });
    expect(after.output).toBeGreaterThan(0);
    expect(after.output).toBeLessThanOrEqual(streamed);
    expect(await day(g)).toEqual({ used: 2 * prompt + after.output, reserved: 0 });
  });

  it("an answer already ended but still queued for a slow reader is delivered whole, not cut", async () => {
    const content = "x".repeat(20_000_000); // more than the socket buffers hold
    const answer = JSON.stringify({
      id: "c1",
      object: "chat.completion",
      choices: [{ index: 0, message: { role: "assistant", content }, finish_reason: "stop" }],
      usage: { prompt_tokens: prompt, completion_tokens: 10 },
    });
    const config = loadConfig(
      {
        upstreams: { fake: { type: "openai", base_url: "http://127.0.0.1:9/v1", timeout_ms: 10_000 } },
        features: { chat: { model: "gpt-4o", max_input: 1000, max_output: 100, on_exceed: "trim" } },
        tiers: { free: { daily_tokens: 1_000_000 } },
        default_tier: "free",
      },
      {},
    );
    const upstreams = new Map<string, UpstreamClient>([
      [
        "fake",
        {
          name: "fake",
          type: "fake",
          timeoutMs: 10_000,
          async send() {
            return {
              status: 200,
              headers: { "content-type": "application/json" },
              body: (async function* () {
                yield answer;
              })(),
              text: async () => answer,
            };
          },
          async close() {},
        },
      ],
    ]);
    const g = createGateway({
      config,
      store: createMemoryStore(),
      logger: silentLogger,
      upstreams,
      shutdownGraceMs: 5000,
    });
    gw = g;
    const port = await g.listen(0);
    const sock = connect({ host: "127.0.0.1", port });
    sock.on("error", () => {});
    let received = 0;
    sock.on("data", (d) => {
      received += d.length;
    });
    const sockClosed = new Promise((r) => sock.on("close", r));
    sock.write(chatRequest({}));
    sock.pause(); // a slow reader: reads nothing until the stop has begun
    // Answered: settled (charged), then written at once, and the handler has returned.
    const deadline = Date.now() + 5000;
    while ((await day(g)).used === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    expect(await day(g)).toEqual({ used: prompt + 10, reserved: 0 });
    await new Promise((r) => setTimeout(r, 50));
    const closing = g.close();
    await new Promise((r) => setTimeout(r, 200));
    sock.resume();
    await Promise.race([sockClosed, new Promise((r) => setTimeout(r, 5000))]);
    await closing;
    expect(received).toBeGreaterThan(Buffer.byteLength(answer));
    expect(received).toBeLessThan(Buffer.byteLength(answer) + 2000); // the body and its headers
  });

  it("close() with nothing in flight closes the idle keep-alive connections (and those that sent nothing) and resolves at once; twice is the same stop", async () => {
    const { gw: g, port } = await start({}, 5000);
    // A kept-alive connection, idle after its answer.
    const idle = connect({ host: "127.0.0.1", port });
    idle.on("error", () => {});
    let answer = "";
    const answered = new Promise<void>((resolve) =>
      idle.on("data", (d) => {
        answer += d.toString("utf8");
        if (answer.includes('"ready"')) resolve();
      }),
    );
    const idleClosed = new Promise((r) => idle.on("close", r));
    // A connection that has sent nothing yet (a preconnect, a TCP probe).
    const silent = connect({ host: "127.0.0.1", port });
    silent.on("error", () => {});
    const silentClosed = new Promise((r) => silent.on("close", r));
    await new Promise((r) => silent.on("connect", r));
    idle.write("GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n");
    await answered;
    expect(answer).toMatch(/^HTTP\/1\.1 200/);
    const started = Date.now();
    const a = g.close();
    expect(g.close()).toBe(a);
    await Promise.race([a, new Promise((r) => setTimeout(r, 3000))]);
    await Promise.race([idleClosed, new Promise((r) => setTimeout(r, 3000))]);
    await Promise.race([silentClosed, new Promise((r) => setTimeout(r, 3000))]);
    expect(idle.destroyed).toBe(true);
    expect(silent.destroyed).toBe(true);
    expect(Date.now() - started).toBeLessThan(1000);
  });
});

describe("tokenfuse serve: SIGTERM", () => {
  const dir = mkdtempSync(join(tmpdir(), "tf-shutdown-"));

  function serve(latencyMs: number, extra: Record<string, unknown> = {}) {
    const configPath = join(dir, `${randomUUID()}.json`);
    writeFileSync(
      configPath,
      JSON.stringify({
        upstreams: { local: { type: "mock", latency_ms: latencyMs, completion_tokens: 20 } },
        features: { chat: { model: "gpt-4o", max_input: 1000, max_output: 100, on_exceed: "trim" } },
        ...extra,
      }),
    );
    const child = spawn(
      process.execPath,
      ["bin/tokenfuse.js", "serve", "--config", configPath, "--port", "0"],
      {
        env: { ...process.env, TOKENFUSE_LOG_LEVEL: "error" },
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", () => {});
    const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) =>
      child.on("exit", (code, signal) => resolve({ code, signal })),
    );
    const port = new Promise<number>((resolve, reject) => {
      const timer = setInterval(() => {
        const m = /gateway on http:\/\/127\.0\.0\.1:(\d+)/.exec(out);
        if (m?.[1]) {
          clearInterval(timer);
          resolve(Number(m[1]));
        }
      }, 20);
      exited.then(() => {
        clearInterval(timer);
        reject(new Error(`exited before listening: ${out}`));
      });
    });
    return { child, exited, port };
  }

  it("the calls in flight (the mock's latency) are answered whole, then the process exits 0", async () => {
    const p = serve(800);
    try {
      const port = await p.port;
      const whole = rawRequest(port, chatRequest({}));
      const stream = rawRequest(port, chatRequest({ stream: true }));
      await new Promise((r) => setTimeout(r, 300)); // both wait for the mock
      p.child.kill("SIGTERM");
      const [w, s] = await Promise.all([whole.done, stream.done]);
      expect(splitResponse(w).status).toBe(200);
      expect(JSON.parse(splitResponse(w).body)).toMatchObject({ usage: { completion_tokens: 20 } });
      expect(splitResponse(s).status).toBe(200);
      expect(s).toContain("data: [DONE]");
      expect(
        await Promise.race([p.exited, new Promise((r) => setTimeout(() => r("still running"), 5000))]),
      ).toEqual({
        code: 0,
        signal: null,
      });
    } finally {
      p.child.kill("SIGKILL");
    }
  });

  it("a SIGHUP while draining (logrotate) reopens the usage log and does not end the process", async () => {
    const log = join(dir, `${randomUUID()}.jsonl`);
    const p = serve(800, { usage_log: { path: log } });
    try {
      const port = await p.port;
      const whole = rawRequest(port, chatRequest({}));
      await new Promise((r) => setTimeout(r, 300)); // waits for the mock
      p.child.kill("SIGTERM");
      await new Promise((r) => setTimeout(r, 200));
      p.child.kill("SIGHUP");
      const w = await whole.done;
      expect(splitResponse(w).status).toBe(200);
      expect(
        await Promise.race([p.exited, new Promise((r) => setTimeout(() => r("still running"), 5000))]),
      ).toEqual({ code: 0, signal: null });
      const lines = readFileSync(log, "utf8")
        .trimEnd()
        .split("\n")
        .map((l) => JSON.parse(l));
      expect(lines.map((l) => l.type)).toEqual(["decision", "settle"]);
    } finally {
      p.child.kill("SIGKILL");
    }
  });

  it("a second signal while draining ends the process at once", async () => {
    const p = serve(0);
    try {
      const port = await p.port;
      const stalled = rawRequest(port, chatRequest({}, "x-mock-fault: stall\r\n"));
      await new Promise((r) => setTimeout(r, 300));
      p.child.kill("SIGTERM");
      await new Promise((r) => setTimeout(r, 300));
      p.child.kill("SIGTERM");
      expect(
        await Promise.race([p.exited, new Promise((r) => setTimeout(() => r("still running"), 3000))]),
      ).toEqual({
        code: null,
        signal: "SIGTERM",
      });
      await stalled.done;
    } finally {
      p.child.kill("SIGKILL");
    }
  });
});
