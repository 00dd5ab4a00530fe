/**
 * What a request asks of the mock upstream: the few body fields it uses (validated minimally, with
 * OpenAI's error wording) and the `x-mock-*` test headers. Unknown body fields are ignored.
 */

import type { ChatMessage, ToolDefinition } from "../../core/types.js";
import { invalidRequestResponse, type MockBodyResponse } from "./mock-response.js";

/** The OpenAI API's ceiling on `n`. */
const MAX_N = 128;

/**
 * Most completion tokens one choice may be asked for by header. Why: a typo in a test header must
 * not make the mock build a gigabyte string.
 */
export const MAX_MOCK_COMPLETION_TOKENS = 1_000_000;

/** Faults a request can ask for with the `x-mock-fault` header. */
export const MOCK_FAULTS = [
  "500",
  "429",
  "stall",
  "reset-mid-stream",
  "no-usage",
  "stall-mid-stream",
] as const;

/** A fault the mock injects on request (header `x-mock-fault`). */
export type MockFault = (typeof MOCK_FAULTS)[number];

/** The body fields the mock uses, validated. */
export interface MockChatRequest {
  model: string;
  messages: ChatMessage[];
  tools: ToolDefinition[] | undefined;
  stream: boolean;
  /** `stream_options.include_usage`. */
  includeUsage: boolean;
  /** Number of choices (`n`, default 1). */
  n: number;
  /** The smaller of `max_completion_tokens` and `max_tokens`, when either is set. */
  outputCap: number | undefined;
}

/** What the `x-mock-*` headers ask for. */
export interface MockDirectives {
  /** Completion tokens per choice before the request's cap (`x-mock-completion-tokens`). */
  completionTokens: number;
  fault: MockFault | undefined;
  /** Content chunks sent before a mid-stream fault (`x-mock-fault-after-chunks`); default half. */
  faultAfterChunks: number | undefined;
}

/** A parse outcome: the value, or the 400 response to send. */
export type MockParseResult<T> = { ok: true; value: T } | { ok: false; response: MockBodyResponse };

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function fail(
  message: string,
  param: string | null,
  code: string | null = null,
): { ok: false; response: MockBodyResponse } {
  return { ok: false, response: invalidRequestResponse(message, param, code) };
}

/** An optional integer field ≥ `min`: the value, undefined when absent or null, or an error. */
function optionalInteger(
  body: Record<string, unknown>,
  name: string,
  min: number,
  max = Number.MAX_SAFE_INTEGER,
): number | undefined | { ok: false; response: MockBodyResponse } {
  const value = body[name];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "number" || !Number.isInteger(value)) {
    return fail(
      `Invalid type for '${name}': expected an integer, but got ${typeName(value)} instead.`,
      name,
      "invalid_type",
    );
  }
  if (value < min) {
    return fail(
      `Invalid '${name}': integer below minimum value. Expected a value >= ${min}, but got ${value} instead.`,
      name,
      "integer_below_min_value",
    );
  }
  if (value > max) {
    return fail(
      `Invalid '${name}': integer above maximum value. Expected a value <= ${max}, but got ${value} instead.`,
      name,
      "integer_above_max_value",
    );
  }
  return value;
}

function typeName(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  return typeof value === "object" ? "an object" : `a ${typeof value}`;
}

