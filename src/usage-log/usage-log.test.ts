import { randomUUID } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, renameSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { isConfigError } from "../config/config-error.js";
import { loadConfig } from "../config/load.js";
import type { DecisionEvent, SettleEvent } from "../core/engine.js";
import { isTokenBudgetError } from "../core/errors.js";
import { silentLogger } from "../core/logger.js";
import type { ChatMessage } from "../core/types.js";
import { createMemoryStore } from "../stores/memory-store.js";
import { createTokenfuse } from "../tokenfuse.js";
import { getChatTokenizer } from "../tokenizers/index.js";
import { decisionLine, decisionRecord, isoTime, settleLine, settleRecord } from "./record.js";
import { openUsageLog, unwritten } from "./writer.js";

const tok = getChatTokenizer("o200k_base");
const dir = mkdtempSync(join(tmpdir(), "tf-usage-log-"));
const T0 = Date.parse("2026-11-24T12:00:00.000Z");

function logPath(): string {
  return join(dir, `${randomUUID()}.jsonl`);
}

function readLines(path: string): Record<string, unknown>[] {
  const text = readFileSync(path, "utf8");
  expect(text.endsWith("\n") || text === "").toBe(true);
  return text
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => JSON.parse(l));
}

/** A logger that keeps what it is given. */
function recordingLogger() {
  const lines: Array<{ level: string; obj: object; msg?: string | undefined }> = [];
  const at =
      (level: string) =>
      (obj: object, msg?: string): void =>
        void lines.push({ level, obj, msg }),
    logger = { info: at("info"), warn: at("warn"), error: at("error") };
  return { logger, lines };
}

const config = (path: string) => ({
  usage_log: { path },
  features: {
    chat: { model: "gpt-4o", max_input: 120, max_output: 100, on_exceed: "trim" },
    strict: { model: "gpt-4o-mini", max_input: 60, max_output: 50, on_exceed: "reject" },
  },
  tiers: { free: { daily_tokens: 10_000 }, tiny: { daily_tokens: 300 } },
  default_tier: "free",
  prices: { "gpt-4o": { input: 2.5, output: 10, cached_input: 1.25 } },
});

const words = (n: number, seed: string) => Array.from({ length: n }, (_, i) => `${seed}${i}`).join(" ");

