/**
 * The config FILE format (SPEC §2) as a zod schema: snake_case keys, USD amounts, strict objects
 * (an unknown key is an error — typo protection). The same schema generates the JSON Schema for
 * editors and the reference in docs/config.md, so descriptions here are user documentation.
 *
 * Validation here is per value; references between sections (tiers, features, upstreams named
 * elsewhere) are checked afterwards by `references.ts`, and units are converted by `resolve.ts`.
 */
import { z } from "zod";
import {
  DEFAULT_BASE_URLS,
  DEFAULT_DAILY_BUDGET_THRESHOLDS,
  DEFAULT_FEATURES,
  DEFAULT_GLOBAL_TOKENS_PER_MINUTE,
  DEFAULT_LOCAL_LIMIT_FRACTION,
  DEFAULT_MOCK,
  DEFAULT_REDIS_COMMAND_TIMEOUT_MS,
  DEFAULT_REDIS_KEY_PREFIX,
  DEFAULT_TIERS,
  DEFAULT_UPSTREAM_TIMEOUT_MS,
  DEFAULT_UPSTREAMS,
} from "./defaults.js";
import {
  delayMs,
  entityName,
  expecting,
  filePath,
  fraction,
  httpUrl,
  ianaTimeZone,
  modelName,
  nameRef,
  nonNegativeInt,
  positiveInt,
  redisUrl,
  secret,
  timeoutMs,
  uniqueList,
  usdAmount,
  usdPerMillionTokens,
  userId,
  webhookUrl,
} from "./schema-fields.js";

/** Marker before the list of allowed keys in an unknown-key message (the issue formatter reads it). */
export const ALLOWED_KEYS_MARK = "allowed keys: ";

/** A strict object: unknown keys are reported with the list of allowed ones. */
function strict<Shape extends z.core.$ZodLooseShape>(what: string, shape: Shape) {
  const typeError = expecting(what);
  const allowed = Object.keys(shape).join(", ");
  return z.strictObject(shape, {
    error: (issue) =>
      issue.code === "unrecognized_keys" ? `unknown key; ${ALLOWED_KEYS_MARK}${allowed}` : typeError(issue),
  });
}

/** One of a fixed set of strings. */
function oneOf<const T extends readonly [string, ...string[]]>(values: T) {
  return z.enum(values, { error: expecting(`one of ${values.map((v) => `"${v}"`).join(", ")}`) });
}

/** A non-empty map from entity names to `value`, in file order. */
function namedMap<T extends z.ZodType>(kind: string, value: T, emptyHint: string) {
  return z
    .record(entityName(kind), value, { error: expecting(`a mapping of ${kind} names to ${kind} settings`) })
    .superRefine((map, ctx) => {
      if (Object.keys(map).length === 0) {
        ctx.addIssue({ code: "custom", message: `expected at least one ${kind} (${emptyHint})`, input: map });
      }
    })
    .meta({ minProperties: 1 });
}

const tokens = (what = "a positive whole number of tokens") => positiveInt(what);

// ---------------------------------------------------------------------------------------------- store

const storeObjectSchema = strict("a Redis store mapping", {
  url: redisUrl().describe(
    "Redis URL, `redis://[user:password@]host:port/db` (or `rediss://` for TLS). Put credentials in `${env:…}`.",
  ),
  key_prefix: z
    .string({ error: expecting('1-64 letters, digits, "_", "-", "." or ":"') })
    .regex(/^[A-Za-z0-9_.:-]{1,64}$/, { error: expecting('1-64 letters, digits, "_", "-", "." or ":"') })
    .default(DEFAULT_REDIS_KEY_PREFIX)
    .describe("Prefix of every Redis key tokenfuse writes, so that several deployments can share a Redis."),
  on_error: oneOf(["deny", "allow", "local"])
    .default("deny")
    .describe(
      "When Redis cannot be reached: `deny` refuses requests (503 `budget_store_unavailable`); `allow` admits them, marks the decision `store_unavailable` and alerts; `local` admits them within a per-process safety cap.",
    ),
  command_timeout_ms: timeoutMs()
    .default(DEFAULT_REDIS_COMMAND_TIMEOUT_MS)
    .describe("Timeout of one Redis command, in milliseconds; past it the store counts as unavailable."),
  local_limit_fraction: fraction()
    .default(DEFAULT_LOCAL_LIMIT_FRACTION)
    .describe(
      "With `on_error: local`: while Redis is unreachable, each process admits at most this fraction of every budget on its own (e.g. 0.1 with 10 processes keeps the total within the budget). A request whose reservation (input + `max_output`) does not fit in that share is refused with its scope's code and `Retry-After: 1`: with 0.1 of a 10 000-token daily budget, a feature with `max_output: 1000` fits none, so size the fraction for your smallest budget.",
    ),
});

