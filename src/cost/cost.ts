import type { PriceConfig } from "../config/types.js";
import type { Usage } from "../core/types.js";

/**
 * The cost of a request in nano-USD, from integer prices (pico-USD per token): cached input at the
 * cached rate (the input rate when none is known), the rest of the input at the input rate, output
 * at the output rate, and reasoning tokens (part of the output) at the reasoning rate when one is
 * configured. Rounded up once per request to whole nano-USD, so per-request costs are integers
 * whose sums equal the counters exactly.
 */
export function costNanoUsd(usage: Usage, price: PriceConfig): number {
  const cached = Math.min(usage.cachedInputTokens, usage.inputTokens);
  const reasoning =
    price.reasoningPicoUsdPerToken === undefined ? 0 : Math.min(usage.reasoningTokens, usage.outputTokens);
  const pico =
    (usage.inputTokens - cached) * price.inputPicoUsdPerToken +
    cached * (price.cachedInputPicoUsdPerToken ?? price.inputPicoUsdPerToken) +
    (usage.outputTokens - reasoning) * price.outputPicoUsdPerToken +
    reasoning * (price.reasoningPicoUsdPerToken ?? 0);
  return Math.ceil(pico / 1000);
}

/** The most a reservation can cost (all input uncached, the whole output cap × n). */
export function maxCostNanoUsd(inputTokens: number, outputTokens: number, price: PriceConfig): number {
  return Math.ceil(
    (inputTokens * price.inputPicoUsdPerToken + outputTokens * price.outputPicoUsdPerToken) / 1000,
  );
}