describe("usage log from the library", () => {
  it("writes exactly one decision line per admit and one settlement line per settle, with exact numbers", async () => {
    const path = logPath();
    let now = T0;
    const tf = createTokenfuse({
      config: config(path),
      clock: { nowMs: () => now },
      logger: silentLogger,
      store: createMemoryStore(),
    });
    // 1. allow, settled with cached and reasoning tokens.
    const m1: ChatMessage[] = [
      { role: "system", content: "Be brief." },
      { role: "user", content: "What is a token?" },
    ];
    const a1 = await tf.admit({ feature: "chat", user: "ana", messages: m1, maxTokens: 40 });
    now += 250;
    const usage = {
      prompt_tokens: a1.inputTokens,
      completion_tokens: 30,
      prompt_tokens_details: { cached_tokens: 8 },
      completion_tokens_details: { reasoning_tokens: 5 },
    };
    const s1 = await a1.settle(usage);
    await a1.settle(usage); // a second call is a duplicate: no second line
    // 2. trim: a history over max_input (120).
    const m2: ChatMessage[] = [
      { role: "system", content: "Be brief." },
      { role: "user", content: words(60, "old") },
      { role: "assistant", content: words(80, "reply") },
      { role: "user", content: "And now?" },
    ];
    now += 1000;
    const a2 = await tf.admit({ feature: "chat", user: "ana", messages: m2, requestId: "req-7" });
    expect(a2.decision).toBe("trim");
    now += 10;
    await a2.settle(
      { prompt_tokens: a2.inputTokens, completion_tokens: 3 },
      { estimated: "no usage reported" },
    );
    // 3. the same requestId again: a new admission with its own id; released (no usage).
    const a3 = await tf.admit({ feature: "chat", user: "ana", messages: m1, requestId: "req-7" });
    await a3.settle();
    // 4. refused by the input policy (on_exceed: reject), counted.
    const m4: ChatMessage[] = [{ role: "user", content: words(80, "w") }];
    await expect(tf.admit({ feature: "strict", user: "ana", messages: m4 })).rejects.toMatchObject({
      code: "input_budget_exceeded",
    });
    // 5. refused by the user's daily budget (tier tiny: 300), after counting.
    await expect(
      tf.admit({ feature: "chat", user: "bo", tier: "tiny", messages: m1, maxTokens: 100, n: 3 }),
    ).rejects.toMatchObject({ code: "user_budget_exceeded" });
    // 6. refused before counting (unknown feature): identity fields only, model null.
    await expect(
      tf.admit({ feature: "nope", user: "ana", messages: m1, model: "my-model" }),
    ).rejects.toMatchObject({ code: "unknown_feature" });
    await tf.close();

    const lines = readLines(path);
    expect(lines.map((l) => `${l.type}:${l.decision ?? l.status}`)).toEqual([
      "decision:allow",
      "settle:settled",
      "decision:trim",
      "settle:settled",
      "decision:allow",
      "settle:settled",
      "decision:reject",
      "decision:reject",
      "decision:reject",
    ]);
    const in1 = tok.countChat(m1);
    expect(lines[0]).toEqual({
      v: 1,
      type: "decision",
      time: "2026-11-24T12:00:00.000Z",
      time_ms: T0,
      id: a1.id,
      feature: "chat",
      user: "ana",
      tier: "free",
      model: "gpt-4o",
      decision: "allow",
      code: null,
      store: "ok",
      messages: 2,
      input_tokens_before: in1,
      input_tokens: in1,
      max_input: 120,
      trimmed_messages: 0,
      truncated_messages: 0,
      summarized: false,
      max_output_requested: 40,
      max_output: 40,
      n: 1,
      reserved_tokens: in1 + 40,
    });
    // Cost by hand: 2.5 / 1.25 / 10 USD per 1M tokens = 2.5 / 1.25 / 10 million pico-USD per token.
    const cost = Math.ceil(((in1 - 8) * 2_500_000 + 8 * 1_250_000 + 30 * 10_000_000) / 1000);
    expect(s1.costNanoUsd).toBe(cost);
    expect(lines[1]).toEqual({
      v: 1,
      type: "settle",
      time: "2026-11-24T12:00:00.250Z",
      time_ms: T0 + 250,
      id: a1.id,
      feature: "chat",
      user: "ana",
      tier: "free",
      model: "gpt-4o",
      status: "settled",
      usage_source: "provider",
      input_tokens: in1,
      output_tokens: 30,
      cached_input_tokens: 8,
      reasoning_tokens: 5,
      charged_tokens: in1 + 30,
      cost_nano_usd: cost,
    });
    // The trim: what came in, what no trimming can drop, what was sent.
    const kept = [m2[0], m2[3]] as ChatMessage[];
    expect(a2.messages).toEqual(kept);
    expect(lines[2]).toMatchObject({
      id: expect.not.stringMatching(/^req-7$/),
      request_id: "req-7",
      decision: "trim",
      messages: 4,
      input_tokens_before: tok.countChat(m2),
      input_tokens_floor: tok.countChat(kept),
      input_tokens: tok.countChat(kept),
      trimmed_messages: 2,
      max_input: 120,
      max_output: 100,
      reserved_tokens: tok.countChat(kept) + 100,
    });
    expect(lines[2]).not.toHaveProperty("input_tokens_before_capped");
    expect(lines[3]).toMatchObject({
      id: lines[2]?.id,
      request_id: "req-7",
      usage_source: "estimate",
      estimate_reason: "no usage reported",
      input_tokens: tok.countChat(kept),
      output_tokens: 3,
      charged_tokens: tok.countChat(kept) + 3,
    });
    // Same requestId, new admission: a distinct id, paired with its own (released) settlement.
    expect(lines[4]?.id).not.toBe(lines[2]?.id);
    expect(lines[4]?.request_id).toBe("req-7");
    expect(lines[5]).toMatchObject({
      id: lines[4]?.id,
      usage_source: "none",
      input_tokens: 0,
      output_tokens: 0,
      charged_tokens: 0,
      cost_nano_usd: 0,
    });
    expect(lines[6]).toMatchObject({
      feature: "strict",
      model: "gpt-4o-mini",
      code: "input_budget_exceeded",
      input_tokens_before: tok.countChat(m4),
      input_tokens_floor: tok.countChat(m4),
      max_input: 60,
      max_output: 50,
      n: 1,
    });
    expect(lines[6]).not.toHaveProperty("input_tokens");
    expect(lines[6]).not.toHaveProperty("store");
    expect(lines[7]).toMatchObject({
      user: "bo",
      tier: "tiny",
      code: "user_budget_exceeded",
      input_tokens_before: in1,
      input_tokens: in1,
      max_output_requested: 100,
      max_output: 100,
      n: 3,
      reserved_tokens: in1 + 300,
    });
    expect(lines[8]).toEqual({
      v: 1,
      type: "decision",
      time: lines[8]?.time,
      time_ms: lines[8]?.time_ms,
      id: lines[8]?.id,
      feature: "nope",
      user: "ana",
      tier: "free",
      model: null,
      decision: "reject",
      code: "unknown_feature",
    });
  });

  it("an input larger than 4 × max_input is counted up to that bound and flagged", async () => {
    const path = logPath();
    const tf = createTokenfuse({ config: config(path), logger: silentLogger });
    const m: ChatMessage[] = [
      { role: "user", content: words(3000, "old") },
      { role: "assistant", content: "ok" },
      { role: "user", content: "short" },
    ];
    const a = await tf.admit({ feature: "chat", user: "ana", messages: m });
    await a.settle({ prompt_tokens: a.inputTokens, completion_tokens: 1 });
    await tf.close();
    const [d] = readLines(path);
    expect(d).toMatchObject({
      decision: "trim",
      input_tokens_before: 4 * 120 + 1,
      input_tokens_before_capped: true,
      input_tokens_floor: tok.countChat([m[2] as ChatMessage]),
      // The old question and its answer "ok" (which fits, but not without its question).
      trimmed_messages: 2,
    });
  });
});

