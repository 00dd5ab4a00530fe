/**
 * The chat format's token overhead: what a message costs beyond its text, following OpenAI's
 * cookbook "How to count tokens with tiktoken" (openai-cookbook, examples/
 * How_to_count_tokens_with_tiktoken.ipynb), which the API's `prompt_tokens` matched for
 * gpt-3.5-turbo, gpt-4, gpt-4o and gpt-4o-mini:
 *
 * - every message costs 3 tokens (`<|start|>{role}<|message|>{content}<|end|>` framing) plus the
 *   tokens of each of its string fields: role, content and name;
 * - a name costs 1 more token;
 * - every request costs 3 tokens of reply priming (`<|start|>assistant<|message|>`);
 * - tool definitions follow the cookbook's `num_tokens_for_tools` (constants below).
 *
 * Exact: role, string content, name, reply priming; tool definitions whose schema has the shape the
 * cookbook's rule covers (see {@link isCookbookToolShape}). Estimates (the count is marked inexact):
 * content given as several parts (summed; how the API joins them is not published), non-text parts,
 * assistant `tool_calls` / legacy `function_call`, `tool` / `function` role messages (counted like
 * the cookbook counts every string field, `tool_call_id` included), and tool schemas beyond the
 * covered shape.
 */

import type { ChatMessage, ContentPart, ToolDefinition } from "../core/types.js";
import { asText } from "./message-key.js";

/** Per-encoding constants of the chat format. */
export interface ChatFormat {
  /** Distinguishes cache entries of formats that count the same text differently. */
  readonly id: string;
  readonly tokensPerMessage: number;
  readonly tokensPerName: number;
  readonly replyPriming: number;
  /** Cookbook `num_tokens_for_tools` constants. */
  readonly tools: {
    readonly functionStart: number;
    readonly propertiesStart: number;
    readonly propertyKey: number;
    readonly enumStart: number;
    readonly enumItem: number;
    readonly functionsEnd: number;
  };
  /**
   * Estimated framing of one assistant tool call beyond its name and arguments (not published;
   * chosen to cover `to=functions.NAME` style routing plus delimiters).
   */
  readonly toolCallOverhead: number;
  /** Estimate for an image part with `detail: "low"`. */
  readonly imageLowDetailTokens: number;
  /** Estimate for any other image part (the largest high-detail image of the model family). */
  readonly imageTokens: number;
  /** Estimate for a part that is neither text nor image (audio, file...). */
  readonly otherPartTokens: number;
}

/**
 * gpt-4o / gpt-4.1 / o-series (o200k_base). Image estimate: 85 + 170 × 8 tiles = 1 445, the most a
 * high-detail image costs on gpt-4o (a 2048 × 768 image scales to 768 × 2048 → 2 × 4 tiles).
 */
export const O200K_CHAT_FORMAT: ChatFormat = {
  id: "o200k",
  tokensPerMessage: 3,
  tokensPerName: 1,
  replyPriming: 3,
  tools: {
    functionStart: 7,
    propertiesStart: 3,
    propertyKey: 3,
    enumStart: -3,
    enumItem: 3,
    functionsEnd: 12,
  },
  toolCallOverhead: 8,
  imageLowDetailTokens: 85,
  imageTokens: 1445,
  otherPartTokens: 1445,
};

/** gpt-4 / gpt-4-turbo / gpt-3.5-turbo (cl100k_base): the cookbook's function start is 10 there. */
export const CL100K_CHAT_FORMAT: ChatFormat = {
  ...O200K_CHAT_FORMAT,
  id: "cl100k",
  tools: { ...O200K_CHAT_FORMAT.tools, functionStart: 10 },
};

/**
 * Models with no public tokenizer: OpenAI's framing, rounded up (their own framing is not published
 * and settlement corrects the estimate).
 */
export const ESTIMATE_CHAT_FORMAT: ChatFormat = {
  ...O200K_CHAT_FORMAT,
  id: "estimate",
  tokensPerMessage: 5,
  replyPriming: 5,
  tools: { ...CL100K_CHAT_FORMAT.tools },
};

