import type { OnExceed } from "../config/types.js";
import { TokenBudgetError } from "../core/errors.js";
import type { ChatMessage, ContentPart, ToolDefinition } from "../core/types.js";
import type { ChatTokenizer } from "../tokenizers/types.js";
import { type Conversation, splitConversation, type Unit } from "./units.js";

/**
 * Produces a summary of the dropped turns, within `maxTokens` output tokens, or throws. The engine
 * wires this to the feature named in `summarize_with` (itself budgeted).
 */
export type Summarizer = (dropped: ChatMessage[], maxTokens: number) => Promise<string>;

/** What an input policy is given. */
export interface InputPolicyRequest {
  messages: readonly ChatMessage[];
  tools?: readonly ToolDefinition[] | undefined;
  maxInputTokens: number;
  onExceed: OnExceed;
  tokenizer: ChatTokenizer;
  summarizer?: Summarizer | undefined;
  /**
   * When given, receives the exact count of every message the policy counted completely, by index,
   * so that {@link measureInput} need not look them up again.
   */
  counts?: Array<number | undefined> | undefined;
}

/** The outcome of applying a feature's `on_exceed` policy. */
export interface InputPolicyResult {
  messages: ChatMessage[];
  /** Input tokens of `messages` (+ tools and reply priming), counted the same way the check was. */
  inputTokens: number;
  /** True when the input was reduced (decision `trim`). */
  reduced: boolean;
  /** Messages dropped whole. */
  droppedMessages: number;
  /** Messages whose text was shortened. */
  truncatedMessages: number;
  /** True when dropped turns were replaced by a summary. */
  summarized: boolean;
  /** Set when `summarize` fell back to `trim`, with the reason. */
  summaryFallback?: string;
}

/** Prefix of the message that replaces summarized turns. */
export const SUMMARY_PREFIX = "Summary of the earlier conversation:\n";

interface Walk {
  conv: Conversation;
  /** Tokens of tools + priming + pinned messages. */
  fixedTokens: number;
  /** units[keptFrom..] fit, newest first. */
  keptFrom: number;
  /** Budget left after the fixed part and kept units. */
  remaining: number;
}

function overError(maxInputTokens: number, detail: string): TokenBudgetError {
  return new TokenBudgetError({
    code: "input_budget_exceeded",
    message: `input is over the feature's max_input of ${maxInputTokens} tokens: ${detail}`,
    scope: "request",
    limit: maxInputTokens,
  });
}

function unitTokensUpTo(
  messages: readonly ChatMessage[],
  unit: Unit,
  limit: number,
  tokenizer: ChatTokenizer,
  counts?: Array<number | undefined>,
): number {
  let total = 0;
  for (const i of unit.indexes) {
    total += messageTokensUpTo(messages, i, limit - total, tokenizer, counts);
    if (total > limit) return limit + 1;
  }
  return total;
}

/** One message's count up to `limit` (limit + 1 past it), remembered in `counts` when complete. */
function messageTokensUpTo(
  messages: readonly ChatMessage[],
  i: number,
  limit: number,
  tokenizer: ChatTokenizer,
  counts: Array<number | undefined> | undefined,
): number {
  const known = counts?.[i];
  if (known !== undefined) return Math.min(known, limit + 1);
  const n = tokenizer.countMessageUpTo(messages[i] as ChatMessage, limit);
  if (counts && n <= limit) counts[i] = n;
  return n;
}

/**
 * Counts newest-first and stops at the cap: the cost is bounded by `max_input`, not by the size of
 * the history (SPEC §3, issue: cost bounded by the budget).
 */
function walk(req: InputPolicyRequest): Walk | TokenBudgetError {
  const { messages, maxInputTokens, tokenizer } = req;
  const conv = splitConversation(messages);
  let fixed = tokenizer.replyPrimingTokens + tokenizer.countTools(req.tools);
  if (fixed > maxInputTokens) return overError(maxInputTokens, "the tool definitions alone do not fit");
  for (const i of conv.pinned) {
    fixed += messageTokensUpTo(messages, i, maxInputTokens - fixed, tokenizer, req.counts);
    if (fixed > maxInputTokens) return overError(maxInputTokens, "the system messages alone do not fit");
  }
  let remaining = maxInputTokens - fixed;
  let keptFrom = conv.units.length;
  for (let u = conv.units.length - 1; u >= 0; u--) {
    const t = unitTokensUpTo(messages, conv.units[u] as Unit, remaining, tokenizer, req.counts);
    if (t > remaining) break;
    remaining -= t;
    keptFrom = u;
  }
  return { conv, fixedTokens: fixed, keptFrom, remaining };
}