describe("usage log: long histories", () => {
  it("a long history is counted up to 32 messages past what the policy counted, flagged as a lower bound", async () => {
    const path = logPath();
    const tf = createTokenfuse({ config: config(path), logger: silentLogger });
    const sys: ChatMessage = { role: "system", content: "Be brief." };
    const turns: ChatMessage[] = [];
    for (let i = 0; i < 100; i++) {
      turns.push({ role: "user", content: `question ${i}` }, { role: "assistant", content: `answer ${i}` });
    }
    turns.push({ role: "user", content: "last" });
    const a = await tf.admit({ feature: "chat", user: "ana", messages: [sys, ...turns] });
    await a.settle({ prompt_tokens: a.inputTokens, completion_tokens: 1 });
    await tf.close();
    const kept = a.messages.length - 1; // without the system message
    // The policy counted one reply more than it kept: the oldest message that fit was an answer,
    // dropped with its question (turns go whole, so what is kept starts with a question).
    expect(a.messages[1]?.role).toBe("user");
    const counted = [sys, ...turns.slice(-(kept + 1 + 32))];
    const [d] = readLines(path);
    expect(tok.countChat(counted)).toBeLessThan(tok.countChat([sys, ...turns]));
    expect(d).toMatchObject({
      decision: "trim",
      messages: 202,
      input_tokens_before: tok.countChat(counted),
      input_tokens_before_capped: true,
      input_tokens_floor: tok.countChat([sys, turns[200] as ChatMessage]),
      trimmed_messages: 201 - kept,
    });
  });
});

