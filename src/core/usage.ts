import type { OpenAIUsage, Usage } from "./types.js";

function count(name: string, v: unknown): number {
  if (v === undefined || v === null) return 0;
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0) {
    throw new TypeError(`usage.${name} must be a non-negative integer, got ${JSON.stringify(v)}`);
  }
  return v;
}

/**
 * Normalises a provider's usage object (OpenAI shape, details included) to integers; when it only
 * says `total_tokens`, `sentInputTokens` (the request's own input count) splits it.
 * Throws a TypeError for values that are not non-negative integers: a malformed usage must not be
 * silently read as zero (that would under-charge).
 */
export function normalizeUsage(u: OpenAIUsage, sentInputTokens?: number): Usage {
  if (typeof u !== "object" || u === null) throw new TypeError("usage must be an object");
  let inputTokens = count("prompt_tokens", u.prompt_tokens);
  let outputTokens = count("completion_tokens", u.completion_tokens);
  const total = count("total_tokens", u.total_tokens);
  const hasInput = u.prompt_tokens != null;
  const hasOutput = u.completion_tokens != null;
  if (!hasInput && !hasOutput) {
    if (u.total_tokens == null)
      throw new TypeError("usage has no prompt_tokens, completion_tokens or total_tokens");
    // Only a total was reported. With the input count of what was sent (`sentInputTokens`, the
    // engine's count), the input is that much of it and the rest is output; without it, all input.
    // Why: output costs 4-8× input, so a total priced as input under-charged a request ~4×.
    inputTokens = sentInputTokens === undefined ? total : Math.min(sentInputTokens, total);
    outputTokens = total - inputTokens;
  } else if (u.total_tokens != null && (!hasInput || !hasOutput)) {
    // One side and the total: the other side is the difference (else it would go uncharged).
    const known = hasInput ? inputTokens : outputTokens;
    if (total < known)
      throw new TypeError(
        `usage.total_tokens (${total}) is less than the ${hasInput ? "prompt" : "completion"} tokens (${known})`,
      );
    if (hasInput) outputTokens = total - inputTokens;
    else inputTokens = total - outputTokens;
  }
  // Each count is a safe integer; their sum must be too, or no store can charge it exactly.
  if (!Number.isSafeInteger(inputTokens + outputTokens))
    throw new TypeError("usage is too large: prompt_tokens + completion_tokens exceeds 2^53 - 1");
  return {
    inputTokens,
    outputTokens,
    cachedInputTokens: count("prompt_tokens_details.cached_tokens", u.prompt_tokens_details?.cached_tokens),
    reasoningTokens: count(
      "completion_tokens_details.reasoning_tokens",
      u.completion_tokens_details?.reasoning_tokens,
    ),
  };
}

/** Tokens a usage charges against token budgets: input + output (reasoning is part of output). */
export function chargedTokens(u: Usage): number {
  return u.inputTokens + u.outputTokens;
}

/**
 * A provider's reported usage when tokenfuse can charge it as is; otherwise `problem` says why not
 * (a fixed phrase, usable as a metric label) and `detail` what was wrong.
 * Why: a provider that answered has generated (and billed) its output; when its usage is missing or
 * malformed, the caller must settle from an estimate of what passed, never fail the settlement
 * (which would release the whole reservation and charge nothing).
 */
export function chargeableUsage(
  reported: unknown,
):
  | { usage: OpenAIUsage; problem?: undefined; detail?: undefined }
  | { usage?: undefined; problem: "no usage reported" | "invalid usage reported"; detail?: string } {
  if (reported === undefined || reported === null) return { problem: "no usage reported" };
  try {
    normalizeUsage(reported as OpenAIUsage);
    return { usage: reported as OpenAIUsage };
  } catch (e) {
    return { problem: "invalid usage reported", detail: (e as Error).message };
  }
}
