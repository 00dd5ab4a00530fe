/**
 * `tokenfuse simulate`: replays a usage log against a config. The real engine runs the replay — the
 * same scopes, windows, store arithmetic, prices and hourly breakers as in production — on a fresh
 * memory store and a clock driven by the log's timestamps, so daily and per-minute windows reset as
 * they would have. What the log cannot give back (it holds token counts, never messages) is
 * approximated as stated in {@link APPROXIMATIONS}.
 */
import type { ResolvedConfig } from "../config/types.js";
import { createConfiguredEngine, isolatedConfig } from "../configured-engine.js";
import type { Admission } from "../core/engine.js";
import { isTokenBudgetError } from "../core/errors.js";
import { silentLogger } from "../core/logger.js";
import type { ChatMessage, OpenAIUsage } from "../core/types.js";
import { createMemoryStore } from "../stores/memory-store.js";
import type { ChatTokenizer } from "../tokenizers/types.js";
import type { DecisionRecord, SettleRecord } from "./record.js";

/** What the replay cannot know from a log, and what it assumes instead (printed and documented). */
export const APPROXIMATIONS: readonly string[] = [
  "Token counts are taken from the log as they were counted then, whatever model the config now names.",
  "Input over the new max_input: on_exceed reject refuses it; trim and summarize keep it when the part no trimming can drop (system messages and the newest user turn, logged as input_tokens_floor) fits, counted at max_input (an upper bound: trimming keeps whole turns), else refuse it; an input under the cap it was logged with has no input_tokens_floor, and is assumed to fit (trimmed, counted at max_input); truncate is assumed to fit, at max_input. With max_input unchanged, the input the log shows after trimming is used as is.",
  "An input counted only up to 4 × max_input (input_tokens_before_capped) is taken at that lower bound.",
  "Settlements re-charge the logged usage: output capped at the new output cap × n when that cap is lower than the one it was sent with, and the new input count when it differs from what was sent then; costs use the config's prices.",
  "Summary calls are replayed as the log shows them (as requests of their summarize_with feature), whether or not the new config would summarize.",
  "Requests refused because the budget store was unavailable when logged (budget_store_unavailable) are not replayed (the replay's store is always up); they are listed apart.",
  "Requests admitted while the store was unavailable (store store_unavailable or local, on_error allow/local) are replayed against the full limits of an always-up store; they are counted apart.",
  "A log holds what one process decided: a log from one of several processes sharing a store under-counts shared budgets (merge the logs, sorted by time_ms, to replay them together).",
  "Requests refused before they were counted (unknown feature or tier, invalid request, feature switched off, unknown price) have no token counts and are not replayed; they are listed apart.",
  "A request the log shows refused but the config would admit was never called: it is charged as reserved (input + output cap × n), the most it could have cost.",
  "A request the log shows admitted but never settled (a crash, or still in flight when the log ends) keeps its reservation until it expires, as it did.",
  "Lines are replayed in file order on a clock that never moves back: a line older than one before it is replayed at the latest time seen (lines more than 2 s back are counted and warned about: sort the log by time_ms).",
  "Switches flipped by hand are not in the log: features start as the config's enabled says; hourly cost breakers trip as the replay's costs cross them.",
];

/** How far back a line may be from the latest one replayed before it is counted as out of order. */
export const LATE_TOLERANCE_MS = 2000;

/** Counts for one feature, or for all. */
export interface Tally {
  requests: number;
  allowed: number;
  trimmed: number;
  rejected: number;
  rejected_by_code: Record<string, number>;
  /** Tokens settled (charged), split by direction. */
  input_tokens: number;
  output_tokens: number;
  cost_nano_usd: number;
  /** Settlements of a model with no known price (their cost is not in `cost_nano_usd`). */
  unpriced_settlements: number;
}

/** Totals and per-feature tallies. */
export interface Tallies {
  total: Tally;
  features: Record<string, Tally>;
}

