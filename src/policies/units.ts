import type { ChatMessage } from "../core/types.js";

/**
 * A run of messages that must be kept or dropped together: a single message, or an assistant
 * message with `tool_calls` followed by the tool results answering it (a tool result is never
 * separated from the call that asked for it).
 */
export interface Unit {
  /** Indexes into the request's messages, in order. */
  indexes: number[];
}

/** How a conversation splits into pinned messages and droppable units. */
export interface Conversation {
  /** Indexes of messages that are always kept (system and developer messages). */
  pinned: number[];
  /** Non-pinned messages grouped into units, oldest first. */
  units: Unit[];
  /**
   * Index in `units` of the unit holding the newest user message (or the newest unit when there is
   * no user message): it and every newer unit must be kept, or the request is rejected.
   */
  anchor: number;
}

/** True for the roles that are instructions to the model and are never trimmed. */
export function isPinnedRole(role: string): boolean {
  return role === "system" || role === "developer";
}

function isToolResult(m: ChatMessage): boolean {
  return m.role === "tool" || m.role === "function";
}

/** Splits `messages` into pinned messages and units (see {@link Conversation}). */
export function splitConversation(messages: readonly ChatMessage[]): Conversation {
  const pinned: number[] = [];
  const units: Unit[] = [];
  let open: Unit | undefined; // an assistant tool-call unit still collecting its results
  let newestUserUnit = -1;
  for (let i = 0; i < messages.length; i++) {
    const m = messages[i] as ChatMessage;
    if (isPinnedRole(m.role)) {
      pinned.push(i);
      continue;
    }
    if (isToolResult(m) && open) {
      open.indexes.push(i);
      continue;
    }
    const unit: Unit = { indexes: [i] };
    units.push(unit);
    open =
      m.role === "assistant" && Array.isArray(m.tool_calls) && m.tool_calls.length > 0 ? unit : undefined;
    if (m.role === "user") newestUserUnit = units.length - 1;
  }
  const anchor = newestUserUnit >= 0 ? newestUserUnit : units.length - 1;
  return { pinned, units, anchor };
}