/** A message broken into what must be tokenized and what is a constant. */
export interface MessageParts {
  /** Tokens that need no tokenizer (framing, name token, image estimates). */
  fixed: number;
  /** Strings to tokenize; the message costs `fixed` plus their token counts. */
  texts: string[];
  /** False when any part of the count is an estimate. */
  exact: boolean;
}

/** Text of a content part, when it carries text (`text`, `input_text`, `refusal`...). */
function partText(part: ContentPart): string | undefined {
  if (typeof part.text === "string") return part.text;
  if (part.type === "refusal" && typeof part.refusal === "string") return part.refusal;
  return undefined;
}

function imageDetail(part: ContentPart): string | undefined {
  const image = part.image_url;
  if (image !== null && typeof image === "object" && "detail" in image) {
    const detail = (image as { detail?: unknown }).detail;
    return typeof detail === "string" ? detail : undefined;
  }
  return undefined;
}

/** The constant part of a non-text content part's cost; see {@link ChatFormat}. */
export function nonTextPartTokens(format: ChatFormat, part: ContentPart): number {
  if (part.type === "image_url" || part.type === "input_image" || part.type === "image") {
    return imageDetail(part) === "low" ? format.imageLowDetailTokens : format.imageTokens;
  }
  return format.otherPartTokens;
}

/** Splits a message into fixed tokens and texts to count, per the cookbook rule. */
export function messageParts(format: ChatFormat, message: ChatMessage): MessageParts {
  let fixed = format.tokensPerMessage;
  const texts: string[] = [];
  let exact = true;
  texts.push(asText(message.role));
  if (typeof message.name === "string") {
    texts.push(message.name);
    fixed += format.tokensPerName;
  }
  const content = message.content;
  if (typeof content === "string") {
    texts.push(content);
  } else if (Array.isArray(content)) {
    let textParts = 0;
    for (const part of content) {
      const text = part !== null && typeof part === "object" ? partText(part) : undefined;
      if (text !== undefined) {
        texts.push(text);
        textParts++;
      } else {
        fixed +=
          part !== null && typeof part === "object"
            ? nonTextPartTokens(format, part)
            : format.otherPartTokens;
        exact = false;
      }
    }
    // One text part is the same as string content; how several are joined is not published.
    if (textParts > 1) exact = false;
  }
  if (Array.isArray(message.tool_calls)) {
    for (const call of message.tool_calls) {
      fixed += format.toolCallOverhead;
      texts.push(asText(call?.function?.name), asText(call?.function?.arguments));
      exact = false;
    }
  }
  const legacyCall = message.function_call as { name?: unknown; arguments?: unknown } | undefined | null;
  if (legacyCall !== null && typeof legacyCall === "object") {
    fixed += format.toolCallOverhead;
    texts.push(asText(legacyCall.name), asText(legacyCall.arguments));
    exact = false;
  }
  // An assistant message's refusal is sent back to the provider with the history: counted (estimate).
  const refusal = (message as { refusal?: unknown }).refusal;
  if (typeof refusal === "string") {
    texts.push(refusal);
    exact = false;
  }
  if (typeof message.tool_call_id === "string") {
    texts.push(message.tool_call_id);
    exact = false;
  }
  if (message.role === "tool" || message.role === "function") exact = false;
  return { fixed, texts, exact };
}

/** Property schemas the cookbook's rule was verified on: a primitive type, description, enum. */
const COOKBOOK_PROPERTY_KEYS = new Set(["type", "description", "enum"]);
const COOKBOOK_PARAMETER_KEYS = new Set(["type", "properties", "required"]);
const PRIMITIVE_TYPES = new Set(["string", "number", "integer", "boolean"]);

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

/**
 * True when a tool has the shape `num_tokens_for_tools` handles and was checked against the API: a
 * function with a description and an object schema of primitive, optionally enumerated, described
 * properties. Anything else is counted by the same rule plus an estimate for what it does not see.
 */