/** What a replay found. */
export interface SimulationReport {
  /** First and last instant of the log (ISO), or null for an empty log. */
  from: string | null;
  to: string | null;
  decisions: number;
  settlements: number;
  /** What would have happened with the config. */
  simulated: Tallies;
  /** What the log shows happened. */
  logged: Tallies;
  /** Decisions without token counts (refused before counting), by their logged code. */
  not_replayed: { requests: number; by_code: Record<string, number> };
  /** Admitted in the replay, but the log has no settlement for them. */
  unsettled: number;
  /** Refused in the log because the store was unavailable (budget_store_unavailable): not replayed. */
  store_unavailable_refusals: number;
  /** Admitted in the log while the store was unavailable (`store` other than ok), by that status. */
  degraded_admissions: { requests: number; by_store: Record<string, number> };
  /** Refused in the log, admitted in the replay: charged as reserved (no usage to replay). */
  charged_as_reserved: number;
  /** Lines more than {@link LATE_TOLERANCE_MS} older than the replay's clock (replayed at the clock). */
  late_lines: number;
  /** Settlement lines whose decision is not in the log (the log starts mid-flight). */
  orphan_settlements: number;
}

/**
 * A record without a prototype. Why: names come from the log (a refused request's feature is the
 * caller's text), and on a plain object `features["__proto__"]` would not be a key.
 */
function emptyRecord<T>(): Record<string, T> {
  return Object.create(null) as Record<string, T>;
}

function emptyTally(): Tally {
  return {
    requests: 0,
    allowed: 0,
    trimmed: 0,
    rejected: 0,
    rejected_by_code: emptyRecord(),
    input_tokens: 0,
    output_tokens: 0,
    cost_nano_usd: 0,
    unpriced_settlements: 0,
  };
}

function tallyOf(t: Tallies, feature: string): [Tally, Tally] {
  let f = Object.hasOwn(t.features, feature) ? t.features[feature] : undefined;
  if (!f) {
    f = emptyTally();
    t.features[feature] = f;
  }
  return [t.total, f];
}

function countDecision(t: Tallies, feature: string, decision: "allow" | "trim" | "reject", code?: string) {
  for (const x of tallyOf(t, feature)) {
    x.requests++;
    if (decision === "allow") x.allowed++;
    else if (decision === "trim") x.trimmed++;
    else {
      x.rejected++;
      const c = code ?? "unknown";
      x.rejected_by_code[c] = (x.rejected_by_code[c] ?? 0) + 1;
    }
  }
}

function countSettlement(t: Tallies, feature: string, input: number, output: number, cost: number | null) {
  for (const x of tallyOf(t, feature)) {
    x.input_tokens += input;
    x.output_tokens += output;
    if (cost === null) x.unpriced_settlements++;
    else x.cost_nano_usd += cost;
  }
}

/** A synthetic message: the replay's input, carrying its token count (the log has no text). */
interface CountedMessage extends ChatMessage {
  tf_tokens: number;
}

const tokensOf = (m: ChatMessage): number => (m as CountedMessage).tf_tokens ?? 0;

/**
 * Counts the replay's synthetic messages: each holds its count. Text (only estimated settlements of
 * summaries would count any) counts as nothing: the replay has none.
 */
const countingTokenizer: ChatTokenizer = {
  encoding: "estimate",
  exact: true,
  countText: () => 0,
  countTextUpTo: () => 0,
  truncateText: () => "",
  countMessage: tokensOf,
  countMessageUpTo: (m, limit) => Math.min(tokensOf(m), limit + 1),
  replyPrimingTokens: 0,
  countTools: () => 0,
  countChat: (messages) => messages.reduce((s, m) => s + tokensOf(m), 0),
  countChatDetailed: (messages) => {
    const parts = messages.map(tokensOf);
    return {
      tokens: parts.reduce((s, n) => s + n, 0),
      exact: true,
      messages: parts,
      replyPriming: 0,
      tools: 0,
    };
  },
};

/** The replay's input for one decision: tokens to send and whether that is a trim. */
function replayInput(rec: DecisionRecord, config: ResolvedConfig): { tokens: number; trimmed: boolean } {
  const before = rec.input_tokens_before as number;
  const f = Object.hasOwn(config.features, rec.feature) ? config.features[rec.feature] : undefined;
  if (!f || before <= f.maxInputTokens) return { tokens: before, trimmed: false };
  const cap = f.maxInputTokens;
  // Over the cap. `reject` refuses (the engine does, on a count over the cap it cannot trim).
  if (f.onExceed === "reject") return { tokens: before, trimmed: false };
  // Same cap as when logged: the same outcome (what trimming kept then, or the refusal).
  if (rec.max_input === cap && rec.input_tokens !== undefined)
    return { tokens: rec.input_tokens, trimmed: true };
  if (f.onExceed === "truncate") return { tokens: cap, trimmed: true };
  const floor = rec.input_tokens_floor;
  // No floor: the input was under the cap it was logged with, so nobody measured what trimming
  // must keep. Unknown: assume it fits (trimmed to the cap), as it usually does.
  if (floor === undefined || floor <= cap) return { tokens: cap, trimmed: true };
  return { tokens: cap + 1, trimmed: false }; // cannot fit: the engine refuses it (input_budget_exceeded)
}

