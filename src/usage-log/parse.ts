/**
 * Reads usage log lines back (for `tokenfuse simulate`): each line is checked against the record
 * shapes of record.ts, and a line that does not match gets one clear reason.
 */
import { type DecisionRecord, type SettleRecord, USAGE_LOG_VERSION } from "./record.js";

/** A line read back: the record, or why it is not one. */
export type ParsedLine = { ok: true; record: DecisionRecord | SettleRecord } | { ok: false; error: string };

const DECISIONS = new Set(["allow", "trim", "reject"]);
const SOURCES = new Set(["provider", "estimate", "none"]);
const STORE_STATUSES = new Set(["ok", "store_unavailable", "local"]);

/** Thrown inside the parser; caught and turned into `{ ok: false }`. */
class BadLine extends Error {}

function field(o: Record<string, unknown>, name: string): unknown {
  return Object.hasOwn(o, name) ? o[name] : undefined;
}

function str(o: Record<string, unknown>, name: string): string {
  const v = field(o, name);
  if (typeof v !== "string") throw new BadLine(`"${name}" must be a string`);
  return v;
}

function count(o: Record<string, unknown>, name: string): number {
  const v = field(o, name);
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0)
    throw new BadLine(`"${name}" must be a whole number ≥ 0`);
  return v;
}

/** The largest `time_ms` a Date can hold (±100 000 000 days from the epoch). */
const MAX_TIME_MS = 8.64e15;

function timeMs(o: Record<string, unknown>): number {
  const v = count(o, "time_ms");
  if (v > MAX_TIME_MS) throw new BadLine('"time_ms" is past the last date JavaScript can hold (8.64e15)');
  return v;
}

/** Sums that the replay adds must stay exact (the engine refuses usage past 2^53 − 1). */
function checkSum(what: string, ...values: number[]): void {
  let sum = 0;
  for (const v of values) sum += v;
  if (!Number.isSafeInteger(sum)) throw new BadLine(`${what} exceeds 2^53 − 1`);
}

function optionalCount(o: Record<string, unknown>, name: string): number | undefined {
  return field(o, name) === undefined ? undefined : count(o, name);
}

/** Parses one line of a usage log. */
export function parseUsageLine(text: string): ParsedLine {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { ok: false, error: "not valid JSON (a line cut short by a crash or a full disk?)" };
  }
  if (typeof value !== "object" || value === null || Array.isArray(value))
    return { ok: false, error: "not a JSON object" };
  const o = value as Record<string, unknown>;
  try {
    const v = field(o, "v");
    if (v !== USAGE_LOG_VERSION)
      throw new BadLine(`unsupported record version ${JSON.stringify(v)} (expected ${USAGE_LOG_VERSION})`);
    const type = field(o, "type");
    if (type === "decision") return { ok: true, record: decision(o) };
    if (type === "settle") return { ok: true, record: settle(o) };
    throw new BadLine('"type" must be "decision" or "settle"');
  } catch (e) {
    if (e instanceof BadLine) return { ok: false, error: e.message };
    throw e;
  }
}

// Records are built field by field, without spreads: a replay parses millions of lines, and V8
// builds spread literals through a slow generic path.

function decision(o: Record<string, unknown>): DecisionRecord {
  const decision = field(o, "decision");
  if (typeof decision !== "string" || !DECISIONS.has(decision))
    throw new BadLine('"decision" must be "allow", "trim" or "reject"');
  const model = field(o, "model");
  if (model !== null && typeof model !== "string") throw new BadLine('"model" must be a string or null');
  const code = field(o, "code");
  if (decision === "reject" ? typeof code !== "string" : code !== null)
    throw new BadLine('"code" must be a string on a reject and null otherwise');
  const r: DecisionRecord = {
    v: USAGE_LOG_VERSION,
    type: "decision",
    time: str(o, "time"),
    time_ms: timeMs(o),
    id: str(o, "id"),
    feature: str(o, "feature"),
    user: str(o, "user"),
    tier: str(o, "tier"),
    model: model as string | null,
    decision: decision as DecisionRecord["decision"],
    code: code as string | null,
  };
  const store = field(o, "store");
  if (store !== undefined) {
    if (typeof store !== "string" || !STORE_STATUSES.has(store))
      throw new BadLine('"store" must be "ok", "store_unavailable" or "local"');
    r.store = store as DecisionRecord["store"];
  }
  const before = optionalCount(o, "input_tokens_before");
  if (before !== undefined) {
    r.input_tokens_before = before;
    if (field(o, "input_tokens_before_capped") === true) r.input_tokens_before_capped = true;
    const floor = optionalCount(o, "input_tokens_floor");
    if (floor !== undefined) r.input_tokens_floor = floor;
    r.max_output = count(o, "max_output");
    r.n = count(o, "n");
    const maxInput = optionalCount(o, "max_input");
    if (maxInput !== undefined) r.max_input = maxInput;
  }
  const input = optionalCount(o, "input_tokens");
  if (input !== undefined) r.input_tokens = input;
  const trimmed = optionalCount(o, "trimmed_messages");
  if (trimmed !== undefined) r.trimmed_messages = trimmed;
  const requested = optionalCount(o, "max_output_requested");
  if (requested !== undefined) r.max_output_requested = requested;
  const reserved = optionalCount(o, "reserved_tokens");
  if (reserved !== undefined) r.reserved_tokens = reserved;
  if (r.max_output !== undefined && r.n !== undefined)
    checkSum('"input_tokens_before" + "max_output" × "n"', r.input_tokens_before ?? 0, r.max_output * r.n);
  if (decision !== "reject" && r.input_tokens === undefined)
    throw new BadLine('an admitted decision must have "input_tokens"');
  return r;
}

function settle(o: Record<string, unknown>): SettleRecord {
  const source = field(o, "usage_source");
  if (typeof source !== "string" || !SOURCES.has(source))
    throw new BadLine('"usage_source" must be "provider", "estimate" or "none"');
  const cost = field(o, "cost_nano_usd");
  if (cost !== null) count(o, "cost_nano_usd");
  const r: SettleRecord = {
    v: USAGE_LOG_VERSION,
    type: "settle",
    time: str(o, "time"),
    time_ms: timeMs(o),
    id: str(o, "id"),
    feature: str(o, "feature"),
    user: str(o, "user"),
    tier: str(o, "tier"),
    model: str(o, "model"),
    status: str(o, "status"),
    usage_source: source as SettleRecord["usage_source"],
    input_tokens: count(o, "input_tokens"),
    output_tokens: count(o, "output_tokens"),
    cached_input_tokens: count(o, "cached_input_tokens"),
    reasoning_tokens: count(o, "reasoning_tokens"),
    charged_tokens: count(o, "charged_tokens"),
    cost_nano_usd: cost as number | null,
  };
  checkSum('"input_tokens" + "output_tokens"', r.input_tokens, r.output_tokens);
  const reason = field(o, "estimate_reason");
  if (typeof reason === "string") r.estimate_reason = reason;
  return r;
}