export function isCookbookToolShape(tool: ToolDefinition): boolean {
  if (tool.type !== "function" || !isPlainObject(tool.function)) return false;
  const fn = tool.function;
  if (typeof fn.name !== "string" || typeof fn.description !== "string" || fn.strict === true) return false;
  const parameters = fn.parameters;
  if (!isPlainObject(parameters) || parameters.type !== "object") return false;
  if (Object.keys(parameters).some((k) => !COOKBOOK_PARAMETER_KEYS.has(k))) return false;
  const properties = parameters.properties;
  if (!isPlainObject(properties) || Object.keys(properties).length === 0) return false;
  return Object.values(properties).every(
    (p) =>
      isPlainObject(p) &&
      Object.keys(p).every((k) => COOKBOOK_PROPERTY_KEYS.has(k)) &&
      typeof p.type === "string" &&
      PRIMITIVE_TYPES.has(p.type) &&
      (p.description === undefined || typeof p.description === "string") &&
      (p.enum === undefined || (Array.isArray(p.enum) && p.enum.every((e) => typeof e === "string"))),
  );
}

/** Drops one trailing period, as the cookbook does for descriptions. */
function withoutFinalPeriod(text: string): string {
  return text.endsWith(".") ? text.slice(0, -1) : text;
}

/**
 * Tool definitions broken into fixed tokens and texts to count, by the cookbook's
 * `num_tokens_for_tools`; parts it does not model (nested schemas, non-function tools, extra
 * keywords) are added as their JSON text, an overestimate, and mark the count inexact.
 */
export function toolParts(format: ChatFormat, tools: readonly ToolDefinition[]): MessageParts {
  const t = format.tools;
  let fixed = 0;
  const texts: string[] = [];
  let exact = true;
  if (tools.length === 0) return { fixed, texts, exact };
  for (const tool of tools) {
    fixed += t.functionStart;
    if (!isCookbookToolShape(tool)) exact = false;
    const fn = isPlainObject(tool.function) ? tool.function : undefined;
    if (tool.type !== "function" || fn === undefined) {
      texts.push(JSON.stringify(tool) ?? "");
      continue;
    }
    const description = typeof fn.description === "string" ? fn.description : "";
    texts.push(`${String(fn.name)}:${withoutFinalPeriod(description)}`);
    const parameters = isPlainObject(fn.parameters) ? fn.parameters : {};
    const properties = isPlainObject(parameters.properties) ? parameters.properties : {};
    const keys = Object.keys(properties);
    if (keys.length > 0) {
      fixed += t.propertiesStart;
      for (const key of keys) {
        fixed += t.propertyKey;
        const property = isPlainObject(properties[key]) ? (properties[key] as Record<string, unknown>) : {};
        if (Array.isArray(property.enum)) {
          fixed += t.enumStart;
          for (const item of property.enum) {
            fixed += t.enumItem;
            texts.push(typeof item === "string" ? item : (JSON.stringify(item) ?? ""));
          }
        }
        const type = typeof property.type === "string" ? property.type : JSON.stringify(property.type ?? "");
        const propertyDescription = typeof property.description === "string" ? property.description : "";
        texts.push(`${key}:${type}:${withoutFinalPeriod(propertyDescription)}`);
        const rest = Object.fromEntries(
          Object.entries(property).filter(([k]) => !COOKBOOK_PROPERTY_KEYS.has(k)),
        );
        if (Object.keys(rest).length > 0) texts.push(JSON.stringify(rest));
      }
    }
    const restParameters = Object.fromEntries(
      Object.entries(parameters).filter(([k]) => !COOKBOOK_PARAMETER_KEYS.has(k)),
    );
    if (Object.keys(restParameters).length > 0) texts.push(JSON.stringify(restParameters));
  }
  fixed += t.functionsEnd;
  return { fixed, texts, exact };
}
