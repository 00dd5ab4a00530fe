import type { Admission } from "../core/engine.js";
import { createLogger, type Logger } from "../core/logger.js";
import type { OpenAIUsage } from "../core/types.js";
import { chargeableUsage } from "../core/usage.js";
import { tokenizerForModel } from "../tokenizers/index.js";

/**
 * How the library wrappers (the `openai` client wrapper and the AI SDK middleware) settle what the
 * provider reported, or an estimate when it reported nothing usable: the same rules in both.
 */
export interface WrapperSettlement {
  /**
   * The provider's usage when the engine can charge it, else undefined (the caller falls back to an
   * estimate). Why: settling a usage the engine refuses rejects and leaves the reservation held
   * until it expires uncharged, although the provider generated (and billed) the output.
   * Logs why when the usage is invalid, or missing and `warnIfMissing`.
   */
  usable(reported: unknown, a: Admission, warnIfMissing: boolean): OpenAIUsage | undefined;
  /** Logs a settlement that failed where its error must not replace another (a provider's, a cancel). */
  failed(a: Admission): (e: unknown) => void;
}

/**
 * The wrappers' logger when none was given: the default one, or, when TOKENFUSE_LOG_LEVEL is not a
 * level, the default one at info. Why not throw: this runs while a paid answer is being settled, and
 * a bad variable must not turn that answer into an error (createTokenfuse says it where it matters).
 */
function fallbackLogger(): Logger {
  try {
    return createLogger();
  } catch {
    return createLogger("info");
  }
}

export function wrapperSettlement(logger: Logger | undefined): WrapperSettlement {
  let log = logger;
  return {
    usable(reported, a, warnIfMissing) {
      const r = chargeableUsage(reported);
      if (r.usage) return r.usage;
      if (r.problem === "invalid usage reported" || warnIfMissing) {
        log ??= fallbackLogger();
        // The same fields as the gateway's "settled from an estimate" line.
        log.warn(
          {
            id: a.id,
            feature: a.feature,
            reason: r.problem,
            ...(r.detail ? { usageProblem: r.detail } : {}),
          },
          `${r.problem}; settling from an estimate`,
        );
      }
      return undefined;
    },
    failed(a) {
      return (e) => {
        log ??= fallbackLogger();
        log.error(
          { id: a.id, feature: a.feature, err: e instanceof Error ? e.message : String(e) },
          "settlement failed",
        );
      };
    },
  };
}

/**
 * The estimate charged when a call ended normally but its usage could not be charged: the input
 * and the whole output cap (× n). Conservative: the provider did answer, and what it generated
 * (reasoning included) is not known.
 */
export function fullCapEstimate(a: Admission, n = 1): OpenAIUsage {
  return { prompt_tokens: a.inputTokens, completion_tokens: a.maxOutputTokens * n };
}

/**
 * The estimate charged when the provider answered but its stream stopped early (cancelled, cut,
 * failed) without a usable usage: the input, which the provider processed, and the output that
 * passed, counted up to what the reservation allowed for output (as the gateway does; counting
 * stops there). Never a release: the provider answered, so it bills at least the input, even when
 * no output passed yet (a reasoning model still thinking, a cut before the first chunk).
 */
export function passedOutputEstimate(a: Admission, choices: ReadonlyArray<readonly string[]>): OpenAIUsage {
  // `choices`: the pieces that passed, per choice. Each choice is counted apart: the choices of
  // n > 1 stream interleaved, and as one string their pieces would merge into other tokens.
  const allowance = a.reservedTokens - a.inputTokens;
  let out = 0;
  for (const pieces of choices) {
    if (out >= allowance) break;
    const text = pieces.join("");
    if (text !== "") out += tokenizerForModel(a.model).countTextUpTo(text, allowance - out);
  }
  return { prompt_tokens: a.inputTokens, completion_tokens: Math.min(out, allowance) };
}

/**
 * Whether an error thrown by a provider call shows that the provider answered (a 2xx status whose
 * body then failed: cut mid-body, unreadable), as the AI SDK's `APICallError` ("Failed to process
 * successful response") and the `openai` client's errors carry it. Then the call is charged; any
 * other failure (a refusal with a 4xx/5xx status, no answer at all) releases the reservation.
 */
export function providerAnswered(e: unknown): boolean {
  if (typeof e !== "object" || e === null) return false;
  const status =
    (e as { statusCode?: unknown; status?: unknown }).statusCode ?? (e as { status?: unknown }).status;
  return typeof status === "number" && status >= 200 && status < 300;
}
