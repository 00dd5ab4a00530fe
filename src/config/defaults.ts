/**
 * Built-in defaults, in the file format (snake_case, USD): the example config of the article the
 * project grew from. Sections listed in {@link WHOLE_SECTION_DEFAULTS} default as a whole: when the
 * file omits the section it gets these entries; when the file gives the section, the file's entries
 * replace them (no merging, so removing a built-in feature or tier is just leaving it out).
 */
import type { FeatureInput, TierInput, UpstreamInput } from "./schema.js";

/** The four features of the article. */
export const DEFAULT_FEATURES = {
  chat: { model: "gpt-4o", max_input: 4000, max_output: 1000, on_exceed: "trim" },
  summarize: { model: "gpt-4o-mini", max_input: 16000, max_output: 500, on_exceed: "reject" },
  code_review: {
    model: "gpt-4.1",
    max_input: 32000,
    max_output: 2000,
    on_exceed: "reject",
    hourly_cost_usd: 20,
  },
  quick_answer: { model: "gpt-4.1-nano", max_input: 1000, max_output: 200, on_exceed: "truncate" },
} as const satisfies Record<string, FeatureInput>;

/** Tiers free, pro and enterprise: 10 000, 100 000 and 1 000 000 tokens per UTC day. */
export const DEFAULT_TIERS = {
  free: { daily_tokens: 10_000 },
  pro: { daily_tokens: 100_000 },
  enterprise: { daily_tokens: 1_000_000 },
} as const satisfies Record<string, TierInput>;

/** The built-in deterministic upstream, used when the file names none (so nothing is billed by accident). */
export const DEFAULT_UPSTREAMS = {
  mock: { type: "mock" },
} as const satisfies Record<string, UpstreamInput>;

/** `default_tier` when the file gives none (only valid when a tier of this name exists). */
export const DEFAULT_TIER_NAME = "free";

/** Global tokens per minute across every user and feature. */
export const DEFAULT_GLOBAL_TOKENS_PER_MINUTE = 1_000_000;

/** Daily-budget alert thresholds (fractions of the budget). */
export const DEFAULT_DAILY_BUDGET_THRESHOLDS = [0.8, 1] as const;

/** Default Redis key prefix; the Redis store adds its own version segment after it. */
export const DEFAULT_REDIS_KEY_PREFIX = "tf:v1:";
/** Share of each budget one process may admit on its own while Redis is down (`on_error: local`). */
export const DEFAULT_LOCAL_LIMIT_FRACTION = 0.1;

/** Default Redis command timeout. */
export const DEFAULT_REDIS_COMMAND_TIMEOUT_MS = 1000;

/** Default upstream request timeout (10 minutes: long generations are legitimate). */
export const DEFAULT_UPSTREAM_TIMEOUT_MS = 600_000;

/** Default base URLs of the provider upstreams (without a trailing slash). */
export const DEFAULT_BASE_URLS = {
  openai: "https://api.openai.com/v1",
  anthropic: "https://api.anthropic.com/v1",
} as const;

/** Default output of the mock upstream. */
export const DEFAULT_MOCK = { completion_tokens: 50, latency_ms: 0, chunk_tokens: 5 } as const;

/** The sections that default as a whole (see the module comment). */
export const WHOLE_SECTION_DEFAULTS = ["upstreams", "features", "tiers"] as const;
