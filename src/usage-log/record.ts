import { randomUUID } from "node:crypto";
/**
 * The usage log's record shapes (one JSON object per line, JSONL) and their conversion from the
 * engine's events. A record holds ids, names, token counts and cost, never message content, tool
 * definitions, API keys or other secrets: the events it is made from carry none.
 */
import type { ResolvedConfig } from "../config/types.js";
import type { DecisionEvent, SettleEvent } from "../core/engine.js";

/** Version of the record shapes; bumped when a field changes meaning. */
export const USAGE_LOG_VERSION = 1;

/** Longest name or id written (longer ones, only possible from library callers, are cut). */
export const MAX_NAME_CHARS = 256;

/** One decision: an `admit` call, admitted (`allow`, `trim`) or refused (`reject` with its code). */
export interface DecisionRecord {
  v: number;
  type: "decision";
  /** ISO 8601 UTC with milliseconds. */
  time: string;
  /** The same instant in ms since the epoch (the engine's clock). */
  time_ms: number;
  /** Unique id of the admission (its settlement line carries the same id). */
  id: string;
  /** The caller's own request id, when it passed one (library `requestId`). */
  request_id?: string;
  feature: string;
  user: string;
  tier: string;
  /** Model used; null when refused before the feature was known. */
  model: string | null;
  decision: "allow" | "trim" | "reject";
  /** Error code of a refusal (SPEC §5); null when admitted. */
  code: string | null;
  /** Admitted only: `ok`, or how it was admitted while the shared store was unreachable. */
  store?: "ok" | "store_unavailable" | "local";
  /** The rest is present once the request was counted (not on refusals before counting). */
  messages?: number;
  /** Input tokens as sent by the caller; a lower bound when `input_tokens_before_capped`. */
  input_tokens_before?: number;
  input_tokens_before_capped?: true;
  /** When the input was over `max_input`: tokens no trimming can remove. */
  input_tokens_floor?: number;
  /** Input tokens after the input policy (what is sent). */
  input_tokens?: number;
  /** The feature's `max_input` at the time. */
  max_input?: number;
  trimmed_messages?: number;
  truncated_messages?: number;
  summarized?: boolean;
  /** The caller's own output cap, when it sent one. */
  max_output_requested?: number;
  /** Output cap applied. */
  max_output?: number;
  n?: number;
  /** input + max_output × n. */
  reserved_tokens?: number;
  /** Admitted with no known price (`unknown_price: allow_and_alert`). */
  unpriced?: true;
}

/** One settlement of an admitted request. */
export interface SettleRecord {
  v: number;
  type: "settle";
  time: string;
  time_ms: number;
  /** The admission's id (as on its decision line). */
  id: string;
  request_id?: string;
  feature: string;
  user: string;
  tier: string;
  model: string;
  /** `settled`, `expired` (settled after the reservation expired), `duplicate`, `deferred`. */
  status: string;
  /** Where the usage came from: the provider's report, an estimate, or none (call failed, released). */
  usage_source: "provider" | "estimate" | "none";
  /** Why the usage is an estimate (a fixed phrase). */
  estimate_reason?: string;
  input_tokens: number;
  output_tokens: number;
  cached_input_tokens: number;
  reasoning_tokens: number;
  /** Tokens charged to every scope (0 for a duplicate or a release). */
  charged_tokens: number;
  /** Cost in nano-USD (10⁻⁹ USD); null when the model has no known price. */
  cost_nano_usd: number | null;
}

export type UsageRecord = DecisionRecord | SettleRecord;

function clip(s: string): string {
  return s.length > MAX_NAME_CHARS ? `${s.slice(0, MAX_NAME_CHARS)}…` : s;
}

