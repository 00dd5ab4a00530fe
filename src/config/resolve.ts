/**
 * Parsed file format → {@link ResolvedConfig}: camelCase names with units, money as integers
 * (nano-USD, pico-USD per token), names filled in, the remaining defaults applied.
 * Input must have passed the schema and the reference checks.
 */
import { usdPerMillionToPicoUsdPerToken, usdToNanoUsd } from "./decimal-units.js";
import {
  DEFAULT_LOCAL_LIMIT_FRACTION,
  DEFAULT_REDIS_COMMAND_TIMEOUT_MS,
  DEFAULT_REDIS_KEY_PREFIX,
  DEFAULT_TIER_NAME,
} from "./defaults.js";
import type { ConfigFileOutput } from "./schema.js";
import { canonicalTimeZone } from "./schema-fields.js";
import type {
  AlertSinkConfig,
  FeatureConfig,
  KeyConfig,
  PriceConfig,
  ResolvedConfig,
  StoreConfig,
  TierConfig,
  UpstreamConfig,
} from "./types.js";

/**
 * A record without a prototype. Why: names arrive from requests (`x-tokenfuse-feature: constructor`),
 * and on a plain object `features["constructor"]` or `features["__proto__"]` would find something.
 */
function emptyRecord<T>(): Record<string, T> {
  return Object.create(null) as Record<string, T>;
}

function exact(value: number | undefined, what: string): number {
  // The schema already rejected amounts that cannot be converted exactly; this guards the invariant.
  if (value === undefined)
    throw new Error(`tokenfuse internal error: ${what} passed validation but is not exact`);
  return value;
}

const nano = (usd: number) => exact(usdToNanoUsd(usd), "USD amount");
const pico = (usdPerMillion: number) => exact(usdPerMillionToPicoUsdPerToken(usdPerMillion), "price");

function resolveStore(store: ConfigFileOutput["store"]): StoreConfig {
  if (store === "memory") return { kind: "memory" };
  if (typeof store === "string") {
    return {
      kind: "redis",
      url: store,
      keyPrefix: DEFAULT_REDIS_KEY_PREFIX,
      onError: "deny",
      commandTimeoutMs: DEFAULT_REDIS_COMMAND_TIMEOUT_MS,
      localLimitFraction: DEFAULT_LOCAL_LIMIT_FRACTION,
    };
  }
  return {
    kind: "redis",
    url: store.url,
    keyPrefix: store.key_prefix,
    onError: store.on_error,
    commandTimeoutMs: store.command_timeout_ms,
    localLimitFraction: store.local_limit_fraction,
  };
}

function resolveUpstreams(upstreams: ConfigFileOutput["upstreams"]): UpstreamConfig[] {
  return Object.entries(upstreams).map(([name, u]): UpstreamConfig => {
    if (u.type === "mock") {
      return {
        name,
        type: "mock",
        completionTokens: u.completion_tokens,
        latencyMs: u.latency_ms,
        chunkTokens: u.chunk_tokens,
        timeoutMs: u.timeout_ms,
      };
    }
    const baseUrl = u.base_url.replace(/\/+$/, "");
    const resolved: UpstreamConfig = { name, type: u.type, baseUrl, timeoutMs: u.timeout_ms };
    if (u.api_key !== undefined) resolved.apiKey = u.api_key;
    return resolved;
  });
}

function resolveFeatures(
  features: ConfigFileOutput["features"],
  defaultUpstream: string,
): Record<string, FeatureConfig> {
  const out = emptyRecord<FeatureConfig>();
  for (const [name, f] of Object.entries(features)) {
    const feature: FeatureConfig = {
      name,
      model: f.model,
      allowedModels: [...f.allowed_models],
      maxInputTokens: f.max_input,
      maxOutputTokens: f.max_output,
      onExceed: f.on_exceed,
      enabled: f.enabled,
      upstream: f.upstream ?? defaultUpstream,
    };
    if (f.summarize_with !== undefined) feature.summarizeWith = f.summarize_with;
    if (f.daily_tokens !== undefined) feature.dailyTokens = f.daily_tokens;
    if (f.hourly_cost_usd !== undefined) feature.hourlyCostNanoUsd = nano(f.hourly_cost_usd);
    out[name] = feature;
  }
  return out;
}