/**
 * Drops the kept units older than the first kept user message (below the anchor): an assistant reply
 * or tool call whose question was dropped. SPEC §2 drops older turns whole, and a conversation that
 * starts with a reply to nothing confuses models (and some providers refuse it). Their tokens are
 * given back to `remaining`.
 */
function startAtTurn(req: InputPolicyRequest, w: Walk): Walk {
  const { conv } = w;
  let { keptFrom, remaining } = w;
  if (keptFrom === 0) return w;
  // Without any user message there are no turns to keep whole: the newest messages that fit stay.
  const anchorUnit = conv.units[conv.anchor] as Unit;
  if ((req.messages[anchorUnit.indexes[0] as number] as ChatMessage).role !== "user") return w;
  while (keptFrom < conv.anchor) {
    const unit = conv.units[keptFrom] as Unit;
    if ((req.messages[unit.indexes[0] as number] as ChatMessage).role === "user") break;
    remaining += unitTokensUpTo(req.messages, unit, Number.MAX_SAFE_INTEGER, req.tokenizer, req.counts);
    keptFrom++;
  }
  return keptFrom === w.keptFrom ? w : { ...w, keptFrom, remaining };
}

function collect(
  messages: readonly ChatMessage[],
  conv: Conversation,
  keptFrom: number,
  replace?: { at: number; message: ChatMessage; insert: boolean },
): ChatMessage[] {
  const keep = new Uint8Array(messages.length);
  for (const i of conv.pinned) keep[i] = 1;
  for (let u = keptFrom; u < conv.units.length; u++) {
    for (const i of (conv.units[u] as Unit).indexes) keep[i] = 1;
  }
  const out: ChatMessage[] = [];
  for (let i = 0; i < messages.length; i++) {
    if (replace && i === replace.at) {
      out.push(replace.message);
      if (!replace.insert) continue;
    }
    if (keep[i]) out.push(messages[i] as ChatMessage);
  }
  return out;
}

function countDropped(conv: Conversation, keptFrom: number): number {
  let n = 0;
  for (let u = 0; u < keptFrom; u++) n += (conv.units[u] as Unit).indexes.length;
  return n;
}

function textOf(m: ChatMessage): string | undefined {
  if (typeof m.content === "string") return m.content;
  if (Array.isArray(m.content) && m.content.length === 1) {
    const p = m.content[0];
    if (p && p.type === "text" && typeof p.text === "string") return p.text;
  }
  return undefined;
}

function withText(m: ChatMessage, text: string): ChatMessage {
  if (typeof m.content === "string") return { ...m, content: text };
  const part = (m.content as ContentPart[])[0] as ContentPart;
  return { ...m, content: [{ ...part, text }] };
}

/**
 * Shortens message `m` so that it counts at most `budget` tokens, or returns undefined when it
 * cannot be shortened (tool calls, multi-part content) or even its envelope does not fit.
 */
function truncateMessage(m: ChatMessage, budget: number, tokenizer: ChatTokenizer): ChatMessage | undefined {
  if (m.role !== "user" && m.role !== "assistant") return undefined;
  if (Array.isArray(m.tool_calls) && m.tool_calls.length > 0) return undefined;
  const text = textOf(m);
  if (text === undefined) return undefined;
  const envelope = tokenizer.countMessage(withText(m, ""));
  let textBudget = budget - envelope;
  // Why a loop: token boundaries can shift where the cut text meets the message envelope, so the
  // cut is verified with the same counter and tightened until the whole message fits.
  for (let attempt = 0; attempt < 4 && textBudget > 0; attempt++) {
    const cut = withText(m, tokenizer.truncateText(text, textBudget));
    // The cut holds at most textBudget tokens of text, so counting it exactly is cheap.
    const n = tokenizer.countMessage(cut);
    if (n <= budget) return textOf(cut) === "" ? undefined : cut;
    textBudget -= n - budget;
  }
  return undefined;
}