const storeSchema = z
  .union([z.literal("memory"), redisUrl(true), storeObjectSchema], {
    error: expecting('"memory", a redis:// or rediss:// URL, or a mapping with url, key_prefix and on_error'),
  })
  .default("memory")
  .describe(
    "Where counters live. `memory`: this process only, lost on restart. A `redis://` or `rediss://` URL (or a mapping with `url`): shared by every process using it; exact across processes. Redis memory: besides the counters, each settled request leaves a marker for one hour, about 150 bytes, so a resent settlement is recognised and not charged twice (a settlement queued during an outage whose first attempt may have been applied is retried for 55 minutes, then given up and logged rather than risk a double charge): plan on roughly 0.55 GB per 1 000 requests/s of sustained traffic.",
  );

// ------------------------------------------------------------------------------------------ upstreams

const upstreamTimeout = () =>
  timeoutMs()
    .default(DEFAULT_UPSTREAM_TIMEOUT_MS)
    .describe("Upstream request timeout in milliseconds (504 `upstream_error` past it).");

function providerSchema<const T extends "openai" | "anthropic">(type: T) {
  return strict(`an upstream mapping of type ${type}`, {
    type: z.literal(type).describe(`\`${type}\`: the provider's HTTP API.`),
    base_url: httpUrl()
      .default(DEFAULT_BASE_URLS[type])
      .describe(
        "Base URL of the API (a trailing `/` is removed); point it at a proxy or a compatible server.",
      ),
    api_key: secret()
      .optional()
      .describe("API key sent to the provider; write it as `${env:NAME}`. Omit it for servers without auth."),
    timeout_ms: upstreamTimeout(),
  });
}

const mockUpstreamSchema = strict("an upstream mapping of type mock", {
  type: z.literal("mock").describe("`mock`: the built-in deterministic upstream (demo, tests, load tests)."),
  completion_tokens: nonNegativeInt()
    .default(DEFAULT_MOCK.completion_tokens)
    .describe(
      "Tokens the mock generates per answer, never more than the request's output cap (header `x-mock-completion-tokens` overrides it per request).",
    ),
  latency_ms: delayMs()
    .default(DEFAULT_MOCK.latency_ms)
    .describe("Delay before the mock answers, in milliseconds."),
  chunk_tokens: positiveInt()
    .default(DEFAULT_MOCK.chunk_tokens)
    .describe("Tokens per streamed chunk when the request streams."),
  timeout_ms: upstreamTimeout(),
});

const upstreamSchema = z.discriminatedUnion(
  "type",
  [providerSchema("openai"), providerSchema("anthropic"), mockUpstreamSchema],
  { error: expecting("an upstream mapping with type openai, anthropic or mock") },
);

const upstreamsSchema = namedMap("upstream", upstreamSchema, "omit the key to use the built-in mock")
  .prefault(DEFAULT_UPSTREAMS)
  .describe(
    "LLM providers requests are sent to, by name. The FIRST is the default upstream; a feature may name another with `upstream`. Defaults, when the key is omitted, to a single `mock` upstream.",
  );

// ------------------------------------------------------------------------------------------- features

const featureSchema = strict("a feature mapping", {
  model: modelName().describe("The model this feature's requests use."),
  allowed_models: uniqueList(modelName(), "model names")
    .default([])
    .describe(
      "Models a request may name instead of `model` (kept as asked); any other model is rewritten to `model`.",
    ),
  max_input: tokens().describe("Input cap per request, in tokens."),
  max_output: tokens().describe(
    "Output cap per request, in tokens: injected when the caller sends none, and a larger caller value is lowered to it.",
  ),
  on_exceed: oneOf(["reject", "trim", "truncate", "summarize"]).describe(
    "When input is over `max_input`: `reject` (400 `input_budget_exceeded`), `trim` (drop the oldest turns), `truncate` (trim, then shorten the oldest kept message), `summarize` (replace dropped turns by a summary from `summarize_with`, falling back to trim).",
  ),
  summarize_with: nameRef("feature")
    .optional()
    .describe(
      "The feature that writes summaries; required exactly when `on_exceed` is `summarize`, and that feature must not itself use `summarize`.",
    ),
  daily_tokens: tokens().optional().describe("Optional cap on the feature's tokens per UTC day (all users)."),
  hourly_cost_usd: usdAmount()
    .optional()
    .describe(
      "Optional circuit breaker: crossing this cost in an hour switches the feature off until the next hour, and alerts.",
    ),
  enabled: z
    .boolean({ error: expecting("true or false") })
    .default(true)
    .describe("Initial switch state; switches flipped at run time (admin API, CLI) override it."),
  upstream: nameRef("upstream")
    .optional()
    .describe("Name of the upstream this feature uses (default: the first upstream)."),
});

