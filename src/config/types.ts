/**
 * The resolved configuration: what the engine, stores and gateway consume after the file has been
 * parsed, validated, env-interpolated and given its defaults. Internal names are camelCase with units
 * (`…Tokens`, `…Ms`, `…NanoUsd`); the file itself is snake_case (SPEC §2).
 */

/** What to do when a request's input is over the feature's `max_input`. */
export type OnExceed = "reject" | "trim" | "truncate" | "summarize";

/** One named use of the LLM in the application. */
export interface FeatureConfig {
  name: string;
  /** The model requests of this feature are sent to. */
  model: string;
  /** Models a request may name instead of `model` (kept as asked); any other is rewritten to `model`. */
  allowedModels: string[];
  maxInputTokens: number;
  maxOutputTokens: number;
  onExceed: OnExceed;
  /** Feature used to produce summaries when `onExceed` is `summarize`. */
  summarizeWith?: string;
  /** Optional cap on tokens per day (UTC calendar day) for the whole feature. */
  dailyTokens?: number;
  /** Optional hourly cost cap (circuit breaker), in nano-USD. */
  hourlyCostNanoUsd?: number;
  /** Initial switch state; run-time switches in the store override it. */
  enabled: boolean;
  /** Name of the upstream this feature uses; the loader always sets it (the first upstream by default). */
  upstream?: string;
}

/** A class of users sharing the same budgets. */
export interface TierConfig {
  name: string;
  dailyTokens: number;
  tokensPerMinute?: number;
  /** IANA time zone whose calendar day the daily budget follows. */
  timeZone: string;
}

/** What a store does when it cannot be reached (SPEC §4). */
export type OnStoreError = "deny" | "allow" | "local";

/** Where counters live: this process's memory, or a Redis shared by every process using it. */
export type StoreConfig =
  | { kind: "memory" }
  | {
      kind: "redis";
      url: string;
      keyPrefix: string;
      onError: OnStoreError;
      commandTimeoutMs: number;
      /** With `onError: "local"`: each scope's limit × this is what one process may admit alone. */
      localLimitFraction: number;
    };

/** A provider requests are sent to (`mock`: the built-in deterministic one). `apiKey` is a secret. */
export type UpstreamConfig =
  | {
      name: string;
      type: "openai" | "anthropic";
      baseUrl: string;
      apiKey?: string;
      timeoutMs: number;
    }
  | {
      name: string;
      type: "mock";
      /** Completion tokens the mock generates (never more than the request's output cap). */
      completionTokens: number;
      latencyMs: number;
      /** Tokens per SSE chunk when streaming. */
      chunkTokens: number;
      timeoutMs: number;
    };

/** Where the usage log goes (absent in {@link ResolvedConfig}: off). */
export type UsageLogConfig = { kind: "stdout" } | { kind: "file"; path: string };

/** A gateway API key: only the hash is ever stored. */
export interface KeyConfig {
  /** "sha256:" + lowercase hex of sha256(key). */
  hash: string;
  user: string;
  tier?: string;
  /** Features this key may use; undefined = all. */
  features?: string[];
  /** Feature used when the request names none; the loader sets it to the key's only feature by default. */
  defaultFeature?: string;
  /** May name end users with `x-tokenfuse-user` (namespaced under the key's user). */
  trusted: boolean;
}

/** Where alerts go. A webhook's `url` and `secret` are secrets (never logged). */
export type AlertSinkConfig = { type: "log" } | { type: "webhook"; url: string; secret?: string };

/** Cost and budget alerts. */
export interface AlertsConfig {
  hourlyCostNanoUsd?: number;
  /** Fractions of a daily budget at which to alert (e.g. 0.8 and 1), ascending, no repeats. */
  dailyBudgetThresholds: number[];
  sinks: AlertSinkConfig[];
}

/**
 * Price override, in pico-USD per token (= USD per 1M tokens × 10^6), so that every published price
 * (e.g. $0.0375 / 1M) is an integer. Per-request costs are rounded up to whole nano-USD.
 */
export interface PriceConfig {
  inputPicoUsdPerToken: number;
  outputPicoUsdPerToken: number;
  cachedInputPicoUsdPerToken?: number;
  reasoningPicoUsdPerToken?: number;
}

/**
 * The whole resolved config. The `features`, `tiers` and `prices` records have no prototype, so a name
 * taken from a request (`constructor`, `__proto__`) never finds anything by accident.
 */
export interface ResolvedConfig {
  store: StoreConfig;
  /** Upstreams in file order; the first is the default. */
  upstreams: UpstreamConfig[];
  features: Record<string, FeatureConfig>;
  tiers: Record<string, TierConfig>;
  defaultTier: string;
  global: { tokensPerMinute: number; hourlyCostNanoUsd?: number };
  alerts: AlertsConfig;
  /** Where every decision and settlement is written as a JSON line; off when absent. */
  usageLog?: UsageLogConfig;
  keys: KeyConfig[];
  admin?: { token: string };
  prices: Record<string, PriceConfig>;
  unknownPrice: "reject" | "allow_and_alert";
}
