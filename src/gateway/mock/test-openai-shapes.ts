/**
 * Test helper: the OpenAI chat-completions shapes as a client sees them, and checks on them, written
 * independently of the mock's own serialiser so that tests compare against OpenAI's format.
 */

import { expect } from "vitest";
import type { OpenAIUsage } from "../../core/types.js";
import type { SseEvent } from "./test-sse-parse.js";

/** A streamed chunk as parsed by a client. */
export interface TestChunk {
  id: string;
  object: string;
  created: number;
  model: string;
  system_fingerprint: string;
  choices: {
    index: number;
    delta: { role?: string; content?: string | null; tool_calls?: { function?: { arguments?: string } }[] };
    logprobs: null;
    finish_reason: string | null;
  }[];
  usage?: OpenAIUsage | null;
}

/** A non-streamed completion as parsed by a client. */
export interface TestCompletion {
  id: string;
  object: string;
  created: number;
  model: string;
  choices: { index: number; message: { role: string; content: string }; finish_reason: string }[];
  usage?: OpenAIUsage;
  system_fingerprint: string;
}

/** The keys of an OpenAI error envelope, in OpenAI's order. */
export const ERROR_KEYS = ["message", "type", "param", "code"];

/** Parses a stream's events: its chunks, and whether it ended with `data: [DONE]` (and nothing after). */
export function chunksOf(events: readonly SseEvent[]): { chunks: TestChunk[]; done: boolean } {
  const last = events.at(-1);
  const done = last?.data === "[DONE]";
  const body = done ? events.slice(0, -1) : events;
  for (const e of body) expect(e.data).not.toBe("[DONE]");
  return { chunks: body.map((e) => JSON.parse(e.data) as TestChunk), done };
}

/** The streamed content of each choice, concatenated in order. */
export function contentByChoice(chunks: readonly TestChunk[]): string[] {
  const out: string[] = [];
  for (const c of chunks) {
    for (const choice of c.choices)
      out[choice.index] = (out[choice.index] ?? "") + (choice.delta.content ?? "");
  }
  return out;
}

/** The chunk with usage (choices empty), if any. */
export function usageChunk(chunks: readonly TestChunk[]): TestChunk | undefined {
  return chunks.find((c) => c.usage !== undefined && c.usage !== null);
}

/**
 * A value's structure: objects become [key, shape] pairs in key order, arrays their elements'
 * shapes, leaves their type ("null" for null). Two chunks with equal shapes have the same fields
 * in the same order, whatever their values.
 */
export function keyShape(value: unknown): unknown {
  if (value === null) return "null";
  if (Array.isArray(value)) return value.map(keyShape);
  if (typeof value === "object") return Object.entries(value).map(([k, v]) => [k, keyShape(v)]);
  return typeof value;
}

/** Checks a chunk's top-level field order against OpenAI's. */
export function expectChunkFieldOrder(chunk: TestChunk, withUsage: boolean): void {
  const keys = ["id", "object", "created", "model", "system_fingerprint", "choices"];
  expect(Object.keys(chunk)).toEqual(withUsage ? [...keys, "usage"] : keys);
  expect(chunk.object).toBe("chat.completion.chunk");
}
