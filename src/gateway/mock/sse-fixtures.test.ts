import { describe, expect, it } from "vitest";
import type { ChatMessage, ToolDefinition } from "../../core/types.js";
import { tokenizerForModel } from "../../tokenizers/index.js";
import { isStreamResponse } from "./mock-response.js";
import { createMockUpstream } from "./mock-upstream.js";
import {
  chunksOf,
  contentByChoice,
  expectChunkFieldOrder,
  keyShape,
  type TestChunk,
  usageChunk,
} from "./test-openai-shapes.js";
import { loadSseFixture, SSE_FIXTURE_NAMES, type SseFixtureName } from "./test-sse-fixtures.js";
import { createSseParser, parseSse } from "./test-sse-parse.js";

interface FixtureRequest {
  model: string;
  messages: ChatMessage[];
  tools?: ToolDefinition[];
  n?: number;
  stream_options?: { include_usage?: boolean };
}

function fixture(name: SseFixtureName) {
  const f = loadSseFixture(name);
  return { ...f, request: f.request as unknown as FixtureRequest, ...chunksOf(f.events) };
}

/** Streams `request` through a fresh mock and parses what it sends. */
async function mockStream(request: FixtureRequest) {
  const upstream = createMockUpstream({ completionTokens: 6, chunkTokens: 2 });
  const response = await upstream.handle({
    body: { ...request, stream: true },
    headers: {},
    signal: new AbortController().signal,
  });
  if (!isStreamResponse(response)) throw new Error("expected a stream");
  let text = "";
  for await (const piece of response.stream) text += piece;
  return chunksOf(parseSse(text)).chunks;
}

/** The chunks of a stream by role: first chunk, a content chunk, a finish chunk, the usage chunk. */
function byKind(chunks: readonly TestChunk[]) {
  const choiceChunks = chunks.filter((c) => c.choices.length === 1);
  return {
    role: choiceChunks.find((c) => c.choices[0]?.delta.role !== undefined),
    content: choiceChunks.find(
      (c) => c.choices[0]?.delta.role === undefined && typeof c.choices[0]?.delta.content === "string",
    ),
    finish: choiceChunks.find((c) => c.choices[0]?.finish_reason !== null),
    usage: usageChunk(chunks),
  };
}

describe("recorded SSE fixtures", { timeout: 10_000 }, () => {
  it.each(SSE_FIXTURE_NAMES)("%s is an OpenAI stream in the exact wire format", (name) => {
    const f = fixture(name);
    expect(f.done).toBe(true);
    expect(f.wireChunks.join("")).toBe(f.text);
    expect(f.text).toMatch(/^(data: [^\n]+\n\n)+$/);
    const withUsage = f.request.stream_options?.include_usage === true;
    const ids = new Set(f.chunks.map((c) => c.id));
    expect(ids.size).toBe(1);
    for (const c of f.chunks) expectChunkFieldOrder(c, withUsage);
    for (const c of f.chunks) if (c !== usageChunk(f.chunks)) expect(c.usage ?? null).toBeNull();
    const usage = usageChunk(f.chunks);
    if (withUsage) {
      expect(usage?.choices).toEqual([]);
      expect(f.chunks.at(-1)).toBe(usage);
    } else {
      expect(usage).toBeUndefined();
    }
  });

  it.each(["usage", "no-usage", "n2"] as const)("%s: its text and usage agree with the tokenizer", (name) => {
    const f = fixture(name);
    const tokenizer = tokenizerForModel(f.request.model);
    const texts = contentByChoice(f.chunks);
    expect(texts).toHaveLength(f.request.n ?? 1);
    const usage = usageChunk(f.chunks)?.usage;
    if (name === "no-usage") return expect(usage).toBeUndefined();
    expect(usage?.prompt_tokens).toBe(tokenizer.countChat(f.request.messages, f.request.tools));
    expect(usage?.completion_tokens).toBe(texts.reduce((s, t) => s + tokenizer.countText(t), 0));
    expect(usage?.total_tokens).toBe((usage?.prompt_tokens ?? 0) + (usage?.completion_tokens ?? 0));
  });

  it("tool-call: the argument deltas concatenate to the call's JSON", () => {
    const f = fixture("tool-call");
    const args = f.chunks
      .flatMap((c) => c.choices.flatMap((x) => x.delta.tool_calls ?? []))
      .map((t) => t.function?.arguments ?? "")
      .join("");
    expect(JSON.parse(args)).toEqual({ city: "Paris" });
    expect(byKind(f.chunks).finish?.choices[0]?.finish_reason).toBe("tool_calls");
  });

  it("n2: the choices interleave, each with its own role and finish chunk", () => {
    const f = fixture("n2");
    const { chunks } = f;
    expect(
      chunks.filter((c) => c.choices[0]?.delta.role === "assistant").map((c) => c.choices[0]?.index),
    ).toEqual([0, 1]);
    expect(
      chunks.filter((c) => c.choices[0]?.finish_reason === "stop").map((c) => c.choices[0]?.index),
    ).toEqual([0, 1]);
  });

  it("parses the same events whatever the stream's cut into", () => {
    for (const name of SSE_FIXTURE_NAMES) {
      const f = loadSseFixture(name);
      for (const size of [1, 7, 64, 1000]) {
        const parser = createSseParser();
        const events = [];
        for (let i = 0; i < f.text.length; i += size) events.push(...parser.push(f.text.slice(i, i + size)));
        expect(events).toEqual(f.events);
        expect(parser.incomplete).toBe(false);
      }
    }
  });
});

describe("the mock's streams have the fixtures' structure", { timeout: 10_000 }, () => {
  it.each(["usage", "no-usage", "n2"] as const)(
    "%s: same chunk kinds, same fields in the same order",
    async (name) => {
      const f = fixture(name);
      const mine = byKind(await mockStream(f.request));
      const theirs = byKind(f.chunks);
      for (const kind of ["role", "content", "finish", "usage"] as const) {
        expect(keyShape(mine[kind]), kind).toEqual(keyShape(theirs[kind]));
      }
      const ours = await mockStream(f.request);
      expect(ours.filter((c) => c.choices[0]?.delta.role).length).toBe(f.request.n ?? 1);
    },
  );
});