/** The record of a decision event. */
export function decisionRecord(e: DecisionEvent, config: ResolvedConfig): DecisionRecord {
  const r: DecisionRecord = {
    v: USAGE_LOG_VERSION,
    type: "decision",
    time: new Date(e.atMs).toISOString(),
    time_ms: e.atMs,
    id: clip(lineId(e)),
    feature: clip(e.feature),
    user: clip(e.user),
    tier: clip(e.tier),
    model: e.model === "" ? null : clip(e.model),
    decision: e.decision,
    code: e.code ?? null,
  };
  if (e.requestId !== undefined) r.request_id = clip(e.requestId);
  if (e.decision !== "reject") r.store = e.storeStatus ?? "ok";
  if (e.messageCount !== undefined) r.messages = e.messageCount;
  if (e.inputTokensBefore !== undefined) {
    r.input_tokens_before = e.inputTokensBefore;
    if (e.inputTokensBeforeCapped) r.input_tokens_before_capped = true;
    if (e.inputTokensFloor !== undefined) r.input_tokens_floor = e.inputTokensFloor;
  }
  if (e.inputTokens !== undefined) r.input_tokens = e.inputTokens;
  if (e.maxOutputTokens !== undefined) {
    const f = Object.hasOwn(config.features, e.feature) ? config.features[e.feature] : undefined;
    if (f) r.max_input = f.maxInputTokens;
  }
  if (e.trimmedMessages !== undefined) r.trimmed_messages = e.trimmedMessages;
  if (e.truncatedMessages !== undefined) r.truncated_messages = e.truncatedMessages;
  if (e.summarized !== undefined) r.summarized = e.summarized;
  if (e.requestedMaxOutputTokens !== undefined) r.max_output_requested = e.requestedMaxOutputTokens;
  if (e.maxOutputTokens !== undefined) r.max_output = e.maxOutputTokens;
  if (e.n !== undefined) r.n = e.n;
  if (e.reservedTokens !== undefined) r.reserved_tokens = e.reservedTokens;
  if (e.unpricedModel !== undefined) r.unpriced = true;
  return r;
}

/** The record of a settlement event. */
export function settleRecord(e: SettleEvent): SettleRecord {
  const u = e.usage;
  const r: SettleRecord = {
    v: USAGE_LOG_VERSION,
    type: "settle",
    time: new Date(e.atMs).toISOString(),
    time_ms: e.atMs,
    id: clip(e.reservationId),
    feature: clip(e.feature),
    user: clip(e.user),
    tier: clip(e.tier),
    model: clip(e.model),
    status: e.status,
    usage_source: u === undefined ? "none" : e.usageEstimated !== undefined ? "estimate" : "provider",
    input_tokens: u?.inputTokens ?? 0,
    output_tokens: u?.outputTokens ?? 0,
    cached_input_tokens: u?.cachedInputTokens ?? 0,
    reasoning_tokens: u?.reasoningTokens ?? 0,
    charged_tokens: e.chargedTokens,
    cost_nano_usd: u === undefined ? 0 : (e.costNanoUsd ?? null),
  };
  if (e.id !== e.reservationId) r.request_id = clip(e.id);
  if (u !== undefined && e.usageEstimated !== undefined) r.estimate_reason = clip(e.usageEstimated);
  return r;
}

/**
 * Characters a name may hold to be written between quotes as is (no JSON escaping needed). Names
 * from the config and generated ids always match; anything else goes through JSON.stringify.
 */
const PLAIN = /^[A-Za-z0-9_.:@+/ -]*$/;

function str(s: string): string {
  const c = clip(s);
  return PLAIN.test(c) ? `"${c}"` : JSON.stringify(c);
}

/** ISO text of the second last formatted (a request rate of thousands per second shares it). */
let isoSecond = Number.NaN;
let isoPrefix = "";

/** `new Date(ms).toISOString()`, formatting the date only when the second changes. */
export function isoTime(ms: number): string {
  const second = Math.floor(ms / 1000);
  if (second !== isoSecond) {
    isoSecond = second;
    isoPrefix = new Date(second * 1000).toISOString().slice(0, 20); // "2026-11-24T12:00:00."
  }
  const milli = ms - second * 1000;
  return `${isoPrefix}${milli < 10 ? "00" : milli < 100 ? "0" : ""}${milli}Z`;
}

/**
 * A decision line's `id`: the reservation's id; a refusal has none, and its event id is the
 * caller's requestId when one was given (which may repeat), so a refusal then gets one of its own.
 */
