/**
 * Token counting: exact BPE for OpenAI's o200k_base and cl100k_base, the chat format's overhead,
 * a per-message count cache, and a conservative estimator for models without a public tokenizer.
 */

export {
  type BpeTextTokenizer,
  type BpeTextTokenizerOptions,
  createBpeTextTokenizer,
} from "./bpe-text-tokenizer.js";
export {
  type ChatFormat,
  CL100K_CHAT_FORMAT,
  ESTIMATE_CHAT_FORMAT,
  isCookbookToolShape,
  O200K_CHAT_FORMAT,
} from "./chat-format.js";
export {
  type ChatTokenizerOptions,
  createChatTokenizer,
  type DetailedChatTokenizer,
  type PartCount,
} from "./chat-tokenizer.js";
export { createEstimateTokenizer, type EstimateTokenizer } from "./estimate-tokenizer.js";
export {
  baseModelName,
  configureTokenCountCache,
  encodingForModel,
  getChatTokenizer,
  getTextTokenizer,
  sharedTokenCountCache,
  tokenizerForModel,
} from "./model-tokenizers.js";
export type { BpeEncodingName } from "./pretokenizer.js";
export { type RankLoadTiming, rankLoadTimings } from "./rank-loader.js";
export {
  type CachedCount,
  createTokenCountCache,
  DEFAULT_CACHE_MAX_CHARS,
  type TokenCountCache,
  type TokenCountCacheStats,
} from "./token-count-cache.js";
export type { ChatTokenCount, ChatTokenizer, EncodingName, TextTokenizer } from "./types.js";