describe("usage log lines", () => {
  const base = loadConfig({}, {});
  const name = fc.oneof(
    fc.string({ maxLength: 40 }),
    fc.constantFrom("chat", "alice", "backend/end-user_1", 'quo"te', "back\\slash", "ünï", "x".repeat(300)),
  );
  const maybe = <T>(a: fc.Arbitrary<T>) => fc.option(a, { nil: undefined });
  const count = fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER });
  const decision = fc.record(
    {
      id: name,
      reservationId: maybe(name),
      requestId: maybe(name),
      atMs: fc.integer({ min: 0, max: 4_102_444_800_000 }),
      feature: name,
      user: name,
      tier: name,
      model: name,
      decision: fc.constantFrom("allow", "trim", "reject"),
      code: maybe(fc.constantFrom("user_budget_exceeded", "input_budget_exceeded")),
      storeStatus: maybe(fc.constantFrom("store_unavailable", "local")),
      messageCount: maybe(count),
      inputTokens: maybe(count),
      inputTokensBefore: maybe(count),
      inputTokensBeforeCapped: maybe(fc.boolean()),
      inputTokensFloor: maybe(count),
      reservedTokens: maybe(count),
      trimmedMessages: maybe(count),
      truncatedMessages: maybe(count),
      summarized: maybe(fc.boolean()),
      maxOutputTokens: maybe(count),
      requestedMaxOutputTokens: maybe(count),
      n: maybe(count),
      unpricedModel: maybe(name),
    },
    { requiredKeys: ["id", "atMs", "feature", "user", "tier", "model", "decision"] },
  ) as fc.Arbitrary<DecisionEvent>;
  const settle = fc.record(
    {
      id: name,
      reservationId: name,
      atMs: fc.integer({ min: 0, max: 4_102_444_800_000 }),
      feature: name,
      user: name,
      tier: name,
      model: name,
      status: fc.constantFrom("settled", "expired", "duplicate", "deferred"),
      chargedTokens: count,
      usage: maybe(
        fc.record({
          inputTokens: count,
          outputTokens: count,
          cachedInputTokens: count,
          reasoningTokens: count,
        }),
      ),
      usageEstimated: maybe(name),
      costNanoUsd: maybe(count),
    },
    {
      requiredKeys: [
        "id",
        "reservationId",
        "atMs",
        "feature",
        "user",
        "tier",
        "model",
        "status",
        "chargedTokens",
      ],
    },
  ) as fc.Arbitrary<SettleEvent>;

  it("the text built for speed is the record's JSON, one line, for any names", () => {
    fc.assert(
      fc.property(decision, (e) => {
        const line = decisionLine(e, base);
        expect(line.endsWith("\n")).toBe(true);
        expect(line.slice(0, -1)).not.toContain("\n");
        expect(JSON.parse(line)).toEqual(JSON.parse(JSON.stringify(decisionRecord(e, base))));
      }),
      { numRuns: 500 },
    );
    fc.assert(
      fc.property(settle, (e) => {
        const line = settleLine(e);
        expect(line.slice(0, -1)).not.toContain("\n");
        expect(JSON.parse(line)).toEqual(JSON.parse(JSON.stringify(settleRecord(e))));
      }),
      { numRuns: 500 },
    );
  });

  it("formats time as ISO with milliseconds, whatever the previous call", () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 4_102_444_800_000 }), { maxLength: 20 }), (times) => {
        for (const t of [...times, ...times.map((x) => x + 1)])
          expect(isoTime(t)).toBe(new Date(t).toISOString());
      }),
    );
  });

  it("cuts names longer than 256 characters", () => {
    const e = {
      id: "i",
      atMs: 0,
      feature: "f".repeat(1000),
      user: "u",
      tier: "t",
      model: "",
      decision: "reject",
    };
    const r = JSON.parse(decisionLine(e as DecisionEvent, base));
    expect(r.feature).toBe(`${"f".repeat(256)}…`);
    expect(r.model).toBeNull();
  });
});

