import { calcPrice } from "@pydantic/genai-prices";
import { usdPerMillionToPicoUsdPerToken } from "../config/decimal-units.js";
import type { PriceConfig } from "../config/types.js";

/** Where a price came from. */
export type PriceSource = "config" | "genai-prices";

/** A model's price in pico-USD per token, and its source. */
export interface ModelPrice extends PriceConfig {
  source: PriceSource;
}

/** Looks up prices: the config's `prices:` overrides first, then the maintained table. */
export interface PriceTable {
  /** The price of `model`, or undefined when neither the config nor the table knows it. */
  priceFor(model: string): ModelPrice | undefined;
}

type TableValue = number | { base: number; tiers: Array<{ start: number; price: number }> } | undefined;

/**
 * USD per 1M tokens from a table value. Why the highest tier: tiered prices rise with the prompt's
 * length (e.g. past 200 000 tokens); using the top rate never counts a request as cheaper than it is.
 */
function perMillion(v: TableValue): number | undefined {
  if (typeof v === "number") return v;
  if (v && typeof v === "object" && typeof v.base === "number")
    return Math.max(v.base, ...v.tiers.map((t) => t.price));
  return undefined;
}

function pico(usdPerMillion: number | undefined): number | undefined {
  return usdPerMillion === undefined ? undefined : usdPerMillionToPicoUsdPerToken(usdPerMillion);
}

/**
 * The price table: `@pydantic/genai-prices` (the bundled, maintained data; no network at run time)
 * converted once per model to integer pico-USD per token, with config overrides.
 */
export function createPriceTable(
  overrides: Record<string, PriceConfig>,
  clock: () => Date = () => new Date(),
): PriceTable {
  const cache = new Map<string, ModelPrice | undefined>();
  return {
    priceFor(model) {
      const override = Object.hasOwn(overrides, model) ? overrides[model] : undefined;
      if (override) return { ...override, source: "config" };
      if (cache.has(model)) return cache.get(model);
      let price: ModelPrice | undefined;
      // calcPrice resolves the model's current (time-conditional) prices; the amounts are not used.
      const found = calcPrice({ input_tokens: 1, output_tokens: 1 }, model, { timestamp: clock() });
      if (found) {
        const p = found.model_price as Record<string, TableValue>;
        const input = pico(perMillion(p.input_mtok));
        const output = pico(perMillion(p.output_mtok));
        if (input !== undefined && output !== undefined) {
          const cached = pico(perMillion(p.cache_read_mtok));
          price = {
            inputPicoUsdPerToken: input,
            outputPicoUsdPerToken: output,
            ...(cached !== undefined ? { cachedInputPicoUsdPerToken: cached } : {}),
            source: "genai-prices",
          };
        }
      }
      cache.set(model, price);
      return price;
    },
  };
}
