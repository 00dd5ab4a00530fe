import { randomUUID } from "node:crypto";
import type { FeatureConfig, ResolvedConfig, TierConfig } from "../config/types.js";
import { costNanoUsd } from "../cost/cost.js";
import { formatUsd } from "../cost/format-usd.js";
import { type PriceTable, priceForInput } from "../cost/price-table.js";
import {
  applyInputPolicy,
  INPUT_MEASURE_FACTOR,
  INPUT_MEASURE_LOOKUPS,
  type InputMeasure,
  measureInput,
  type Summarizer,
  summaryRequestMessages,
} from "../policies/input-policy.js";
import {
  isStoreUnavailable,
  type ScopeCharge,
  type ScopeState,
  type SettleStatus,
  type Store,
} from "../stores/types.js";
import type { SwitchBoard } from "../switches/switch-board.js";
import type { ChatTokenizer } from "../tokenizers/types.js";
import { TokenBudgetError } from "./errors.js";
import type { GlobalCostCap } from "./global-cost-cap.js";
import type { Logger } from "./logger.js";
import { type AdmitRequest, outputCap, validateAdmitRequest } from "./request.js";
import { createScopeCache, NO_LIMIT, refusalCode, scopesFor, spendKeys } from "./scopes.js";
import type { ChatMessage, Clock, Decision, OpenAIUsage, Usage } from "./types.js";
import { chargeableUsage, chargedTokens, normalizeUsage } from "./usage.js";
import { hourWindow } from "./windows.js";

/** What a request was admitted with; settle it exactly once after the provider call. */
export interface Admission {
  /** Reservation id (the request id). */
  id: string;
  feature: string;
  user: string;
  tier: string;
  /** Messages to send (possibly trimmed, truncated or summarized). */
  messages: ChatMessage[];
  /** Model to call. */
  model: string;
  /** Output cap to send as `max_tokens` / `max_completion_tokens`. */
  maxOutputTokens: number;
  /** Input tokens of `messages` (what the provider will report as `prompt_tokens` for exact models). */
  inputTokens: number;
  /** False when the model has no public tokenizer and `inputTokens` is a conservative estimate. */
  inputTokensExact: boolean;
  /** Tokens reserved in every scope: input + output cap × n. */
  reservedTokens: number;
  decision: Exclude<Decision, "reject">;
  /** Messages dropped by the input policy. */
  trimmedMessages: number;
  /** Messages whose text was shortened (`truncate`). */
  truncatedMessages: number;
  /** True when dropped turns were replaced by a summary. */
  summarized: boolean;
  /**
   * `ok`, or how the reservation was admitted while the shared store was unreachable (SPEC §4
   * `on_error`): `store_unavailable` (allow: not counted until the store is back) or `local`
   * (within this process's safety cap).
   */
  storeStatus: "ok" | "store_unavailable" | "local";
  /** Limits and counters of the user's daily budget after this reservation (for rate-limit headers). */
  userDay: { limit: number; remaining: number; resetAtMs: number };
  /**
   * Settle with the provider's usage (OpenAI shape). Call with no usage when the call failed before
   * any output: the whole reservation is released. Idempotent: later calls return "duplicate".
   * Pass `{ estimated }` when the usage is your estimate rather than the provider's report (it is
   * charged the same; the usage log and events say so).
   */
  settle(usage?: OpenAIUsage | null, options?: SettleOptions): Promise<SettlementResult>;
}

/** Options of {@link Admission.settle}. */
export interface SettleOptions {
  /**
   * The usage is an estimate (the provider reported none, or none that could be charged): `true`,
   * or a short fixed reason such as `"client disconnected"` (it goes to the usage log; no content).
   */
  estimated?: boolean | string | undefined;
}

/** What a settlement did. */
export interface SettlementResult {
  status: SettleStatus;
  /** Tokens charged to every scope. */
  chargedTokens: number;
  usage?: Usage;
  /** Cost of the reported usage in nano-USD (absent when the model has no price). */
  costNanoUsd?: number;
}

/** Calls the provider for a summary (the raw call; the engine budgets it under `summarize_with`). */
export type SummaryProvider = (req: {
  /** The `summarize_with` feature the call is budgeted under. */
  feature: string;
  model: string;
  messages: ChatMessage[];
  maxOutputTokens: number;
}) => Promise<{ text: string; usage?: OpenAIUsage | null }>;