function fitted(
  req: InputPolicyRequest,
  w: Walk,
  extra?: { message: ChatMessage; tokens: number; at: number; insert: boolean },
  meta?: Partial<InputPolicyResult>,
): InputPolicyResult {
  const keptFrom = extra && !extra.insert ? w.keptFrom - 1 : w.keptFrom;
  const messages = collect(req.messages, w.conv, w.keptFrom, extra);
  return {
    messages,
    inputTokens: req.maxInputTokens - w.remaining + (extra?.tokens ?? 0),
    reduced: true,
    droppedMessages: countDropped(w.conv, keptFrom),
    truncatedMessages: 0,
    summarized: false,
    ...meta,
  };
}

function renderTranscript(messages: readonly ChatMessage[]): string {
  const lines: string[] = [];
  for (const m of messages) {
    const text =
      typeof m.content === "string"
        ? m.content
        : Array.isArray(m.content)
          ? m.content.map((p) => p.text ?? "").join("")
          : "";
    const calls = Array.isArray(m.tool_calls)
      ? m.tool_calls.map((c) => ` [calls ${c.function?.name}(${c.function?.arguments})]`).join("")
      : "";
    lines.push(`${m.role}${m.name ? ` (${m.name})` : ""}: ${text}${calls}`);
  }
  return lines.join("\n");
}

/** Messages a summarizer receives: an instruction and the dropped turns as a transcript. */
export function summaryRequestMessages(dropped: readonly ChatMessage[]): ChatMessage[] {
  return [
    {
      role: "system",
      content:
        "Summarize the following earlier part of a conversation so it can replace it. Keep facts, decisions, names, numbers and open questions. Be concise.",
    },
    { role: "user", content: renderTranscript(dropped) },
  ];
}

/**
 * Applies the feature's `on_exceed` policy (SPEC §2): returns the messages to send and their exact
 * input count, or the `input_budget_exceeded` error. Always keeps every system message and every
 * message from the newest user message on, keeps order, and never separates a tool result from its
 * call; the result always fits `maxInputTokens` by the same count it reports.
 */
export async function applyInputPolicy(
  req: InputPolicyRequest,
): Promise<InputPolicyResult | TokenBudgetError> {
  const w = walk(req);
  if (w instanceof TokenBudgetError) return w;
  const { conv, keptFrom } = w;
  if (keptFrom === 0) {
    return {
      messages: req.messages.slice(),
      inputTokens: req.maxInputTokens - w.remaining,
      reduced: false,
      droppedMessages: 0,
      truncatedMessages: 0,
      summarized: false,
    };
  }
  if (req.onExceed === "reject") return overError(req.maxInputTokens, "on_exceed is reject");

  if (req.onExceed === "truncate") {
    const blocked = conv.units[keptFrom - 1] as Unit;
    if (blocked.indexes.length === 1 && keptFrom - 1 <= conv.anchor) {
      const at = blocked.indexes[0] as number;
      const cut = truncateMessage(req.messages[at] as ChatMessage, w.remaining, req.tokenizer);
      if (cut) {
        const tokens = req.tokenizer.countMessage(cut);
        return fitted(req, w, { message: cut, tokens, at, insert: false }, { truncatedMessages: 1 });
      }
    }
  }

  if (keptFrom > conv.anchor) {
    return overError(req.maxInputTokens, "the system messages and the newest user message do not fit");
  }

  const turns = startAtTurn(req, w);
  if (req.onExceed === "summarize") {
    // Keep room for the summary: choose the newest turns within the cap minus that room, so the
    // summary is not squeezed out by turns that would fit without it.
    const room = summaryRoom(req.maxInputTokens);
    const w2 = walk({ ...req, maxInputTokens: req.maxInputTokens - room });
    let reason = "no room for a summary next to the newest turns";
    if (!(w2 instanceof TokenBudgetError) && w2.keptFrom <= w2.conv.anchor) {
      const summarized = await trySummary(req, startAtTurn(req, { ...w2, remaining: w2.remaining + room }));
      if (typeof summarized !== "string") return summarized;
      reason = summarized;
    }
    return fitted(req, turns, undefined, { summaryFallback: reason });
  }
  return fitted(req, turns);
}

