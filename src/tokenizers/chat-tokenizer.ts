/**
 * Counts chat requests: text tokens of each message plus the chat format's overhead (see
 * chat-format.ts), with each message's count cached by content so that a conversation sent again
 * with one more turn only tokenizes the new turn.
 */

import type { ChatMessage, ToolDefinition } from "../core/types.js";
import { type ChatFormat, messageParts, toolParts } from "./chat-format.js";
import { messageKey, toolsKey } from "./message-key.js";
import type { TokenCountCache } from "./token-count-cache.js";
import type { ChatTokenCount, ChatTokenizer, TextTokenizer } from "./types.js";

/** A message or tools count and whether it is exact. */
export interface PartCount {
  tokens: number;
  exact: boolean;
}

/** A {@link ChatTokenizer} that also reports per-message exactness. */
export interface DetailedChatTokenizer extends ChatTokenizer {
  /** Tokens of one message with its overhead, and whether the count is exact. */
  countMessageDetailed(message: ChatMessage): PartCount;
  /** Tokens of the tool definitions, and whether the count is exact. */
  countToolsDetailed(tools: readonly ToolDefinition[] | undefined): PartCount;
  /** The chat format constants in use. */
  readonly format: ChatFormat;
}

/** Options of {@link createChatTokenizer}. */
export interface ChatTokenizerOptions {
  /** Counts the text; its `encoding` and `exact` become the chat tokenizer's. */
  text: TextTokenizer;
  format: ChatFormat;
  /** Where message counts are cached; `undefined` disables caching. */
  cache: TokenCountCache | undefined;
}

/** Creates a chat tokenizer over a text tokenizer and a chat format. */
export function createChatTokenizer(options: ChatTokenizerOptions): DetailedChatTokenizer {
  const { text, format, cache } = options;
  const namespace = `${text.encoding}/${format.id}`;

  /** Exact count of the parts `compute` yields, through the cache under `key`. */
  function cachedCount(
    key: { primary: string; secondary: string } | undefined,
    compute: () => { fixed: number; texts: readonly string[]; exact: boolean },
  ): PartCount {
    const cached = key ? cache?.get(key.primary, key.secondary) : undefined;
    if (cached) return cached;
    const parts = compute();
    let tokens = parts.fixed;
    for (const t of parts.texts) tokens += text.countText(t);
    const count = { tokens, exact: parts.exact && text.exact };
    if (key) cache?.set(key.primary, key.secondary, count);
    return count;
  }

  function countMessageDetailed(message: ChatMessage): PartCount {
    return cachedCount(cache ? messageKey(namespace, message) : undefined, () =>
      messageParts(format, message),
    );
  }

  function countMessageUpTo(message: ChatMessage, limit: number): number {
    const cap = Number.isFinite(limit) ? Math.max(0, Math.floor(limit)) : Number.MAX_SAFE_INTEGER;
    const key = cache ? messageKey(namespace, message) : undefined;
    const cached = key ? cache?.get(key.primary, key.secondary) : undefined;
    if (cached) return Math.min(cached.tokens, cap + 1);
    const parts = messageParts(format, message);
    let tokens = parts.fixed;
    if (tokens > cap) return cap + 1;
    for (const t of parts.texts) {
      tokens += text.countTextUpTo(t, cap - tokens);
      // Why: a count that stopped early is only a bound; caching it would poison later exact counts.
      if (tokens > cap) return cap + 1;
    }
    if (key) cache?.set(key.primary, key.secondary, { tokens, exact: parts.exact && text.exact });
    return tokens;
  }

  function countToolsDetailed(tools: readonly ToolDefinition[] | undefined): PartCount {
    if (!tools || tools.length === 0) return { tokens: 0, exact: true };
    return cachedCount(cache ? toolsKey(namespace, tools) : undefined, () => toolParts(format, tools));
  }

  function countChatDetailed(
    messages: readonly ChatMessage[],
    tools?: readonly ToolDefinition[],
  ): ChatTokenCount {
    let tokens = format.replyPriming;
    let exact = text.exact;
    const perMessage: number[] = [];
    for (const message of messages) {
      const count = countMessageDetailed(message);
      perMessage.push(count.tokens);
      tokens += count.tokens;
      exact &&= count.exact;
    }
    const toolCount = countToolsDetailed(tools);
    tokens += toolCount.tokens;
    exact &&= toolCount.exact;
    return {
      tokens,
      exact,
      messages: perMessage,
      replyPriming: format.replyPriming,
      tools: toolCount.tokens,
    };
  }

  return {
    encoding: text.encoding,
    exact: text.exact,
    format,
    replyPrimingTokens: format.replyPriming,
    countText: (t) => text.countText(t),
    countTextUpTo: (t, limit) => text.countTextUpTo(t, limit),
    truncateText: (t, maxTokens) => text.truncateText(t, maxTokens),
    countMessage: (message) => countMessageDetailed(message).tokens,
    countMessageDetailed,
    countMessageUpTo,
    countTools: (tools) => countToolsDetailed(tools).tokens,
    countToolsDetailed,
    countChat: (messages, tools) => countChatDetailed(messages, tools).tokens,
    countChatDetailed,
  };
}