const featuresSchema = namedMap("feature", featureSchema, "omit the key to use the built-in features")
  .prefault(DEFAULT_FEATURES)
  .describe(
    "Named uses of the LLM in the application. When the key is omitted: chat, summarize, code_review, quick_answer; when given, it replaces them.",
  );

// ---------------------------------------------------------------------------------------------- tiers

const tierSchema = strict("a tier mapping", {
  daily_tokens: tokens().describe("Tokens per user per calendar day (in `time_zone`)."),
  tokens_per_minute: tokens().optional().describe("Optional tokens per user per minute."),
  time_zone: ianaTimeZone()
    .default("UTC")
    .describe("IANA time zone whose midnight resets the daily budget, e.g. `America/New_York`."),
});

const tiersSchema = namedMap("tier", tierSchema, "omit the key to use the built-in tiers")
  .prefault(DEFAULT_TIERS)
  .describe(
    "Classes of users sharing the same budgets. When the key is omitted: free (10 000), pro (100 000), enterprise (1 000 000 tokens/day, UTC); when given, it replaces them.",
  );

// --------------------------------------------------------------------------------------------- global

const globalSchema = strict("a global limits mapping", {
  tokens_per_minute: tokens()
    .default(DEFAULT_GLOBAL_TOKENS_PER_MINUTE)
    .describe("Tokens per minute across every user and feature."),
  hourly_cost_usd: usdAmount()
    .optional()
    .describe(
      "Optional cost cap per UTC hour across every feature and process: once the hour's settled spend reaches it, every request is refused with `global_rate_limited` (429, `Retry-After` until the hour ends) and one `global_cost_cap` alert is sent. Requests already admitted finish and are charged, and other processes learn of the total within 0.5 s, so an hour can end above the cap by what was in flight.",
    ),
})
  .prefault({})
  .describe("Limits across every user and feature.");

// --------------------------------------------------------------------------------------------- alerts

const logSinkSchema = strict("an alert sink mapping", {
  type: z.literal("log").describe("`log`: write alerts to the log."),
});

const webhookSinkSchema = strict("an alert sink mapping", {
  type: z.literal("webhook").describe("`webhook`: POST alerts as JSON (with a Slack-compatible `text`)."),
  url: webhookUrl().describe(
    "Webhook URL, without `user:password@` (refused: put a token in the path or query, or use `secret`); usually secret, so write it as `${env:NAME}`.",
  ),
  secret: secret().optional().describe("Optional secret used to sign the webhook body."),
});

const sinkSchema = z.discriminatedUnion("type", [logSinkSchema, webhookSinkSchema], {
  error: expecting("an alert sink mapping with type log or webhook"),
});

const alertsSchema = strict("an alerts mapping", {
  hourly_cost_usd: usdAmount()
    .optional()
    .describe(
      "Alert when the spend of all features in one UTC hour crosses this amount (once per hour, however many processes see it). A feature's own hourly_cost_usd alerts for that feature (and switches it off).",
    ),
  daily_budget_thresholds: uniqueList(fraction(), "fractions in (0, 1]")
    .default([...DEFAULT_DAILY_BUDGET_THRESHOLDS])
    .describe("Fractions of a daily budget at which to alert."),
  sinks: z
    .array(sinkSchema, { error: expecting("a list of alert sinks") })
    .min(1, {
      error: "expected at least one sink (alerts are never silent; `{ type: log }` is always available)",
    })
    .default([{ type: "log" }])
    .describe("Where alerts go; default `[{ type: log }]`."),
})
  .prefault({})
  .describe("Cost and budget alerts.");

// ------------------------------------------------------------------------------------------ usage log

const usageLogSchema = z
  .union(
    [
      z.literal("stdout"),
      strict("a usage log mapping", {
        path: filePath().describe(
          "File the usage log is appended to; created when missing, its directory must exist. A relative path is relative to the working directory of the process. Checked at start: a path that cannot be opened for appending is a config error.",
        ),
      }),
    ],
    { error: expecting('"stdout" or a mapping with path') },
  )
  .optional()
  .describe(
    "Where every decision (allow, trim, reject with its code) and every settlement is written, one JSON object per line: `stdout`, or `{ path: ./usage.jsonl }` to append to a file. Off when omitted. Lines hold token counts, ids, feature, user, tier, model and cost, never message text, API keys or other secrets. Writes are buffered and asynchronous (flushed at 64 KiB or 100 ms, and on close); a failed write is logged once and counted (`tokenfuse_usage_log_write_errors_total`), never fails a request. Size: about 0.8 KB per request (a decision and a settlement line), so 1 000 requests/s write about 67 GB a day; rotate with logrotate (the gateway reopens the file on SIGHUP). `tokenfuse simulate --log FILE` replays it against a config.",
  );

