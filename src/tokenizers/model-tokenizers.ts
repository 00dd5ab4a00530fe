/**
 * Which tokenizer counts which model, and the shared tokenizer instances.
 *
 * OpenAI models are counted exactly with their encoding: o200k_base for gpt-4o, chatgpt-4o,
 * gpt-4.1, gpt-4.5, gpt-5 and the o1/o3/o4 reasoning models; cl100k_base for gpt-4, gpt-4-turbo
 * and gpt-3.5-turbo. A provider prefix (`openai/gpt-4o`, `azure/gpt-4o`) and a fine-tune wrapper
 * (`ft:gpt-4o-mini-2024-07-18:org::id`) are looked through. Every other model (Anthropic, Gemini,
 * unknown) gets the conservative estimator. Instances are shared per encoding and image profile, and
 * so is the message count cache, so repeated conversations hit it whichever entry point counted
 * them first.
 */

import { createBpeTextTokenizer } from "./bpe-text-tokenizer.js";
import {
  type ChatFormat,
  CL100K_CHAT_FORMAT,
  ESTIMATE_CHAT_FORMAT,
  O200K_CHAT_FORMAT,
} from "./chat-format.js";
import { createChatTokenizer, type DetailedChatTokenizer } from "./chat-tokenizer.js";
import { createEstimateTokenizer } from "./estimate-tokenizer.js";
import { createTokenCountCache, DEFAULT_CACHE_MAX_CHARS, type TokenCountCache } from "./token-count-cache.js";
import type { EncodingName, TextTokenizer } from "./types.js";

/**
 * Image estimates by model family: the most a high-detail image can cost (what a budget must
 * reserve), from OpenAI's vision pricing rules. Tile models: 85 + 170 per 512 px tile, at most 8
 * tiles. gpt-4o-mini: 2 833 + 5 667 per tile. Patch models (gpt-4.1, gpt-5, o4-mini): at most
 * 1 536 patches times the model's multiplier (mini 1.62, o4-mini 1.72, nano 2.46).
 */
interface ImageProfile {
  id: string;
  imageTokens: number;
  imageLowDetailTokens: number;
}

const IMAGE_PROFILES: { pattern: RegExp; profile: ImageProfile }[] = [
  {
    pattern: /^gpt-4o-mini/,
    profile: { id: "img-4o-mini", imageTokens: 48_169, imageLowDetailTokens: 2_833 },
  },
  {
    pattern: /^gpt-(4\.1|5)[^/]*-nano/,
    profile: { id: "img-nano", imageTokens: 3_779, imageLowDetailTokens: 3_779 },
  },
  {
    pattern: /^(gpt-(4\.1|5)[^/]*-mini|o4-mini)/,
    profile: { id: "img-mini", imageTokens: 2_642, imageLowDetailTokens: 2_642 },
  },
];
const DEFAULT_IMAGE_PROFILE: ImageProfile = { id: "img", imageTokens: 1_536, imageLowDetailTokens: 85 };

const O200K_MODEL = /^(gpt-4o|chatgpt-4o|gpt-4\.1|gpt-4\.5|gpt-5|o1|o3|o4)(?![0-9])/;
const CL100K_MODEL = /^(gpt-4(?![0-9.o])|gpt-3\.5|gpt-35)/;

/** Lower-cased model name without provider prefix or fine-tune wrapper. */
export function baseModelName(model: string): string {
  let name = model.trim().toLowerCase();
  if (name.startsWith("ft:")) name = name.slice(3).split(":")[0] ?? name;
  const slash = name.lastIndexOf("/");
  if (slash >= 0) name = name.slice(slash + 1);
  return name;
}

/** The encoding that counts `model` ("estimate" when its tokenizer is not public). */
export function encodingForModel(model: string): EncodingName {
  const name = baseModelName(model);
  if (O200K_MODEL.test(name)) return "o200k_base";
  if (CL100K_MODEL.test(name)) return "cl100k_base";
  return "estimate";
}

let sharedCache: TokenCountCache = createTokenCountCache();
const textTokenizers = new Map<EncodingName, TextTokenizer>();
const chatTokenizers = new Map<string, DetailedChatTokenizer>();

/** The shared text tokenizer of `encoding` (its vocabulary loads on first use). */
export function getTextTokenizer(encoding: EncodingName): TextTokenizer {
  let tokenizer = textTokenizers.get(encoding);
  if (!tokenizer) {
    tokenizer = encoding === "estimate" ? createEstimateTokenizer() : createBpeTextTokenizer(encoding);
    textTokenizers.set(encoding, tokenizer);
  }
  return tokenizer;
}

function baseFormat(encoding: EncodingName): ChatFormat {
  if (encoding === "o200k_base") return O200K_CHAT_FORMAT;
  if (encoding === "cl100k_base") return CL100K_CHAT_FORMAT;
  return ESTIMATE_CHAT_FORMAT;
}

function chatTokenizerFor(encoding: EncodingName, image: ImageProfile): DetailedChatTokenizer {
  const key = `${encoding}/${image.id}`;
  let tokenizer = chatTokenizers.get(key);
  if (!tokenizer) {
    const base = baseFormat(encoding);
    const format: ChatFormat = {
      ...base,
      id: `${base.id}/${image.id}`,
      imageTokens: image.imageTokens,
      imageLowDetailTokens: image.imageLowDetailTokens,
    };
    tokenizer = createChatTokenizer({ text: getTextTokenizer(encoding), format, cache: sharedCache });
    chatTokenizers.set(key, tokenizer);
  }
  return tokenizer;
}

/** The shared chat tokenizer of `encoding`, with the default image estimate. */
export function getChatTokenizer(encoding: EncodingName): DetailedChatTokenizer {
  return chatTokenizerFor(encoding, DEFAULT_IMAGE_PROFILE);
}

/**
 * Tokenizers by model name as asked. Why: the gateway asks once or twice per request, and resolving a
 * name (normalise, then up to a dozen pattern tests) cost more than the cached count it leads to.
 * Bounded: names are usually the config's few models, but a library caller may pass anything.
 */
const byModel = new Map<string, DetailedChatTokenizer>();
const BY_MODEL_MAX = 1024;

/** The chat tokenizer that counts requests to `model`. */
export function tokenizerForModel(model: string): DetailedChatTokenizer {
  let tokenizer = byModel.get(model);
  if (tokenizer) return tokenizer;
  const encoding = encodingForModel(model);
  const name = baseModelName(model);
  const image = IMAGE_PROFILES.find((p) => p.pattern.test(name))?.profile ?? DEFAULT_IMAGE_PROFILE;
  tokenizer = chatTokenizerFor(encoding, image);
  if (byModel.size >= BY_MODEL_MAX) byModel.clear();
  byModel.set(model, tokenizer);
  return tokenizer;
}

/**
 * Replaces the shared message count cache with one bounded by `maxChars` characters of keys
 * (default {@link DEFAULT_CACHE_MAX_CHARS}); tokenizers created afterwards use it.
 */
export function configureTokenCountCache(options: { maxChars?: number } = {}): TokenCountCache {
  sharedCache = createTokenCountCache({ maxChars: options.maxChars ?? DEFAULT_CACHE_MAX_CHARS });
  chatTokenizers.clear();
  byModel.clear();
  return sharedCache;
}

/** The shared message count cache (for its statistics). */
export function sharedTokenCountCache(): TokenCountCache {
  return sharedCache;
}