function resolveTiers(tiers: ConfigFileOutput["tiers"]): Record<string, TierConfig> {
  const out = emptyRecord<TierConfig>();
  for (const [name, t] of Object.entries(tiers)) {
    const tier: TierConfig = { name, dailyTokens: t.daily_tokens, timeZone: canonicalTimeZone(t.time_zone) };
    if (t.tokens_per_minute !== undefined) tier.tokensPerMinute = t.tokens_per_minute;
    out[name] = tier;
  }
  return out;
}

function resolveKeys(keys: ConfigFileOutput["keys"]): KeyConfig[] {
  return keys.map((k) => {
    const key: KeyConfig = { hash: k.hash, user: k.user, trusted: k.trusted };
    if (k.tier !== undefined) key.tier = k.tier;
    if (k.features !== undefined) key.features = [...k.features];
    const [only] = k.features?.length === 1 ? k.features : [];
    const defaultFeature = k.default_feature ?? only;
    if (defaultFeature !== undefined) key.defaultFeature = defaultFeature;
    return key;
  });
}

function resolvePrices(prices: ConfigFileOutput["prices"]): Record<string, PriceConfig> {
  const out = emptyRecord<PriceConfig>();
  for (const [model, p] of Object.entries(prices)) {
    const price: PriceConfig = { inputPicoUsdPerToken: pico(p.input), outputPicoUsdPerToken: pico(p.output) };
    if (p.cached_input !== undefined) price.cachedInputPicoUsdPerToken = pico(p.cached_input);
    if (p.reasoning !== undefined) price.reasoningPicoUsdPerToken = pico(p.reasoning);
    out[model] = price;
  }
  return out;
}

/** Converts a validated file to the resolved config. */
export function resolveConfig(file: ConfigFileOutput): ResolvedConfig {
  const upstreams = resolveUpstreams(file.upstreams);
  const [first] = upstreams;
  if (first === undefined) throw new Error("tokenfuse internal error: validated config has no upstream");

  const global: ResolvedConfig["global"] = { tokensPerMinute: file.global.tokens_per_minute };
  if (file.global.hourly_cost_usd !== undefined) global.hourlyCostNanoUsd = nano(file.global.hourly_cost_usd);

  const sinks = file.alerts.sinks.map((s): AlertSinkConfig => {
    if (s.type === "log") return { type: "log" };
    return s.secret === undefined
      ? { type: "webhook", url: s.url }
      : { type: "webhook", url: s.url, secret: s.secret };
  });
  const alerts: ResolvedConfig["alerts"] = {
    dailyBudgetThresholds: [...file.alerts.daily_budget_thresholds].sort((a, b) => a - b),
    sinks,
  };
  if (file.alerts.hourly_cost_usd !== undefined) alerts.hourlyCostNanoUsd = nano(file.alerts.hourly_cost_usd);

  const config: ResolvedConfig = {
    store: resolveStore(file.store),
    upstreams,
    features: resolveFeatures(file.features, first.name),
    tiers: resolveTiers(file.tiers),
    defaultTier: file.default_tier ?? DEFAULT_TIER_NAME,
    global,
    alerts,
    keys: resolveKeys(file.keys),
    prices: resolvePrices(file.prices),
    unknownPrice: file.unknown_price,
  };
  if (file.admin !== undefined) config.admin = { token: file.admin.token };
  if (file.usage_log === "stdout") config.usageLog = { kind: "stdout" };
  else if (file.usage_log !== undefined) config.usageLog = { kind: "file", path: file.usage_log.path };
  return config;
}
