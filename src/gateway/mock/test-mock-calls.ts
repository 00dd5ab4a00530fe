/**
 * Test helper: calling a mock upstream in process, with an injected clock and no real sleeping, and
 * reading its answers as a client would.
 */

import { expect } from "vitest";
import type { ChatMessage } from "../../core/types.js";
import {
  isStreamResponse,
  type MockBodyResponse,
  type MockResponse,
  type MockStreamResponse,
} from "./mock-response.js";
import { MOCK_WORDS } from "./mock-text.js";
import { createMockUpstream, type MockUpstream, type MockUpstreamOptions } from "./mock-upstream.js";
import { chunksOf, ERROR_KEYS, type TestCompletion } from "./test-openai-shapes.js";
import { parseSse } from "./test-sse-parse.js";

/** A small conversation every in-process test sends. */
export const MESSAGES: ChatMessage[] = [
  { role: "system", content: "You are a terse assistant." },
  { role: "user", content: "Count to three, please." },
];
/** The injected clock's time; `created` is its seconds. */
export const NOW_MS = 1_763_900_000_123;
const clock = { nowMs: () => NOW_MS };

/** A mock upstream on the fixed clock. */
export function mock(options: MockUpstreamOptions = {}): MockUpstream {
  return createMockUpstream({ clock, ...options });
}

/** Calls the mock in process. */
export function call(
  upstream: MockUpstream,
  body: unknown,
  headers: Record<string, string> = {},
  signal: AbortSignal = new AbortController().signal,
): Promise<MockResponse> {
  return upstream.handle({ body, headers, signal });
}

/** The response as a complete body (fails the test otherwise). */
export function asBody(response: MockResponse): MockBodyResponse {
  if (isStreamResponse(response)) throw new Error("expected a complete body");
  return response;
}

/** The response as a stream (fails the test otherwise). */
export function asStream(response: MockResponse): MockStreamResponse {
  if (!isStreamResponse(response)) throw new Error("expected a stream");
  return response;
}

/** A non-streamed completion, checked to be a 200 JSON answer, parsed. */
export async function completion(
  upstream: MockUpstream,
  body: Record<string, unknown>,
  headers: Record<string, string> = {},
) {
  const response = asBody(await call(upstream, body, headers));
  expect(response.status).toBe(200);
  expect(response.headers["content-type"]).toBe("application/json");
  return JSON.parse(response.body) as TestCompletion;
}

/** Everything a stream sends, concatenated. */
export async function drain(stream: AsyncIterable<string>): Promise<string> {
  let text = "";
  for await (const piece of stream) text += piece;
  return text;
}

/** A streamed completion, checked to be a 200 SSE answer: raw text, chunks, and whether it ended with [DONE]. */
export async function streamed(
  upstream: MockUpstream,
  body: Record<string, unknown>,
  headers: Record<string, string> = {},
) {
  const response = asStream(await call(upstream, { ...body, stream: true }, headers));
  expect(response.status).toBe(200);
  expect(response.headers["content-type"]).toBe("text/event-stream; charset=utf-8");
  const text = await drain(response.stream);
  return { text, ...chunksOf(parseSse(text)) };
}

/** Checks that `body` is refused with OpenAI's 400 envelope naming `param`. */
export async function expectInvalid(
  upstream: MockUpstream,
  body: unknown,
  param: string | null,
  headers = {},
) {
  const response = asBody(await call(upstream, body, headers));
  expect(response.status).toBe(400);
  const parsed = JSON.parse(response.body) as { error: Record<string, unknown> };
  expect(Object.keys(parsed)).toEqual(["error"]);
  expect(Object.keys(parsed.error)).toEqual(ERROR_KEYS);
  expect(parsed.error.type).toBe("invalid_request_error");
  expect(parsed.error.param).toBe(param);
  expect(typeof parsed.error.message).toBe("string");
}

/** Records the delays asked for and resolves them at once (no real sleeping). */
export function fakeSleep() {
  const calls: number[] = [];
  const sleep = async (ms: number, signal: AbortSignal) => {
    calls.push(ms);
    signal.throwIfAborted();
  };
  return { calls, sleep };
}

/** What the mock writes for choice 0, rebuilt from the word list (the words are checked in mock-text.test.ts). */
export function mockTextOf(tokens: number): string {
  return Array.from({ length: tokens }, (_, i) => MOCK_WORDS[i % MOCK_WORDS.length]).join(" ");
}
