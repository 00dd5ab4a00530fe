import type { ChatMessage, ToolDefinition } from "../core/types.js";

/** Names of the encodings tokenfuse counts exactly, plus the conservative estimator. */
export type EncodingName = "o200k_base" | "cl100k_base" | "estimate";

/**
 * Counts tokens of plain text for one encoding.
 *
 * Every counting method is bounded: `countTextUpTo(text, limit)` stops as soon as the count is known
 * to exceed `limit` and returns `limit + 1` in that case, without feeding unbounded input to BPE.
 */
export interface TextTokenizer {
  readonly encoding: EncodingName;
  /** True when counts equal the provider's; false for the estimator. */
  readonly exact: boolean;
  /** Exact (or, for the estimator, conservative) token count of `text`. */
  countText(text: string): number;
  /** Like countText, but returns `limit + 1` as soon as the count is known to exceed `limit`. */
  countTextUpTo(text: string, limit: number): number;
  /**
   * A prefix of `text` (cut on a character boundary) whose count is at most `maxTokens`, as long as
   * practical. Cost is bounded by `maxTokens`, not by the length of `text`.
   */
  truncateText(text: string, maxTokens: number): string;
}

/**
 * Counts chat requests: messages with the chat format's per-message overhead, names, tool calls and
 * tool definitions, so that the total equals the provider's `prompt_tokens` for text messages.
 */
export interface ChatTokenizer extends TextTokenizer {
  /** Tokens of one message including its per-message overhead (cached per message content). */
  countMessage(message: ChatMessage): number;
  /** Like countMessage, but returns `limit + 1` once the message is known to exceed `limit`. */
  countMessageUpTo(message: ChatMessage, limit: number): number;
  /** Tokens the request adds once, regardless of messages (reply priming: `<|start|>assistant<|message|>`). */
  readonly replyPrimingTokens: number;
  /** Tokens added by the request's tool definitions (0 for none). */
  countTools(tools: readonly ToolDefinition[] | undefined): number;
  /** Whole request: sum of messages + priming + tools. */
  countChat(messages: readonly ChatMessage[], tools?: readonly ToolDefinition[]): number;
  /**
   * Like countChat, with the parts and whether the total is exact: false when an estimate was
   * involved (non-text content parts, tool calls, tool results, tool schemas beyond the published
   * counting rule, or an estimator tokenizer).
   */
  countChatDetailed(messages: readonly ChatMessage[], tools?: readonly ToolDefinition[]): ChatTokenCount;
}

/** A chat request's token count with its parts; see {@link ChatTokenizer.countChatDetailed}. */
export interface ChatTokenCount {
  /** Total: messages + reply priming + tools. */
  tokens: number;
  /** True when every part was counted exactly (the provider's `prompt_tokens` for this request). */
  exact: boolean;
  /** Tokens of each message, overhead included, in order. */
  messages: number[];
  /** Reply priming tokens (added once). */
  replyPriming: number;
  /** Tokens of the tool definitions. */
  tools: number;
}