// ----------------------------------------------------------------------------------------------- keys

const keySchema = strict("an API key mapping", {
  hash: z
    .string({ error: expecting('"sha256:" followed by 64 lowercase hex digits') })
    .regex(/^sha256:[0-9a-f]{64}$/, { error: expecting('"sha256:" followed by 64 lowercase hex digits') })
    .describe(
      '`"sha256:"` + hex(sha256(key)); the key itself is never stored (`tokenfuse keys create` prints both).',
    ),
  user: userId().describe("The user this key authenticates."),
  tier: nameRef("tier").optional().describe("The user's tier (default: `default_tier`)."),
  features: uniqueList(nameRef("feature"), "feature names")
    .min(1, { error: "expected at least one feature (omit `features` to allow every feature)" })
    .optional()
    .describe("Features this key may use (default: all)."),
  default_feature: nameRef("feature")
    .optional()
    .describe("Feature used when a request names none (default: the key's only feature, if it has one)."),
  trusted: z
    .boolean({ error: expecting("true or false") })
    .default(false)
    .describe("May name end users with the `x-tokenfuse-user` header (namespaced under this key's user)."),
});

// --------------------------------------------------------------------------------------------- prices

const priceSchema = strict("a price mapping", {
  input: usdPerMillionTokens().describe("USD per 1M input tokens."),
  output: usdPerMillionTokens().describe("USD per 1M output tokens."),
  cached_input: usdPerMillionTokens().optional().describe("USD per 1M cached input tokens."),
  reasoning: usdPerMillionTokens().optional().describe("USD per 1M reasoning tokens."),
});

// ----------------------------------------------------------------------------------------------- root

/** The config file format. Parse output has every default applied except `default_tier`. */
export const configFileSchema = strict("a mapping of config sections", {
  $schema: z
    .string({ error: expecting("a string") })
    .optional()
    .describe("Ignored by tokenfuse; lets editors find the JSON Schema of a JSON config."),
  store: storeSchema,
  upstreams: upstreamsSchema,
  features: featuresSchema,
  tiers: tiersSchema,
  default_tier: nameRef("tier")
    .optional()
    .describe("Tier of users with no tier of their own. Default `free`, which must then exist in `tiers`."),
  global: globalSchema,
  alerts: alertsSchema,
  usage_log: usageLogSchema,
  keys: z
    .array(keySchema, { error: expecting("a list of API keys") })
    .default([])
    .describe(
      "Gateway API keys. Only a hash of each key is stored here. With none, the gateway runs without keys (every request is the user `anonymous`); with at least one, keys are required, and more can be created at run time (admin API `POST /admin/keys`, `tokenfuse keys create --store`).",
    ),
  admin: strict("an admin mapping", {
    token: secret(16).describe(
      "Bearer token of the admin API (at least 16 characters); write it as `${env:NAME}`.",
    ),
  })
    .optional()
    .describe(
      "Admin API access (feature switches, usage, run-time API keys and user tiers: docs/admin-api.md). Without it the admin API is disabled.",
    ),
  prices: z
    .record(modelName(), priceSchema, { error: expecting("a mapping of model names to prices") })
    .default({})
    .describe("Price overrides by model, in USD per 1M tokens (on top of the built-in price table)."),
  unknown_price: oneOf(["reject", "allow_and_alert"])
    .default("reject")
    .describe(
      "A model with no known price: `reject` (400 `price_unknown`, the default) or `allow_and_alert` (admitted; one `unknown_price` alert per model and day; its tokens count against every token budget, but its cost is unknown: the usage log marks each such settlement `unpriced`, and spend counters, cost alerts, breakers and the global cost cap add $0 for it, so cost caps do not stop it). Give such a model a price under `prices:` instead when cost caps must hold.",
    ),
}).meta({
  title: "tokenfuse configuration",
  description:
    "Token budgets in front of LLM providers (tokenfuse.yaml or .json). Any string may use ${env:NAME}; write $${ for a literal ${.",
});

/** The file format as written (optional keys optional). */
export type ConfigFileInput = z.input<typeof configFileSchema>;
/** The file format after parsing, with defaults applied. */
export type ConfigFileOutput = z.output<typeof configFileSchema>;
/** One feature as written in the file. */
export type FeatureInput = z.input<typeof featureSchema>;
/** One tier as written in the file. */
export type TierInput = z.input<typeof tierSchema>;
/** One upstream as written in the file. */
export type UpstreamInput = z.input<typeof upstreamSchema>;