interface Pending {
  admission: Admission;
  /** Input sent in the replay, and in the log. */
  input: number;
  loggedInput: number;
  /** The output cap the log shows (absent in logs that do not hold it). */
  loggedMaxOutput: number | undefined;
  n: number;
}

/** A replay in progress: feed it records in log order, then ask for the report. */
export interface Simulation {
  /** Replays one record (a decision is admitted or refused; a settlement is settled). */
  replay(record: DecisionRecord | SettleRecord): Promise<void>;
  /** Requests the replay holds state for (admitted and not settled yet): what its memory grows with. */
  held(): number;
  /** Ends the replay and returns what it found. */
  finish(): Promise<SimulationReport>;
}

/**
 * Starts a replay against `config`: a fresh memory store, the config's features, tiers, limits and
 * prices, no alert deliveries and no usage log (a simulation must not touch anything real).
 */
export async function createSimulation(
  config: ResolvedConfig,
  options: {
    /** Called with each replayed decision's outcome (tests compare them line by line). */
    onDecision?: (
      rec: DecisionRecord,
      outcome: { decision: "allow" | "trim" | "reject"; code?: string },
    ) => void;
    /** Called for each line more than {@link LATE_TOLERANCE_MS} older than the replay's clock. */
    onLate?: (rec: DecisionRecord | SettleRecord, behindMs: number) => void;
  } = {},
): Promise<Simulation> {
  let nowMs = 0;
  const store = createMemoryStore();
  const configured = createConfiguredEngine({
    config: isolatedConfig(config),
    store,
    logger: silentLogger,
    clock: { nowMs: () => nowMs },
    tokenizerFor: () => countingTokenizer,
  });
  await configured.ready;
  const { engine } = configured;

  const simulated: Tallies = { total: emptyTally(), features: emptyRecord() };
  const logged: Tallies = { total: emptyTally(), features: emptyRecord() };
  const notReplayed = { requests: 0, by_code: emptyRecord<number>() };
  let storeUnavailableRefusals = 0;
  const degraded = { requests: 0, by_store: emptyRecord<number>() };
  /** Admitted in the replay and not settled yet (by the log's id), or refused in it. */
  const open = new Map<string, Pending | "refused">();
  let from: number | undefined;
  let to = 0;
  let decisions = 0;
  let settlements = 0;
  let orphans = 0;
  let chargedAsReserved = 0;

  let late = 0;

  function advance(rec: DecisionRecord | SettleRecord): void {
    const ms = rec.time_ms;
    if (from !== undefined && nowMs - ms > LATE_TOLERANCE_MS) {
      late++;
      options.onLate?.(rec, nowMs - ms);
    }
    // Monotonic: lines written by concurrent requests can be a few ms out of order.
    if (ms > nowMs) nowMs = ms;
    if (from === undefined || ms < from) from = ms;
    if (ms > to) to = ms;
  }

  async function decide(rec: DecisionRecord): Promise<void> {
    decisions++;
    countDecision(logged, rec.feature, rec.decision, rec.code ?? undefined);
    if (rec.input_tokens_before === undefined) {
      notReplayed.requests++;
      const c = rec.code ?? "unknown";
      notReplayed.by_code[c] = (notReplayed.by_code[c] ?? 0) + 1;
      return;
    }
    if (rec.decision === "reject" && rec.code === "budget_store_unavailable") {
      // Refused because the store was down: the replay's store never is, and admitting it here
      // would charge a request that was never called. Not replayed; counted apart.
      storeUnavailableRefusals++;
      return;
    }
    if (rec.decision !== "reject" && rec.store !== undefined && rec.store !== "ok") {
      degraded.requests++;
      degraded.by_store[rec.store] = (degraded.by_store[rec.store] ?? 0) + 1;
    }
    const input = replayInput(rec, config);
    const message: CountedMessage = { role: "user", content: "", tf_tokens: input.tokens };
    try {
      const admission = await engine.admit({
        feature: rec.feature,
        user: rec.user,
        tier: rec.tier,
        model: rec.model ?? undefined,
        messages: [message],
        maxTokens: rec.max_output_requested,
        n: rec.n,
      });
      countDecision(simulated, rec.feature, input.trimmed ? "trim" : "allow");
      options.onDecision?.(rec, { decision: input.trimmed ? "trim" : "allow" });
      if (rec.decision === "reject") {
        // Never called, so no usage in the log: the most it could have cost.
        chargedAsReserved++;
        const r = await admission.settle({
          prompt_tokens: admission.inputTokens,
          completion_tokens: admission.reservedTokens - admission.inputTokens,
        });
        if (r.usage) {
          countSettlement(
            simulated,
            rec.feature,
            r.usage.inputTokens,
            r.usage.outputTokens,
            r.costNanoUsd ?? null,
          );
        }
        return;
      }
      open.set(rec.id, {
        admission,
        input: admission.inputTokens,
        loggedInput: rec.input_tokens ?? input.tokens,
        loggedMaxOutput: rec.max_output,
        n: rec.n ?? 1,
      });
    } catch (e) {
      if (!isTokenBudgetError(e)) throw e;
      countDecision(simulated, rec.feature, "reject", e.code);
      options.onDecision?.(rec, { decision: "reject", code: e.code });
      // Only a request the log shows admitted can have a settlement line to skip: remembering the
      // others would hold one entry per logged refusal for the whole replay.
      if (rec.decision !== "reject") open.set(rec.id, "refused");
    }
  }

  async function settle(rec: SettleRecord): Promise<void> {
    settlements++;
    if (rec.status !== "duplicate" && rec.usage_source !== "none") {
      countSettlement(logged, rec.feature, rec.input_tokens, rec.output_tokens, rec.cost_nano_usd);
    }
    if (rec.status === "duplicate") return;
    const p = open.get(rec.id);
    if (p === undefined) {
      orphans++;
      return;
    }
    open.delete(rec.id);
    if (p === "refused") return; // refused in the replay: never called, nothing to charge
    const a = p.admission;
    if (rec.usage_source === "none") {
      await a.settle();
      return;
    }
    // Capped only where the new config lowers the cap: an output above the cap it was sent with (the
    // provider went over it) is charged as logged when the cap did not change.
    const lowered = p.loggedMaxOutput === undefined || a.maxOutputTokens < p.loggedMaxOutput;
    const output = lowered ? Math.min(rec.output_tokens, a.maxOutputTokens * p.n) : rec.output_tokens;
    const input = p.input === p.loggedInput ? rec.input_tokens : p.input;
    const usage: OpenAIUsage = {
      prompt_tokens: input,
      completion_tokens: output,
      prompt_tokens_details: { cached_tokens: Math.min(rec.cached_input_tokens, input) },
      completion_tokens_details: { reasoning_tokens: Math.min(rec.reasoning_tokens, output) },
    };
    const r = await a.settle(usage, rec.usage_source === "estimate" ? { estimated: true } : undefined);
    if (r.usage)
      countSettlement(
        simulated,
        rec.feature,
        r.usage.inputTokens,
        r.usage.outputTokens,
        r.costNanoUsd ?? null,
      );
  }

  return {
    async replay(record) {
      advance(record);
      if (record.type === "decision") await decide(record);
      else await settle(record);
    },
    held: () => open.size,
    async finish() {
      let unsettled = 0;
      for (const p of open.values()) if (p !== "refused") unsettled++;
      await configured.close();
      await store.close();
      return {
        from: from === undefined ? null : new Date(from).toISOString(),
        to: from === undefined ? null : new Date(to).toISOString(),
        decisions,
        settlements,
        simulated,
        logged,
        not_replayed: notReplayed,
        unsettled,
        store_unavailable_refusals: storeUnavailableRefusals,
        degraded_admissions: degraded,
        charged_as_reserved: chargedAsReserved,
        orphan_settlements: orphans,
        late_lines: late,
      };
    },
  };
}
