/**
 * Wire-level types shared by every layer. They mirror the OpenAI chat format closely enough that a
 * request body can be passed through unchanged; fields tokenfuse does not use are carried along.
 */

/** One part of a multi-part message content (OpenAI "content parts"). */
export interface ContentPart {
  type: string;
  text?: string;
  [key: string]: unknown;
}

/** A tool call made by an assistant message. */
export interface ToolCall {
  id: string;
  type: "function" | string;
  function: { name: string; arguments: string };
}

/** A chat message as the OpenAI API accepts it. */
export interface ChatMessage {
  role: string;
  content?: string | ContentPart[] | null;
  name?: string;
  tool_calls?: ToolCall[];
  tool_call_id?: string;
  [key: string]: unknown;
}

/** A tool (function) definition as sent in the request's `tools` array. */
export interface ToolDefinition {
  type: "function" | string;
  function: { name: string; description?: string; parameters?: Record<string, unknown>; strict?: boolean };
}

/** Usage as the OpenAI API reports it (chat completions), details included when present. */
export interface OpenAIUsage {
  prompt_tokens?: number;
  completion_tokens?: number;
  total_tokens?: number;
  prompt_tokens_details?: { cached_tokens?: number; audio_tokens?: number } | null;
  completion_tokens_details?: { reasoning_tokens?: number; audio_tokens?: number } | null;
}

/** Usage normalised to integers, as tokenfuse settles it. */
export interface Usage {
  inputTokens: number;
  outputTokens: number;
  cachedInputTokens: number;
  reasoningTokens: number;
}

/** The decision tokenfuse took for a request. */
export type Decision = "allow" | "trim" | "reject";

/** Injected clock, so that windows and expiries can be tested without sleeping. */
export interface Clock {
  nowMs(): number;
}

/** The real clock. */
export const systemClock: Clock = { nowMs: () => Date.now() };