/** Tokens of the cap kept free for a summary: a quarter of it, at least 32 (at most half). */
export function summaryRoom(maxInputTokens: number): number {
  return Math.min(Math.floor(maxInputTokens / 2), Math.max(32, Math.floor(maxInputTokens / 4)));
}

/** Summarizes the dropped turns; returns the result, or the reason to fall back to trim. */
async function trySummary(req: InputPolicyRequest, w: Walk): Promise<InputPolicyResult | string> {
  if (!req.summarizer) return "no summarizer is configured";
  const { conv, keptFrom } = w;
  const dropped: ChatMessage[] = [];
  for (let u = 0; u < keptFrom; u++) {
    for (const i of (conv.units[u] as Unit).indexes) dropped.push(req.messages[i] as ChatMessage);
  }
  const envelope = req.tokenizer.countMessage({ role: "system", content: SUMMARY_PREFIX });
  const maxTokens = w.remaining - envelope;
  if (maxTokens < 16) return "no room left for a summary";
  let text: string;
  try {
    text = await req.summarizer(dropped, maxTokens);
  } catch (e) {
    return `summarizer failed: ${e instanceof Error ? e.message : String(e)}`;
  }
  if (typeof text !== "string" || text.trim() === "") return "summarizer returned no text";
  const message: ChatMessage = { role: "system", content: `${SUMMARY_PREFIX}${text}` };
  const tokens = req.tokenizer.countMessageUpTo(message, w.remaining);
  if (tokens > w.remaining) return "the summary does not fit";
  const at = (conv.units[keptFrom] as Unit).indexes[0] as number;
  return fitted(req, w, { message, tokens, at, insert: true }, { summarized: true });
}

/** How far {@link measureInput} counts: this many times the feature's `max_input`… */
export const INPUT_MEASURE_FACTOR = 4;
/** …and at most this many messages the input policy did not count itself. */
export const INPUT_MEASURE_LOOKUPS = 32;

/** The size of a request's input before its `on_exceed` policy (for the usage log). */
export interface InputMeasure {
  /** Input tokens as the caller sent them; a lower bound when `capped`. */
  tokens: number;
  /** True when counting stopped at a bound: `tokens` is then what was counted (at most the limit + 1). */
  capped: boolean;
  /**
   * Tokens no trimming can remove: tool definitions, reply priming, system messages and every
   * message from the newest user message on (the limit + 1 when that part was not counted whole).
   */
  floor: number;
}

/**
 * Counts a request's whole input, up to `limit` tokens and `maxLookups` messages not already in
 * `counts`, and the part trimming must keep. Only used when the input was over the cap (trimmed or
 * refused) and a usage log wants to know what came in. Why bounded: the input policy decides in time
 * bounded by `max_input` whatever the request's size (a 1 MiB message is refused in microseconds); an
 * exact count of the whole request would cost milliseconds per MiB, and even a count served from the
 * per-message cache costs about 1 µs per message, which a runaway history has thousands of.
 */
export function measureInput(
  req: Pick<InputPolicyRequest, "messages" | "tools" | "tokenizer" | "counts">,
  limit: number,
  maxLookups = Number.POSITIVE_INFINITY,
): InputMeasure {
  const { messages, tokenizer, counts } = req;
  const conv = splitConversation(messages);
  let lookups = maxLookups;
  let total = tokenizer.replyPrimingTokens + tokenizer.countTools(req.tools);
  let floor: number | undefined;
  const stop = (): InputMeasure => ({
    tokens: Math.min(total, limit + 1),
    capped: true,
    floor: floor ?? limit + 1,
  });
  /** Adds message i; false when a bound stopped the count. */
  const add = (i: number): boolean => {
    if (counts?.[i] === undefined && lookups-- <= 0) return false;
    total += messageTokensUpTo(messages, i, limit - total, tokenizer, counts);
    return total <= limit;
  };
  if (total > limit) return stop();
  for (const i of conv.pinned) if (!add(i)) return stop();
  // Newest first: the units trimming must keep (the newest user message on), then the older ones.
  for (let u = conv.units.length - 1; u >= 0; u--) {
    for (const i of (conv.units[u] as Unit).indexes) if (!add(i)) return stop();
    if (u === conv.anchor) floor = total;
  }
  return { tokens: total, capped: false, floor: floor ?? total };
}