describe("usage log writer", () => {
  const event = (i: number): SettleEvent => ({
    id: `id-${i}`,
    reservationId: `id-${i}`,
    atMs: T0 + i,
    feature: "chat",
    user: "ana",
    tier: "free",
    model: "gpt-4o",
    status: "settled",
    chargedTokens: i,
  });
  const cfg = loadConfig({}, {});

  it("a path that cannot be opened is a config error at start, naming the key but not the path", () => {
    for (const [path, why] of [
      [join(dir, "no-such-dir", "usage.jsonl"), "its directory does not exist (ENOENT)"],
      [dir, "it is a directory (EISDIR)"],
    ] as const) {
      let err: unknown;
      try {
        createTokenfuse({ config: config(path), logger: silentLogger });
      } catch (e) {
        err = e;
      }
      expect(isConfigError(err)).toBe(true);
      expect((err as Error).message).toBe(`usage_log.path: cannot open the usage log for appending: ${why}`);
      expect((err as Error).message).not.toContain(dir);
    }
    let relative: unknown;
    try {
      openUsageLog({ kind: "file", path: "no-such-dir-here/u.jsonl" }, cfg, { logger: silentLogger });
    } catch (e) {
      relative = e;
    }
    expect((relative as Error).message).toContain(
      `ENOENT); a relative path is resolved against the working directory, ${process.cwd()}`,
    );
  });

  it("flushes everything on close, even with a long flush interval", async () => {
    const path = logPath();
    const log = openUsageLog({ kind: "file", path }, cfg, {
      logger: silentLogger,
      flushIntervalMs: 3_600_000,
    });
    for (let i = 0; i < 5000; i++) log.events.settled(event(i));
    await log.close();
    const lines = readLines(path);
    expect(lines.map((l) => l.charged_tokens)).toEqual(Array.from({ length: 5000 }, (_, i) => i));
    expect(log.stats()).toEqual({
      writtenLines: 5000,
      writeErrors: 0,
      failedLines: 0,
      droppedLines: 0,
      closedLines: 0,
      errorLines: 0,
    });
    log.events.settled(event(9)); // after close: dropped and counted, never thrown
    expect(log.stats().closedLines).toBe(1);
  });

  it("writes on its own after the flush interval, without a flush call", async () => {
    const path = logPath();
    const log = openUsageLog({ kind: "file", path }, cfg, { logger: silentLogger, flushIntervalMs: 20 });
    log.events.settled(event(1));
    expect(readFileSync(path, "utf8")).toBe("");
    await new Promise((r) => setTimeout(r, 200));
    expect(readLines(path)).toHaveLength(1);
    await log.close();
  });

  it("a full buffer drops lines and counts them, logged once; memory stays bounded", async () => {
    const path = logPath();
    const { logger, lines } = recordingLogger();
    const one = settleLine(event(1)).length;
    const log = openUsageLog({ kind: "file", path }, cfg, {
      logger,
      chunkBytes: 1_000_000,
      maxBufferBytes: one * 10,
    });
    for (let i = 0; i < 25; i++) log.events.settled(event(i));
    await log.close();
    expect(readLines(path)).toHaveLength(10);
    expect(log.stats()).toMatchObject({ writtenLines: 10, droppedLines: 15 });
    expect(lines.filter((l) => l.level === "error")).toHaveLength(1);
  });

  it("a failing destination (a full disk: /dev/full) never throws; logged once, counted", async () => {
    if (!existsSync("/dev/full")) return;
    const { logger, lines } = recordingLogger();
    const log = openUsageLog({ kind: "file", path: "/dev/full" }, cfg, { logger, chunkBytes: 1 });
    for (let i = 0; i < 50; i++) {
      log.events.settled(event(i));
      await log.flush();
    }
    await log.close();
    const s = log.stats();
    expect(s.writtenLines).toBe(0);
    expect(s.failedLines).toBe(50);
    expect(s.writeErrors).toBe(50);
    const errors = lines.filter((l) => l.level === "error");
    expect(errors).toHaveLength(1);
    expect(errors[0]?.obj).toMatchObject({ destination: "/dev/full", code: "ENOSPC" });
  });

  it("the library keeps admitting while the usage log fails", async () => {
    if (!existsSync("/dev/full")) return;
    const { logger, lines } = recordingLogger();
    const tf = createTokenfuse({ config: config("/dev/full"), logger });
    for (let i = 0; i < 20; i++) {
      const a = await tf.admit({ feature: "chat", user: "ana", messages: [{ role: "user", content: "hi" }] });
      await a.settle({ prompt_tokens: a.inputTokens, completion_tokens: 1 });
    }
    await tf.close();
    expect(lines.filter((l) => l.level === "error" && l.msg?.startsWith("usage log"))).toHaveLength(1);
  });

  it("a partial write continues with exactly the bytes not written yet", () => {
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ minLength: 1, maxLength: 20 }), { maxLength: 6 }),
        fc.nat(200),
        (arrays, k) => {
          const bufs = arrays.map((a) => Buffer.from(a));
          const all = Buffer.concat(bufs);
          const n = Math.min(k, all.length);
          const left = unwritten(bufs, n);
          expect(Buffer.concat(left)).toEqual(all.subarray(n));
          expect(left.every((b) => b.length > 0)).toBe(true);
        },
      ),
    );
  });

  it("reopen() moves on to a new file at the same path (logrotate), losing nothing", async () => {
    const path = logPath();
    const log = openUsageLog({ kind: "file", path }, cfg, { logger: silentLogger });
    for (let i = 0; i < 100; i++) log.events.settled(event(i));
    log.reopen(); // a write may be in flight: the reopen waits for it
    renameSync(path, `${path}.1`);
    await log.flush();
    log.reopen();
    for (let i = 100; i < 150; i++) log.events.settled(event(i));
    await log.close();
    const before = readLines(`${path}.1`).map((l) => l.charged_tokens);
    const after = readLines(path).map((l) => l.charged_tokens);
    expect([...before, ...after]).toEqual(Array.from({ length: 150 }, (_, i) => i));
    expect(after).toEqual(Array.from({ length: 50 }, (_, i) => 100 + i));
  });

  it("a request refused as invalid is logged too, with the names as given", async () => {
    const path = logPath();
    const tf = createTokenfuse({ config: config(path), logger: silentLogger });
    const err = await tf
      .admit({ feature: "chat", user: "", messages: [{ role: "user", content: "x" }] })
      .catch((e: unknown) => e);
    expect(isTokenBudgetError(err)).toBe(true);
    await tf.close();
    expect(readLines(path)).toEqual([expect.objectContaining({ code: "invalid_request", user: "" })]);
  });
});
