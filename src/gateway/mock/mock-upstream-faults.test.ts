import { describe, expect, it } from "vitest";
import { tokenizerForModel } from "../../tokenizers/index.js";
import { MockStreamResetError } from "./mock-response.js";
import { asBody, asStream, call, completion, drain, MESSAGES, mock, streamed } from "./test-mock-calls.js";
import { chunksOf, contentByChoice, ERROR_KEYS } from "./test-openai-shapes.js";
import { parseSse } from "./test-sse-parse.js";

describe("mock upstream, faults and ledger", { timeout: 10_000 }, () => {
  const body = { model: "gpt-4o", messages: MESSAGES };

  it.each([
    ["500", 500, "server_error", null],
    ["429", 429, "requests", "rate_limit_exceeded"],
  ])("answers the %s fault with OpenAI's error and no tokens", async (fault, status, type, code) => {
    const upstream = mock();
    const response = asBody(await call(upstream, { ...body, stream: true }, { "x-mock-fault": fault }));
    expect(response.status).toBe(status);
    const parsed = JSON.parse(response.body) as { error: Record<string, unknown> };
    expect(Object.keys(parsed.error)).toEqual(ERROR_KEYS);
    expect(parsed.error).toMatchObject({ type, code, param: null });
    if (fault === "429") expect(response.headers["retry-after"]).toBe("1");
    const { totals, records } = upstream.ledger();
    expect(totals).toMatchObject({ requests: 1, open: 0, promptTokens: 0, completionTokens: 0 });
    expect(records[0]).toMatchObject({ status: "error", fault, promptTokens: 0, completionTokens: 0 });
  });

  it("keeps totals and per-request records, and starts afresh on resetLedger", async () => {
    const upstream = mock({ completionTokens: 10 });
    const prompt = tokenizerForModel("gpt-4o").countChat(MESSAGES);
    await completion(upstream, { ...body, n: 2 });
    await streamed(upstream, body);
    const { totals, records } = upstream.ledger();
    expect(totals).toEqual({
      requests: 2,
      open: 0,
      promptTokens: 2 * prompt,
      completionTokens: 30,
      totalTokens: 2 * prompt + 30,
    });
    expect(records).toEqual([
      {
        id: "chatcmpl-mock-1",
        model: "gpt-4o",
        stream: false,
        n: 2,
        fault: undefined,
        promptTokens: prompt,
        completionTokens: 20,
        status: "completed",
      },
      {
        id: "chatcmpl-mock-2",
        model: "gpt-4o",
        stream: true,
        n: 1,
        fault: undefined,
        promptTokens: prompt,
        completionTokens: 10,
        status: "completed",
      },
    ]);
    upstream.resetLedger();
    expect(upstream.ledger()).toEqual({
      totals: { requests: 0, open: 0, promptTokens: 0, completionTokens: 0, totalTokens: 0 },
      records: [],
    });
  });

  it("records only the chunks emitted when a stream is aborted", async () => {
    const upstream = mock({ completionTokens: 50, chunkTokens: 5 });
    const controller = new AbortController();
    const response = asStream(await call(upstream, { ...body, stream: true }, {}, controller.signal));
    const iterator = response.stream[Symbol.asyncIterator]();
    const received: string[] = [];
    for (let i = 0; i < 4; i++) {
      const next = await iterator.next();
      if (!next.done) received.push(next.value);
    }
    expect(upstream.ledger().totals.open).toBe(1);
    const reason = new Error("client went away");
    controller.abort(reason);
    await expect(iterator.next()).rejects.toBe(reason);
    // role chunk + 3 content chunks of 5 tokens
    const content = contentByChoice(chunksOf(parseSse(received.join(""))).chunks)[0] ?? "";
    expect(tokenizerForModel("gpt-4o").countText(content)).toBe(15);
    const { totals, records } = upstream.ledger();
    expect(totals).toMatchObject({ open: 0, completionTokens: 15 });
    expect(records[0]).toMatchObject({ status: "aborted", completionTokens: 15 });
  });

  it("records what was emitted when the consumer stops reading", async () => {
    const upstream = mock({ completionTokens: 50, chunkTokens: 10 });
    const response = asStream(await call(upstream, { ...body, stream: true }));
    let n = 0;
    for await (const _ of response.stream) if (++n === 3) break;
    expect(upstream.ledger().records[0]).toMatchObject({ status: "aborted", completionTokens: 20 });
  });

  it("aborted during latency: rejects with the reason, records the prompt and no completion", async () => {
    const upstream = mock({ latencyMs: 60_000 });
    const controller = new AbortController();
    const pending = call(upstream, body, {}, controller.signal);
    controller.abort(new Error("timeout"));
    await expect(pending).rejects.toThrow("timeout");
    expect(upstream.ledger().records[0]).toMatchObject({ status: "aborted", completionTokens: 0 });
    expect(upstream.ledger().totals.promptTokens).toBeGreaterThan(0);
  });

  it("stall: never answers until the signal aborts", async () => {
    const upstream = mock();
    const controller = new AbortController();
    let settled = false;
    const pending = call(upstream, body, { "x-mock-fault": "stall" }, controller.signal).finally(() => {
      settled = true;
    });
    await new Promise((r) => setTimeout(r, 50));
    expect(settled).toBe(false);
    controller.abort(new Error("gave up"));
    await expect(pending).rejects.toThrow("gave up");
    expect(upstream.ledger().records[0]).toMatchObject({
      status: "aborted",
      fault: "stall",
      completionTokens: 0,
    });
  });

  it("reset-mid-stream: emits half the content, then the iterator throws MockStreamResetError", async () => {
    const upstream = mock({ completionTokens: 40, chunkTokens: 5 });
    const response = asStream(
      await call(upstream, { ...body, stream: true }, { "x-mock-fault": "reset-mid-stream" }),
    );
    let text = "";
    const error = await (async () => {
      try {
        for await (const piece of response.stream) text += piece;
      } catch (caught) {
        return caught;
      }
      return undefined;
    })();
    expect(error).toBeInstanceOf(MockStreamResetError);
    const { chunks, done } = chunksOf(parseSse(text));
    expect(done).toBe(false);
    expect(chunks).toHaveLength(5); // role + 4 of 8 content chunks
    expect(upstream.ledger().records[0]).toMatchObject({ status: "reset", completionTokens: 20 });
  });

  it("x-mock-fault-after-chunks chooses where the mid-stream fault fires", async () => {
    const upstream = mock({ completionTokens: 40, chunkTokens: 5 });
    const headers = { "x-mock-fault": "reset-mid-stream", "x-mock-fault-after-chunks": "1" };
    const response = asStream(await call(upstream, { ...body, stream: true }, headers));
    await expect(drain(response.stream)).rejects.toBeInstanceOf(MockStreamResetError);
    expect(upstream.ledger().records[0]).toMatchObject({ status: "reset", completionTokens: 5 });
  });

  it("stall-mid-stream: emits half the content, then waits for the abort", async () => {
    const upstream = mock({ completionTokens: 20, chunkTokens: 5 });
    const controller = new AbortController();
    const headers = { "x-mock-fault": "stall-mid-stream" };
    const response = asStream(await call(upstream, { ...body, stream: true }, headers, controller.signal));
    const iterator = response.stream[Symbol.asyncIterator]();
    for (let i = 0; i < 3; i++) expect((await iterator.next()).done).toBe(false); // role + 2 content
    let settled = false;
    const next = iterator.next().finally(() => {
      settled = true;
    });
    await new Promise((r) => setTimeout(r, 50));
    expect(settled).toBe(false);
    controller.abort(new Error("idle timeout"));
    await expect(next).rejects.toThrow("idle timeout");
    expect(upstream.ledger().records[0]).toMatchObject({ status: "aborted", completionTokens: 10 });
  });

  it("cuts a non-streamed body under reset-mid-stream, having generated it whole", async () => {
    const upstream = mock({ completionTokens: 10 });
    const response = asStream(await call(upstream, body, { "x-mock-fault": "reset-mid-stream" }));
    expect(response.headers["content-type"]).toBe("application/json");
    let text = "";
    await expect(
      (async () => {
        for await (const piece of response.stream) text += piece;
      })(),
    ).rejects.toBeInstanceOf(MockStreamResetError);
    expect(text.startsWith('{"id":"chatcmpl-mock-1"')).toBe(true);
    expect(() => JSON.parse(text)).toThrow();
    expect(upstream.ledger().records[0]).toMatchObject({ status: "reset", completionTokens: 10 });
  });

  it("a request in flight across resetLedger updates only the old ledger", async () => {
    const upstream = mock({ completionTokens: 10, chunkTokens: 5 });
    const response = asStream(await call(upstream, { ...body, stream: true }));
    upstream.resetLedger();
    await drain(response.stream);
    expect(upstream.ledger().totals).toMatchObject({ requests: 0, completionTokens: 0 });
  });

  it("bounds the per-request records, never the totals", async () => {
    const upstream = mock({ completionTokens: 1, ledgerMaxRecords: 3 });
    for (let i = 0; i < 5; i++) await completion(upstream, body);
    const { totals, records } = upstream.ledger();
    expect(totals).toMatchObject({ requests: 5, completionTokens: 5 });
    expect(records.map((r) => r.id)).toEqual(["chatcmpl-mock-3", "chatcmpl-mock-4", "chatcmpl-mock-5"]);
  });
});
