import { calcPrice } from "@pydantic/genai-prices";
import { usdPerMillionToPicoUsdPerToken } from "../config/decimal-units.js";
import type { PriceConfig } from "../config/types.js";

/** Where a price came from. */
export type PriceSource = "config" | "genai-prices";

/**
 * A model's price in pico-USD per token, and its source. `tiers`: prices that replace the base
 * ones for a request whose input is longer than `aboveInputTokens` (e.g. past 200 000 tokens),
 * longest threshold last; use {@link priceForInput} to pick the one a request pays.
 */
export interface ModelPrice extends PriceConfig {
  source: PriceSource;
  tiers?: Array<{ aboveInputTokens: number; price: PriceConfig }>;
}

/** Looks up prices: the config's `prices:` overrides first, then the maintained table. */
export interface PriceTable {
  /** The price of `model` at instant `atMs`, or undefined when neither the config nor the table knows it. */
  priceFor(model: string, atMs: number): ModelPrice | undefined;
}

/** The price a request with `inputTokens` input tokens pays: its tier's, or the base one. */
export function priceForInput(price: ModelPrice, inputTokens: number): PriceConfig {
  let out: PriceConfig = price;
  for (const t of price.tiers ?? []) if (inputTokens > t.aboveInputTokens) out = t.price;
  return out;
}

type TableValue = number | { base: number; tiers: Array<{ start: number; price: number }> } | undefined;

/**
 * USD per 1M tokens of a table value for a request whose input is just above `above` tokens (-1:
 * the base price), by the package's own rule: a tier applies when the input is longer than its
 * start, the highest such tier wins, and it prices every token of that kind.
 */
function perMillion(v: TableValue, above: number): number | undefined {
  if (typeof v === "number") return v;
  if (!v || typeof v !== "object" || typeof v.base !== "number") return undefined;
  let out = v.base;
  for (const t of v.tiers) if (above + 1 > t.start && typeof t.price === "number") out = t.price;
  return out;
}

function startsOf(v: TableValue): number[] {
  return v && typeof v === "object" ? v.tiers.map((t) => t.start) : [];
}

/**
 * Pico-USD per token. Values from the package are rounded to 12 significant digits first: its data
 * holds float artefacts (0.18000000000000002 USD per million) that the exact decimal scaling would
 * otherwise refuse, leaving a priced model unpriced. A config value is never rounded (decimal-units).
 */
export function pico(usdPerMillion: number | undefined): number | undefined {
  return usdPerMillion === undefined
    ? undefined
    : usdPerMillionToPicoUsdPerToken(Number(usdPerMillion.toPrecision(12)));
}

function flatPrice(p: Record<string, TableValue>, above: number): PriceConfig | undefined {
  const input = pico(perMillion(p.input_mtok, above));
  const output = pico(perMillion(p.output_mtok, above));
  if (input === undefined || output === undefined) return undefined;
  const cached = pico(perMillion(p.cache_read_mtok, above));
  return {
    inputPicoUsdPerToken: input,
    outputPicoUsdPerToken: output,
    ...(cached !== undefined ? { cachedInputPicoUsdPerToken: cached } : {}),
  };
}

/** A model's price as the package states it at `atMs`, tiers included. */
function lookUp(model: string, atMs: number): ModelPrice | undefined {
  // calcPrice resolves the model's prices in force at that instant (dated changes, peak hours);
  // the amounts it computes are not used.
  const found = calcPrice({ input_tokens: 1, output_tokens: 1 }, model, { timestamp: new Date(atMs) });
  if (!found) return undefined;
  const p = found.model_price as Record<string, TableValue>;
  const base = flatPrice(p, -1);
  if (!base) return undefined;
  const starts = [
    ...new Set([...startsOf(p.input_mtok), ...startsOf(p.output_mtok), ...startsOf(p.cache_read_mtok)]),
  ].sort((a, b) => a - b);
  const tiers: NonNullable<ModelPrice["tiers"]> = [];
  for (const s of starts) {
    const price = flatPrice(p, s);
    if (price) tiers.push({ aboveInputTokens: s, price });
  }
  return { ...base, source: "genai-prices", ...(tiers.length > 0 ? { tiers } : {}) };
}

/** How long a looked-up price is reused: prices change on dates and at times of day (peak hours). */
const PRICE_SLOT_MS = 60_000;

/**
 * The price table: `@pydantic/genai-prices` (the bundled, maintained data; no network at run time)
 * converted to integer pico-USD per token, with config overrides. A price is looked up again for
 * each minute it is asked for (a model's price can change at a date or an hour of the day), so the
 * hot path reads a cached value and the package is consulted at most once a minute per model.
 */
export function createPriceTable(overrides: Record<string, PriceConfig>): PriceTable {
  const cache = new Map<string, { slot: number; price: ModelPrice | undefined }>();
  return {
    priceFor(model, atMs) {
      const override = Object.hasOwn(overrides, model) ? overrides[model] : undefined;
      if (override) return { ...override, source: "config" };
      const slot = Math.floor(atMs / PRICE_SLOT_MS);
      const hit = cache.get(model);
      if (hit && hit.slot === slot) return hit.price;
      const price = lookUp(model, atMs);
      cache.set(model, { slot, price });
      return price;
    },
  };
}