function lineId(e: DecisionEvent): string {
  if (e.reservationId !== undefined) return e.reservationId;
  if (e.requestId === undefined || e.id !== e.requestId) return e.id;
  let id = refusalIds.get(e);
  if (id === undefined) {
    id = randomUUID();
    refusalIds.set(e, id);
  }
  return id;
}

/** The id given to each refusal event (the same in its record and its line). */
const refusalIds = new WeakMap<DecisionEvent, string>();

/**
 * The JSON line of a decision: the same document as `JSON.stringify(decisionRecord(e, config))`,
 * built as text. Why: it runs for every request inside `admit`; building the object and serialising
 * it cost about twice as much (a test checks that both agree).
 */
export function decisionLine(e: DecisionEvent, config: ResolvedConfig): string {
  let l = `{"v":${USAGE_LOG_VERSION},"type":"decision","time":"${isoTime(e.atMs)}","time_ms":${e.atMs},"id":${str(lineId(e))},"feature":${str(e.feature)},"user":${str(e.user)},"tier":${str(e.tier)},"model":${e.model === "" ? "null" : str(e.model)},"decision":"${e.decision}","code":${e.code === undefined ? "null" : str(e.code)}`;
  if (e.requestId !== undefined) l += `,"request_id":${str(e.requestId)}`;
  if (e.decision !== "reject") l += `,"store":"${e.storeStatus ?? "ok"}"`;
  if (e.messageCount !== undefined) l += `,"messages":${e.messageCount}`;
  if (e.inputTokensBefore !== undefined) {
    l += `,"input_tokens_before":${e.inputTokensBefore}`;
    if (e.inputTokensBeforeCapped) l += `,"input_tokens_before_capped":true`;
    if (e.inputTokensFloor !== undefined) l += `,"input_tokens_floor":${e.inputTokensFloor}`;
  }
  if (e.inputTokens !== undefined) l += `,"input_tokens":${e.inputTokens}`;
  if (e.maxOutputTokens !== undefined) {
    const f = Object.hasOwn(config.features, e.feature) ? config.features[e.feature] : undefined;
    if (f) l += `,"max_input":${f.maxInputTokens}`;
  }
  if (e.trimmedMessages !== undefined) l += `,"trimmed_messages":${e.trimmedMessages}`;
  if (e.truncatedMessages !== undefined) l += `,"truncated_messages":${e.truncatedMessages}`;
  if (e.summarized !== undefined) l += `,"summarized":${e.summarized}`;
  if (e.requestedMaxOutputTokens !== undefined) l += `,"max_output_requested":${e.requestedMaxOutputTokens}`;
  if (e.maxOutputTokens !== undefined) l += `,"max_output":${e.maxOutputTokens}`;
  if (e.n !== undefined) l += `,"n":${e.n}`;
  if (e.reservedTokens !== undefined) l += `,"reserved_tokens":${e.reservedTokens}`;
  if (e.unpricedModel !== undefined) l += `,"unpriced":true`;
  return `${l}}\n`;
}

/** The JSON line of a settlement: the same document as `JSON.stringify(settleRecord(e))`, as text. */
export function settleLine(e: SettleEvent): string {
  const u = e.usage;
  const source = u === undefined ? "none" : e.usageEstimated !== undefined ? "estimate" : "provider";
  const cost = u === undefined ? 0 : (e.costNanoUsd ?? null);
  let l = `{"v":${USAGE_LOG_VERSION},"type":"settle","time":"${isoTime(e.atMs)}","time_ms":${e.atMs},"id":${str(e.reservationId)},"feature":${str(e.feature)},"user":${str(e.user)},"tier":${str(e.tier)},"model":${str(e.model)},"status":${str(e.status)},"usage_source":"${source}"`;
  if (u !== undefined && e.usageEstimated !== undefined) l += `,"estimate_reason":${str(e.usageEstimated)}`;
  l += `,"input_tokens":${u?.inputTokens ?? 0},"output_tokens":${u?.outputTokens ?? 0},"cached_input_tokens":${u?.cachedInputTokens ?? 0},"reasoning_tokens":${u?.reasoningTokens ?? 0},"charged_tokens":${e.chargedTokens},"cost_nano_usd":${cost}`;
  if (e.id !== e.reservationId) l += `,"request_id":${str(e.id)}`;
  return `${l}}\n`;
}
