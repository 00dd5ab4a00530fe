/**
 * Cache keys for message and tool counts: an injective encoding of exactly the fields the count
 * depends on (role, name, content, tool calls, tool_call_id, refusal), built in time linear in their length
 * and far cheaper than tokenizing them. Fields are length-prefixed so that no two different
 * messages share a key whatever characters their texts contain.
 */

import type { ChatMessage, ToolDefinition } from "../core/types.js";

/** How a possibly non-string field is read as text (shared with the counting rule). */
export function asText(value: unknown): string {
  if (typeof value === "string") return value;
  return value === undefined || value === null ? "" : String(value);
}

function field(value: string): string {
  return `${value.length}:${value}`;
}

function optional(value: unknown): string {
  return typeof value === "string" ? `s${field(value)}` : "u";
}

/** A two-part cache key: see token-count-cache.ts. */
export interface CountKey {
  /** The message's text (string content), or the serialized content otherwise. */
  primary: string;
  /** Everything else the count depends on, short. */
  secondary: string;
}

/**
 * Key of `message` under `namespace` (the encoding and chat format). String content is the primary
 * key as is; other content is serialized. Non-text content parts contribute only what their
 * estimate depends on (type and detail), not their data, so a large image does not make the key
 * expensive.
 */
export function messageKey(namespace: string, message: ChatMessage): CountKey {
  let secondary = `m${field(namespace)}${field(asText(message.role))}${optional(message.name)}`;
  let primary = "";
  const content = message.content;
  if (typeof content === "string") {
    primary = content;
    secondary += "c";
  } else if (Array.isArray(content)) {
    secondary += "a";
    primary = `${content.length}:`;
    for (const part of content) {
      if (part === null || typeof part !== "object") {
        primary += "x";
        continue;
      }
      if (typeof part.text === "string") {
        primary += `t${field(part.text)}`;
      } else if (part.type === "refusal" && typeof part.refusal === "string") {
        primary += `r${field(part.refusal)}`;
      } else {
        const image = part.image_url as { detail?: unknown } | undefined | null;
        const detail = image !== null && typeof image === "object" ? image.detail : undefined;
        primary += `p${field(String(part.type))}${optional(detail)}`;
      }
    }
  } else {
    secondary += "n";
  }
  if (Array.isArray(message.tool_calls)) {
    secondary += `k${message.tool_calls.length}:`;
    for (const call of message.tool_calls) {
      secondary += `${field(asText(call?.function?.name))}${field(asText(call?.function?.arguments))}`;
    }
  }
  const legacy = message.function_call as { name?: unknown; arguments?: unknown } | undefined | null;
  if (legacy !== null && typeof legacy === "object") {
    secondary += `f${field(asText(legacy.name))}${field(asText(legacy.arguments))}`;
  }
  secondary += optional(message.tool_call_id);
  secondary += optional((message as { refusal?: unknown }).refusal);
  return { primary, secondary };
}

/** Key of a request's tool definitions under `namespace`. */
export function toolsKey(namespace: string, tools: readonly ToolDefinition[]): CountKey {
  return { primary: JSON.stringify(tools), secondary: `t${field(namespace)}` };
}