/** Everything the engine needs, injected (ARCHITECTURE §1: a pure core). */
export interface EngineDeps {
  config: ResolvedConfig;
  store: Store;
  switches: SwitchBoard;
  clock: Clock;
  logger: Logger;
  tokenizerFor(model: string): ChatTokenizer;
  /** Prices per model (config overrides, then the maintained table). */
  prices: PriceTable;
  summaryProvider?: SummaryProvider | undefined;
  newId?: () => string;
  /** How long an unsettled reservation lives (ms), per feature. */
  reservationTtlMs(feature: FeatureConfig): number;
  /** Observer of decisions and settlements (metrics, usage log). */
  events?: EngineEvents | undefined;
  /**
   * Count the whole input of requests over `max_input` (up to 4 × `max_input`) for the decision
   * event's `inputTokensBefore` / `inputTokensFloor` (the usage log asks for it). Without it those
   * are absent for such requests: the input policy itself never counts past the cap.
   */
  measureInputs?: boolean | undefined;
  /** `global.hourly_cost_usd`, when the config sets it: refuses every request once the hour's spend reached it. */
  globalCostCap?: GlobalCostCap | undefined;
  /** Called after a settlement added spend to the store (cost thresholds, alerts); must not throw. */
  afterSpend?: ((e: { feature: string; atMs: number; costNanoUsd: number }) => Promise<void>) | undefined;
}

/** A decision, as reported to {@link EngineEvents}. */
export interface DecisionEvent {
  /** The request id: the caller's `requestId`, else a generated one (`Admission.id`). */
  id: string;
  /**
   * Unique id of this admission's reservation (admitted requests only): equal to `id` unless the
   * caller passed a `requestId`, which may repeat; the settlement of this admission carries it too.
   */
  reservationId?: string;
  /** Set when the caller passed its own `requestId` (then equal to `id`). */
  requestId?: string;
  atMs: number;
  feature: string;
  user: string;
  tier: string;
  /** The model the request uses (empty when refused before its feature was known). */
  model: string;
  decision: Decision;
  code?: string;
  /**
   * Set when the shared store was unreachable: admitted in `allow` mode (`store_unavailable`) or
   * within this process's share (`local`); on a refusal, refused for it (`budget_store_unavailable`
   * in `deny` mode, or this process's share used up in `local` mode).
   */
  storeStatus?: "store_unavailable" | "local";
  /** Input tokens sent (after the input policy); also on refusals once counted. */
  inputTokens?: number;
  /**
   * Input tokens as the caller sent them, before the input policy (equal to `inputTokens` unless the
   * input was over `max_input`); counted up to 4 × `max_input`, see `inputTokensBeforeCapped`.
   */
  inputTokensBefore?: number;
  /** True when the input was larger than the count's bound: `inputTokensBefore` is a lower bound. */
  inputTokensBeforeCapped?: boolean;
  /**
   * When the input was over `max_input`: the tokens no trimming can drop (tools, system messages, the
   * newest user turn on).
   */
  inputTokensFloor?: number;
  reservedTokens?: number;
  trimmedMessages?: number;
  /** Messages whose text was shortened (`truncate`). */
  truncatedMessages?: number;
  /** True when dropped turns were replaced by a summary. */
  summarized?: boolean;
  /** Output cap applied (the feature's `max_output`, lowered to the caller's). */
  maxOutputTokens?: number;
  /** The caller's own output cap (`max_tokens` / `max_completion_tokens`, the smaller), if any. */
  requestedMaxOutputTokens?: number;
  /** Choices asked for (`n`, default 1). */
  n?: number;
  /** Messages the caller sent (before any trimming). */
  messageCount?: number;
  /** Set when the model has no known price and was admitted under `unknown_price: allow_and_alert`. */
  unpricedModel?: string;
  /** On a refusal by a daily budget: that budget (it cannot take this request: exhausted for it). */
  exhausted?: { scope: "user" | "feature"; key: string; limit: number; committed: number; resetAtMs: number };
  /** Daily budgets with a limit, as committed (used + reserved) after this reservation. */
  dailyBudgets?: Array<{
    scope: "user" | "feature";
    key: string;
    limit: number;
    committed: number;
    resetAtMs: number;
  }>;
}

/** A settlement, as reported to {@link EngineEvents}. */
export interface SettleEvent {
  id: string;
  /** The reservation settled (the decision event's `reservationId`). */
  reservationId: string;
  atMs: number;
  feature: string;
  user: string;
  tier: string;
  model: string;
  status: SettleStatus;
  chargedTokens: number;
  /** The usage charged; absent when the call failed before any output (the reservation is released). */
  usage?: Usage;
  /** Set when `usage` is an estimate: the reason given to `settle` (`"estimated"` when none). */
  usageEstimated?: string;
  costNanoUsd?: number;
}

/** Observer interface for metrics and usage logs. */
export interface EngineEvents {
  decision(e: DecisionEvent): void;
  settled(e: SettleEvent): void;
}