/** Validates the fields the mock uses; anything malformed is a 400 with OpenAI's error envelope. */
export function parseMockChatRequest(body: unknown): MockParseResult<MockChatRequest> {
  if (!isRecord(body)) return fail("The request body must be a JSON object.", null);
  const { model, messages, stream, stream_options: streamOptions } = body;
  const tools: unknown = body.tools;
  if (typeof model !== "string" || model.length === 0) {
    return fail("you must provide a model parameter", "model");
  }
  if (!Array.isArray(messages)) {
    return fail(
      `Invalid type for 'messages': expected an array, but got ${typeName(messages)} instead.`,
      "messages",
      "invalid_type",
    );
  }
  if (messages.length === 0) {
    return fail(
      "Invalid 'messages': empty array. Expected an array with minimum length 1.",
      "messages",
      "empty_array",
    );
  }
  for (let i = 0; i < messages.length; i++) {
    const m: unknown = messages[i];
    if (!isRecord(m) || typeof m.role !== "string") {
      return fail(
        `Invalid 'messages[${i}]': expected an object with a string 'role'.`,
        `messages[${i}]`,
        "invalid_type",
      );
    }
  }
  let toolList: ToolDefinition[] | undefined;
  if (tools !== undefined && tools !== null) {
    if (!Array.isArray(tools) || !tools.every((t: unknown) => isRecord(t) && isRecord(t.function))) {
      return fail(
        "Invalid 'tools': expected an array of tool objects with a 'function'.",
        "tools",
        "invalid_type",
      );
    }
    toolList = tools as ToolDefinition[];
  }
  if (stream !== undefined && stream !== null && typeof stream !== "boolean") {
    return fail(
      `Invalid type for 'stream': expected a boolean, but got ${typeName(stream)} instead.`,
      "stream",
      "invalid_type",
    );
  }
  let includeUsage = false;
  if (streamOptions !== undefined && streamOptions !== null) {
    // Why: OpenAI refuses stream_options on a non-streaming request; a gateway that forces
    // include_usage on every request must see that error here, not first in production.
    if (stream !== true) {
      return fail(
        "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
        "stream_options",
      );
    }
    if (!isRecord(streamOptions)) {
      return fail("Invalid type for 'stream_options': expected an object.", "stream_options", "invalid_type");
    }
    const flag = streamOptions.include_usage;
    if (flag !== undefined && flag !== null && typeof flag !== "boolean") {
      return fail(
        "Invalid type for 'stream_options.include_usage': expected a boolean.",
        "stream_options.include_usage",
        "invalid_type",
      );
    }
    includeUsage = flag === true;
  }
  const n = optionalInteger(body, "n", 1, MAX_N);
  if (typeof n === "object") return n;
  const maxCompletion = optionalInteger(body, "max_completion_tokens", 1);
  if (typeof maxCompletion === "object") return maxCompletion;
  const maxTokens = optionalInteger(body, "max_tokens", 1);
  if (typeof maxTokens === "object") return maxTokens;
  const caps = [maxCompletion, maxTokens].filter((c): c is number => c !== undefined);
  return {
    ok: true,
    value: {
      model,
      messages: messages as ChatMessage[],
      tools: toolList,
      stream: stream === true,
      includeUsage,
      n: n ?? 1,
      outputCap: caps.length > 0 ? Math.min(...caps) : undefined,
    },
  };
}

function headerInteger(
  headers: Record<string, string | undefined>,
  name: string,
  max: number,
): number | undefined | { ok: false; response: MockBodyResponse } {
  const raw = headers[name];
  if (raw === undefined) return undefined;
  const text = raw.trim();
  if (!/^\d{1,9}$/.test(text) || Number(text) > max) {
    return fail(`Invalid header '${name}': expected an integer from 0 to ${max}, got "${raw}".`, null);
  }
  return Number(text);
}

/**
 * Reads the `x-mock-*` headers (names in lower case, as node:http gives them). An unknown fault or
 * a malformed number is a 400, so that a typo in a test fails loudly instead of testing nothing.
 */
export function parseMockDirectives(
  headers: Record<string, string | undefined>,
  defaultCompletionTokens: number,
): MockParseResult<MockDirectives> {
  const tokens = headerInteger(headers, "x-mock-completion-tokens", MAX_MOCK_COMPLETION_TOKENS);
  if (typeof tokens === "object") return tokens;
  const after = headerInteger(headers, "x-mock-fault-after-chunks", MAX_MOCK_COMPLETION_TOKENS);
  if (typeof after === "object") return after;
  const rawFault = headers["x-mock-fault"]?.trim();
  let fault: MockFault | undefined;
  if (rawFault !== undefined && rawFault !== "") {
    fault = MOCK_FAULTS.find((f) => f === rawFault);
    if (fault === undefined) {
      return fail(
        `Invalid header 'x-mock-fault': "${rawFault}" is not one of ${MOCK_FAULTS.join(", ")}.`,
        null,
      );
    }
  }
  return {
    ok: true,
    value: { completionTokens: tokens ?? defaultCompletionTokens, fault, faultAfterChunks: after },
  };
}