/** One scope in a budget report (SPEC §6 `GET /v1/budget`). */
export interface BudgetWindow {
  limit: number | null;
  used: number;
  reserved: number;
  remaining: number | null;
  resets_at: string;
}

/**
 * An hourly cost cap in a budget report (a feature's or the global `hourly_cost_usd`): this UTC
 * hour's settled spend against it, in USD (from the store's integer nano-USD counters).
 */
export interface CostWindow {
  limit_usd: number;
  spent_usd: number;
  remaining_usd: number;
  resets_at: string;
}

/** The budget report (SPEC §6 `GET /v1/budget`; the library returns the same document). */
export interface BudgetReport {
  user: { id: string; tier: string; day: BudgetWindow; minute?: BudgetWindow };
  features: Record<
    string,
    {
      enabled: boolean;
      max_input: number;
      max_output: number;
      used_today: number;
      daily?: BudgetWindow;
      hourly_cost?: CostWindow;
    }
  >;
  global: { minute: BudgetWindow; hourly_cost?: CostWindow };
}

/** The policy engine: admit → (caller calls provider) → settle. */
export interface Engine {
  admit(req: AdmitRequest): Promise<Admission>;
  /**
   * Resolves once no settlement is under way (at once when none is): what closes the usage log
   * waits for it, so a settlement in flight at close still gets its line.
   */
  settlementsDone(): Promise<void>;
  remaining(q: {
    user: string;
    tier?: string | undefined;
    features?: string[] | undefined;
  }): Promise<BudgetReport>;
}

function describeScope(s: ScopeCharge): string {
  if (s.kind === "user")
    return s.window === "day" ? "user's daily token budget" : "user's tokens-per-minute limit";
  if (s.kind === "feature") return "feature's daily token budget";
  return "global tokens-per-minute limit";
}

/** What is known of a request's size once counted, for its decision event (refused or not). */
interface Sizes {
  messageCount: number;
  maxOutputTokens: number;
  requestedMaxOutputTokens: number | undefined;
  n: number;
  /** Set when the input was over `max_input`. */
  measure: InputMeasure | undefined;
  /** The input policy's result, when it admitted the input. */
  policy: Awaited<ReturnType<typeof applyInputPolicy>> | undefined;
  reservedTokens: number | undefined;
}

/** The caller's own output cap: the smaller of `max_tokens` and `max_completion_tokens`, if any. */
function requestedCap(req: AdmitRequest): number | undefined {
  const a = typeof req.maxTokens === "number" ? req.maxTokens : undefined;
  const b = typeof req.maxCompletionTokens === "number" ? req.maxCompletionTokens : undefined;
  if (a === undefined) return b;
  return b === undefined ? a : Math.min(a, b);
}

/** Copies what is known of a refused request's size onto its decision event. */
function addSizes(event: DecisionEvent, s: Sizes): void {
  event.messageCount = s.messageCount;
  event.maxOutputTokens = s.maxOutputTokens;
  if (s.requestedMaxOutputTokens !== undefined) event.requestedMaxOutputTokens = s.requestedMaxOutputTokens;
  event.n = s.n;
  const p = s.policy instanceof TokenBudgetError ? undefined : s.policy;
  if (p) {
    event.inputTokens = p.inputTokens;
    event.trimmedMessages = p.droppedMessages;
    event.truncatedMessages = p.truncatedMessages;
    event.summarized = p.summarized;
  }
  if (s.measure) {
    event.inputTokensBefore = s.measure.tokens;
    if (s.measure.capped) event.inputTokensBeforeCapped = true;
    event.inputTokensFloor = s.measure.floor;
  } else if (p && !p.reduced) {
    event.inputTokensBefore = p.inputTokens;
  }
  if (s.reservedTokens !== undefined) event.reservedTokens = s.reservedTokens;
}

/** Creates the engine over injected dependencies. */
export function createEngine(deps: EngineDeps): Engine {
  const { config, store, switches, clock, logger } = deps;
  const newId = deps.newId ?? randomUUID;
  const scopeCache = createScopeCache(config);

  const unpricedWarned = new Set<string>();
  /** allow_and_alert: an unpriced model is admitted, never silently (once per model and process). */
  function warnUnpriced(model: string): void {
    if (unpricedWarned.has(model)) return;
    unpricedWarned.add(model);
    logger.warn(
      { model },
      "model has no known price; admitted because unknown_price is allow_and_alert (its cost is not counted)",
    );
  }

  function tierOf(name: string | undefined): TierConfig {
    const tierName = name ?? config.defaultTier;
    const tier = config.tiers[tierName];
    if (!tier) {
      throw new TokenBudgetError({
        code: "invalid_request",
        message: `unknown tier "${tierName}"`,
        scope: "user",
      });
    }
    return tier;
  }

  function featureOf(name: string): FeatureConfig {
    const f = Object.hasOwn(config.features, name) ? config.features[name] : undefined;
    if (!f)
      throw new TokenBudgetError({
        code: "unknown_feature",
        message: `unknown feature "${name}"`,
        scope: "request",
      });
    return f;
  }

  function reject(
    e: TokenBudgetError,
    base: Omit<DecisionEvent, "decision" | "code" | "atMs">,
    extra: Pick<DecisionEvent, "exhausted" | "storeStatus"> = {},
    sizes?: Sizes,
  ): never {
    if (deps.events) {
      // Built without spreads, like the admitted decision (why: there); a flood of refusals must stay cheap.
      const event: DecisionEvent = {
        id: base.id,
        atMs: clock.nowMs(),
        feature: base.feature,
        user: base.user,
        tier: base.tier,
        model: base.model,
        decision: "reject",
        code: e.code,
      };
      if (base.requestId !== undefined) event.requestId = base.requestId;
      if (extra.exhausted) event.exhausted = extra.exhausted;
      if (extra.storeStatus) event.storeStatus = extra.storeStatus;
      if (sizes) addSizes(event, sizes);
      deps.events.decision(event);
    }
    throw e;
  }

  /**
   * Whether `req` at its largest (the feature's max_input plus its output cap × n) fits what its
   * scopes have left now. A read, not a reservation: another request may take the room first, and
   * then the request is refused as any other. A store that cannot be read answers false: with
   * on_error local the request would be admitted only into this process's share, which the summary
   * has just used, and with deny it is refused anyway; trimming costs nothing extra.
   */
  async function roomForRequest(
    req: AdmitRequest,
    tier: TierConfig,
    feature: FeatureConfig,
  ): Promise<boolean> {
    const nowMs = clock.nowMs();
    const need = feature.maxInputTokens + outputCap(feature.maxOutputTokens, req) * (req.n ?? 1);
    const scopes = scopeCache.scopes(feature, req.user, tier, nowMs);
    let states: ScopeState[];
    try {
      states = await store.read(
        scopes.map((s) => s.key),
        nowMs,
      );
    } catch {
      return false;
    }
    return scopes.every((s, i) => {
      const st = states[i];
      return st === undefined || st.used + st.reserved + need <= s.limit;
    });
  }

  function summarizerFor(
    req: AdmitRequest,
    tier: TierConfig,
    feature: FeatureConfig,
  ): Summarizer | undefined {
    const provider = deps.summaryProvider;
    const withName = feature.summarizeWith;
    if (!provider || !withName) return undefined;
    return async (dropped, maxTokens) => {
      // The summary call is a request of its own feature, budgeted like any other.
      const adm = await admit({
        feature: withName,
        user: req.user,
        tier: tier.name,
        messages: summaryRequestMessages(dropped),
        maxTokens,
      });
      // Its reservation made, the request itself must still fit: the summary shares the user's and
      // global budgets with it. Else the summary would be paid for and the request refused (and
      // again at every retry); released unused, the policy trims instead (SPEC: "does not fit, fall
      // back to trim"). Checked against the request's largest size (max_input + its output cap).
      if (!(await roomForRequest(req, tier, feature))) {
        await adm.settle(null); // nothing was sent
        throw new Error("no room left in the budgets for the request after its summary");
      }
      let out: Awaited<ReturnType<SummaryProvider>>;
      try {
        out = await provider({
          feature: withName,
          model: adm.model,
          messages: adm.messages,
          maxOutputTokens: adm.maxOutputTokens,
        });
      } catch (e) {
        await adm.settle(null); // the provider generated nothing
        throw e;
      }
      const text = typeof out.text === "string" ? out.text : "";
      const c = chargeableUsage(out.usage);
      if (c.usage) {
        await adm.settle(c.usage);
      } else {
        // The summary was generated (and billed): charge an estimate of it, never nothing.
        const allowance = adm.reservedTokens - adm.inputTokens;
        const generated = text === "" ? 0 : deps.tokenizerFor(adm.model).countTextUpTo(text, allowance);
        const completion = Math.min(generated, allowance);
        logger.warn(
          { id: adm.id, feature: withName, reason: c.problem, estimatedCompletionTokens: completion },
          "summary settled from an estimate",
        );
        await adm.settle(
          { prompt_tokens: adm.inputTokens, completion_tokens: completion },
          { estimated: c.problem },
        );
      }
      if (text === "") throw new Error("the summary call returned no text");
      return text;
    };
  }

  /** Settlements under way, and who waits for there to be none (`settlementsDone`). */
  let settling = 0;
  const idleWaiters: Array<() => void> = [];
  const settlementEnded = () => {
    settling--;
    if (settling === 0) for (const w of idleWaiters.splice(0)) w();
  };

  async function admit(req: AdmitRequest): Promise<Admission> {
    const invalid = validateAdmitRequest(req);
    const requestId = typeof req?.requestId === "string" ? req.requestId : undefined;
    const base: Omit<DecisionEvent, "decision" | "code" | "atMs"> = {
      id: requestId ?? newId(),
      feature: String(req?.feature),
      user: String(req?.user),
      tier: String(req?.tier ?? config.defaultTier),
      // Set once the feature is known: a refused request's model name is the caller's free text.
      model: "",
    };
    if (requestId !== undefined) base.requestId = requestId;
    if (invalid) reject(invalid, base);
    let feature: FeatureConfig;
    let tier: TierConfig;
    try {
      feature = featureOf(req.feature);
    } catch (e) {
      reject(e as TokenBudgetError, base);
    }
    const model = req.model && feature.allowedModels.includes(req.model) ? req.model : feature.model;
    base.model = model;
    try {
      tier = tierOf(req.tier);
    } catch (e) {
      reject(e as TokenBudgetError, base);
    }
    if (!switches.isEnabled(feature.name)) {
      reject(
        new TokenBudgetError({
          code: "feature_disabled",
          message: `feature "${feature.name}" is switched off`,
          scope: "feature",
        }),
        base,
      );
    }
    const capHit = deps.globalCostCap?.reached(clock.nowMs());
    if (capHit) {
      reject(
        new TokenBudgetError({
          code: "global_rate_limited",
          message: `the global hourly cost cap of ${formatUsd(capHit.capNanoUsd)} is reached (${formatUsd(capHit.spentNanoUsd)} spent this hour): every request is refused until ${new Date(capHit.resetAtMs).toISOString().slice(11, 16)}Z`,
          scope: "global",
          retryAfterMs: Math.max(0, capHit.resetAtMs - clock.nowMs()),
        }),
        base,
      );
    }
    // The price in force when the request is admitted (prices change on dates and at peak hours).
    const price = deps.prices.priceFor(model, clock.nowMs());
    if (!price) {
      if (config.unknownPrice === "reject") {
        reject(
          new TokenBudgetError({
            code: "price_unknown",
            message: `model "${model}" has no known price: add it under prices: in the config, or set unknown_price: allow_and_alert`,
            scope: "request",
          }),
          base,
        );
      }
      warnUnpriced(model);
    }
    const tokenizer = deps.tokenizerFor(model);
    // The policy's own message counts, reused when the input is measured (each costs a cache lookup).
    const counts: Array<number | undefined> | undefined = deps.measureInputs ? [] : undefined;
    const policy = await applyInputPolicy({
      messages: req.messages,
      tools: req.tools,
      maxInputTokens: feature.maxInputTokens,
      onExceed: feature.onExceed,
      tokenizer,
      summarizer: feature.onExceed === "summarize" ? summarizerFor(req, tier, feature) : undefined,
      counts,
    });
    const maxOutputTokens = outputCap(feature.maxOutputTokens, req);
    const n = req.n ?? 1;
    // Sizes for the decision event (usage log): the whole input is counted only when the input was
    // over the cap and the usage log asks for it, and only as far as a bound (why: measureInput).
    let sizes: Sizes | undefined;
    if (deps.events) {
      const over = policy instanceof TokenBudgetError || policy.reduced;
      sizes = {
        messageCount: req.messages.length,
        maxOutputTokens,
        requestedMaxOutputTokens: requestedCap(req),
        n,
        measure:
          over && counts
            ? measureInput(
                { messages: req.messages, tools: req.tools, tokenizer, counts },
                feature.maxInputTokens * INPUT_MEASURE_FACTOR,
                INPUT_MEASURE_LOOKUPS,
              )
            : undefined,
        policy: policy instanceof TokenBudgetError ? undefined : policy,
        reservedTokens: undefined,
      };
    }
    if (policy instanceof TokenBudgetError) reject(policy, base, {}, sizes);
    if (policy.summaryFallback) {
      logger.warn({ feature: feature.name, reason: policy.summaryFallback }, "summarize fell back to trim");
    }
    // Saturated: a huge max_output (an operator's "no cap") times n can pass 2^53, which no store can
    // hold; past NO_LIMIT the reservation is refused by any real budget, as it should be.
    const reservedTokens = Math.min(policy.inputTokens + maxOutputTokens * n, NO_LIMIT);
    if (sizes) sizes.reservedTokens = reservedTokens;
    const nowMs = clock.nowMs();
    // The store is keyed by an id made for this admission, never by the caller's requestId: a
    // reused requestId (a retry after the call was made, an id per conversation) is a new provider
    // call and must be charged; keyed by it, the store would answer "duplicate" and it would be free.
    // Resends of this admission's own store commands stay idempotent by this id.
    const storeId = req.requestId === undefined ? base.id : newId();
    const scopes = scopeCache.scopes(feature, req.user, tier, nowMs);
    let r: Awaited<ReturnType<Store["reserve"]>>;
    try {
      r = await store.reserve({
        id: storeId,
        tokens: reservedTokens,
        scopes,
        nowMs,
        ttlMs: deps.reservationTtlMs(feature),
      });
    } catch (e) {
      if (!isStoreUnavailable(e)) throw e;
      reject(
        new TokenBudgetError({
          code: "budget_store_unavailable",
          message: "the budget store is unavailable and on_error is deny",
          scope: "store",
          retryAfterMs: 1000,
        }),
        base,
        { storeStatus: "store_unavailable" },
        sizes,
      );
    }
    if (!r.ok) {
      const s = scopes[r.scopeIndex] as ScopeCharge;
      // The limit that refused: the scope's, or the per-process share of it while the shared store is down.
      const limit = r.limit ?? s.limit;
      const left = Math.max(0, limit - r.committed);
      // Larger than the whole limit of its window: no wait makes it fit, so no Retry-After (clients
      // would sleep until the window resets and be refused again), and not the budget's exhaustion.
      const never = r.limit === undefined && reservedTokens > s.limit;
      const needs = `request needs ${reservedTokens} tokens (${policy.inputTokens} input + ${maxOutputTokens}${n > 1 ? ` × ${n}` : ""} output)`;
      reject(
        new TokenBudgetError({
          code: refusalCode(s.kind),
          message: never
            ? `${needs}, more than the ${describeScope(s)} allows in all (${limit}): it can never fit; lower max_tokens or the input`
            : `${needs} but the ${describeScope(s)} has ${left} of ${limit} left${r.limit !== undefined ? " (this process's share while the budget store is unreachable)" : ""}`,
          scope: s.kind,
          limit,
          requested: reservedTokens,
          // This process's share refused while the store is down: the budget itself may have room,
          // and the store may be back in a moment, so not "until the window resets" (hours).
          retryAfterMs: never ? undefined : r.limit !== undefined ? 1000 : Math.max(0, s.resetAtMs - nowMs),
        }),
        base,
        // A refusal by this process's share while the store is down (r.limit) is not the budget's
        // exhaustion: reporting it so would spend the day's "exhausted" alert on a false one.
        r.limit !== undefined
          ? { storeStatus: "local" }
          : !never && s.window === "day" && (s.kind === "user" || s.kind === "feature")
            ? {
                exhausted: {
                  scope: s.kind,
                  key: s.key,
                  limit: s.limit,
                  committed: r.committed,
                  resetAtMs: s.resetAtMs,
                },
              }
            : {},
        sizes,
      );
    }
    if (r.duplicate) logger.warn({ id: base.id }, "reservation id seen before; nothing charged again");
    const decision = policy.reduced ? "trim" : "allow";
    if (r.degraded) {
      logger.warn(
        { id: base.id, feature: feature.name, user: req.user, onError: r.degraded },
        "admitted while the budget store is unavailable",
      );
    }
    if (deps.events) {
      // Why no object spreads here and in doSettle: V8 builds a spread-and-extend literal through a
      // slow generic path; with these events it was the engine's largest cost per request (profile
      // in docs/bench-gateway.md). Fixed fields first, the optional ones added only when present.
      const dailyBudgets: NonNullable<DecisionEvent["dailyBudgets"]> = [];
      for (let i = 0; i < scopes.length; i++) {
        const s = scopes[i] as ScopeCharge;
        if (s.window === "day" && s.limit !== NO_LIMIT && (s.kind === "user" || s.kind === "feature")) {
          dailyBudgets.push({
            scope: s.kind,
            key: s.key,
            limit: s.limit,
            committed: r.committed[i] ?? 0,
            resetAtMs: s.resetAtMs,
          });
        }
      }
      const event: DecisionEvent = {
        id: base.id,
        reservationId: storeId,
        atMs: nowMs,
        feature: base.feature,
        user: base.user,
        tier: base.tier,
        model: base.model,
        decision,
        inputTokens: policy.inputTokens,
        reservedTokens,
        trimmedMessages: policy.droppedMessages,
        truncatedMessages: policy.truncatedMessages,
        summarized: policy.summarized,
        maxOutputTokens,
        n,
        messageCount: req.messages.length,
        dailyBudgets,
      };
      if (requestId !== undefined) event.requestId = requestId;
      if (sizes?.requestedMaxOutputTokens !== undefined)
        event.requestedMaxOutputTokens = sizes.requestedMaxOutputTokens;
      if (sizes?.measure) {
        event.inputTokensBefore = sizes.measure.tokens;
        if (sizes.measure.capped) event.inputTokensBeforeCapped = true;
        event.inputTokensFloor = sizes.measure.floor;
      } else if (!policy.reduced) {
        event.inputTokensBefore = policy.inputTokens; // nothing was cut: what came in is what goes out
      }
      if (r.degraded) event.storeStatus = r.degraded === "allow" ? "store_unavailable" : "local";
      if (!price) event.unpricedModel = model;
      deps.events.decision(event);
    }
    const userDayCommitted = r.committed[0] ?? 0;
    const userDay = scopes[0] as ScopeCharge;
    let settled: Promise<SettlementResult> | undefined;
    const admission: Admission = {
      id: base.id,
      feature: feature.name,
      user: req.user,
      tier: tier.name,
      messages: policy.messages,
      model,
      maxOutputTokens,
      inputTokens: policy.inputTokens,
      inputTokensExact: tokenizer.exact,
      reservedTokens,
      decision,
      trimmedMessages: policy.droppedMessages,
      truncatedMessages: policy.truncatedMessages,
      summarized: policy.summarized,
      storeStatus: r.degraded === "allow" ? "store_unavailable" : r.degraded === "local" ? "local" : "ok",
      userDay: {
        limit: userDay.limit,
        remaining: Math.max(0, userDay.limit - userDayCommitted),
        resetAtMs: userDay.resetAtMs,
      },
      settle(usage, options) {
        // Exactly once: the first valid call decides; later calls get "duplicate" and charge nothing.
        if (settled) return settled.then((s) => ({ ...s, status: "duplicate" as const, chargedTokens: 0 }));
        let u: Usage | undefined;
        if (usage !== undefined && usage !== null) {
          try {
            u = normalizeUsage(usage, policy.inputTokens);
          } catch (e) {
            // Bad input changes nothing: the caller may still settle correctly.
            return Promise.reject(e);
          }
        }
        const est = options?.estimated;
        settling++;
        settled = doSettle(
          u,
          est === true ? "estimated" : typeof est === "string" && est !== "" ? est : undefined,
        );
        return settled;
      },
    };
    async function doSettle(u: Usage | undefined, estimated: string | undefined): Promise<SettlementResult> {
      try {
        const actual = u ? chargedTokens(u) : 0;
        // Saturated rather than refused: past 2^53 nano-USD ($9 million) the amount is beyond every
        // alert anyway, and a refused cost would leave the reservation unsettled.
        // Tiered prices: the tier of this request's input (e.g. past 200 000 tokens) prices all of it.
        const cost =
          u && price
            ? Math.min(costNanoUsd(u, priceForInput(price, u.inputTokens)), Number.MAX_SAFE_INTEGER)
            : undefined;
        const atMs = clock.nowMs();
        // Spend is added in the same atomic step as the settlement, so the hourly counters equal the
        // sum of per-request costs exactly (and a duplicate settlement adds nothing).
        const spend =
          u && actual > 0
            ? {
                costNanoUsd: cost ?? 0,
                inputTokens: u.inputTokens,
                outputTokens: u.outputTokens,
                counters: scopeCache.spendCounters(feature, model, req.user, tier, atMs),
              }
            : undefined;
        const status = await store.settle({
          id: storeId,
          actualTokens: actual,
          reservedTokens,
          scopes,
          nowMs: atMs,
          spend,
          generatedId: true,
        });
        // A duplicate was charged by the settlement it duplicates: this one charged nothing.
        const charged = status === "duplicate" ? 0 : actual;
        // The event goes out as soon as the store answered, before anything else is awaited: observers
        // (the usage log) then see settlements and decisions in the order the store applied them, so
        // a replay of the log decides as the store did.
        if (deps.events) {
          const event: SettleEvent = {
            id: base.id,
            reservationId: storeId,
            atMs,
            feature: feature.name,
            user: req.user,
            tier: tier.name,
            model,
            status,
            chargedTokens: charged,
          };
          if (u) event.usage = u;
          if (u && estimated !== undefined) event.usageEstimated = estimated;
          if (cost !== undefined) event.costNanoUsd = cost;
          deps.events.settled(event);
        }
        if (spend && (status === "settled" || status === "expired")) {
          await deps.afterSpend?.({ feature: feature.name, atMs, costNanoUsd: spend.costNanoUsd });
        }
        if (status === "expired") {
          logger.warn(
            { id: base.id, feature: feature.name },
            "settled after the reservation expired; charged the actual usage",
          );
        }
        const result: SettlementResult = { status, chargedTokens: charged };
        if (u) result.usage = u;
        if (cost !== undefined) result.costNanoUsd = cost;
        return result;
      } finally {
        // Counted until the store answered and the event went out (or it failed): see settlementsDone.
        settlementEnded();
      }
    }
    return admission;
  }

  async function remaining(q: {
    user: string;
    tier?: string | undefined;
    features?: string[] | undefined;
  }): Promise<BudgetReport> {
    if (typeof q?.user !== "string" || q.user === "") {
      throw new TokenBudgetError({
        code: "invalid_request",
        message: "user must be a non-empty string",
        scope: "request",
      });
    }
    const tier = tierOf(q.tier);
    const nowMs = clock.nowMs();
    const names = q.features ?? Object.keys(config.features);
    const features = names.map(featureOf);
    const first = features[0] ?? Object.values(config.features)[0];
    if (!first) throw new Error("config has no features");
    const base = scopesFor(config, first, q.user, tier, nowMs);
    const featureScopes = features.map(
      (f) => scopesFor(config, f, q.user, tier, nowMs).find((s) => s.kind === "feature") as ScopeCharge,
    );
    const userScopes = base.filter((s) => s.kind === "user");
    const globalScope = base.find((s) => s.kind === "global") as ScopeCharge;
    const all = [...userScopes, ...featureScopes, globalScope];
    // The hourly cost caps, read from this hour's spend counters beside the token scopes.
    const hour = hourWindow(nowMs);
    const capped = features.filter((f) => f.hourlyCostNanoUsd !== undefined);
    const globalCap = config.global.hourlyCostNanoUsd;
    const spendKeysRead = capped.map((f) => spendKeys.featureHour(f.name, hour.id));
    if (globalCap !== undefined) spendKeysRead.push(spendKeys.globalHour(hour.id));
    let states: Awaited<ReturnType<Store["read"]>>;
    let spent: Awaited<ReturnType<Store["readSpend"]>>;
    try {
      [states, spent] = await Promise.all([
        store.read(
          all.map((s) => s.key),
          nowMs,
        ),
        spendKeysRead.length > 0 ? store.readSpend(spendKeysRead) : [],
      ]);
    } catch (e) {
      if (!isStoreUnavailable(e)) throw e;
      throw new TokenBudgetError({
        code: "budget_store_unavailable",
        message: "the budget store is unavailable: budgets cannot be read",
        scope: "store",
        retryAfterMs: 1000,
      });
    }
    const win = (s: ScopeCharge, i: number): BudgetWindow => {
      const st = states[i] ?? { used: 0, reserved: 0 };
      const limited = s.limit !== NO_LIMIT;
      return {
        limit: limited ? s.limit : null,
        used: st.used,
        reserved: st.reserved,
        remaining: limited ? Math.max(0, s.limit - st.used - st.reserved) : null,
        // As in SPEC §6 ("2026-11-25T00:00:00Z"): window edges fall on whole seconds.
        resets_at: new Date(s.resetAtMs).toISOString().replace(".000Z", "Z"),
      };
    };
    const hourEnds = new Date(hour.endMs).toISOString().replace(".000Z", "Z");
    const costWin = (limitNano: number, i: number): CostWindow => {
      const spentNano = spent[i]?.costNanoUsd ?? 0;
      return {
        limit_usd: limitNano / 1e9,
        spent_usd: spentNano / 1e9,
        remaining_usd: Math.max(0, limitNano - spentNano) / 1e9,
        resets_at: hourEnds,
      };
    };
    const report: BudgetReport = {
      user: { id: q.user, tier: tier.name, day: win(userScopes[0] as ScopeCharge, 0) },
      features: {},
      global: { minute: win(globalScope, all.length - 1) },
    };
    if (globalCap !== undefined) report.global.hourly_cost = costWin(globalCap, capped.length);
    if (userScopes[1]) report.user.minute = win(userScopes[1], 1);
    features.forEach((f, j) => {
      const i = userScopes.length + j;
      const w = win(featureScopes[j] as ScopeCharge, i);
      report.features[f.name] = {
        enabled: switches.isEnabled(f.name),
        max_input: f.maxInputTokens,
        max_output: f.maxOutputTokens,
        used_today: w.used,
        ...(f.dailyTokens !== undefined ? { daily: w } : {}),
      };
    });
    capped.forEach((f, i) => {
      const entry = report.features[f.name];
      if (entry) entry.hourly_cost = costWin(f.hourlyCostNanoUsd as number, i);
    });
    return report;
  }

  return {
    admit,
    remaining,
    settlementsDone() {
      if (settling === 0) return Promise.resolve();
      return new Promise<void>((resolve) => idleWaiters.push(resolve));
    },
  };
}
