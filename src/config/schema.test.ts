import { describe, expect, it } from "vitest";
import { loadConfig } from "./load.js";
import { DELETE, hashOf, itRejectsEach, TEST_ENV, validConfigFile } from "./test-config-fixtures.js";

it("the base file of these cases is valid", () => {
  expect(() => loadConfig(validConfigFile(), TEST_ENV)).not.toThrow();
});

describe("unknown keys are rejected at every depth, with a suggestion", () => {
  itRejectsEach([
    [
      "root",
      [[["tier"], {}]],
      "tier",
      /^unknown key \(did you mean "tiers"\?\); allowed keys: \$schema, store, /,
    ],
    [
      "global",
      [[["global", "tokens_per_minut"], 5]],
      "global.tokens_per_minut",
      /did you mean "tokens_per_minute"/,
    ],
    [
      "feature",
      [[["features", "chat", "max_ouput"], 5]],
      "features.chat.max_ouput",
      /did you mean "max_output"/,
    ],
    [
      "upstream",
      [[["upstreams", "openai", "apikey"], "x"]],
      "upstreams.openai.apikey",
      /did you mean "api_key"/,
    ],
    ["sink", [[["alerts", "sinks", 1, "secrett"], "x"]], "alerts.sinks[1].secrett", /did you mean "secret"/],
    ["key", [[["keys", 0, "teir"], "pro"]], "keys[0].teir", /did you mean "tier"/],
    [
      "store",
      [[["store", "prefix"], "x"]],
      "store.prefix",
      /^unknown key; allowed keys: url, key_prefix, on_error, /,
    ],
    [
      "price",
      [[["prices", "my-model", "cached"], 1]],
      "prices.my-model.cached",
      /allowed keys: input, output, cached_/,
    ],
    ["tier", [[["tiers", "free", "timezone"], "UTC"]], "tiers.free.timezone", /did you mean "time_zone"/],
  ]);
});

describe("wrong types say what was expected", () => {
  itRejectsEach([
    [
      "string cap",
      [[["features", "chat", "max_input"], "4000"]],
      "features.chat.max_input",
      /^expected a positive whole number of tokens, got a string$/,
    ],
    ["boolean cap", [[["tiers", "free", "daily_tokens"], true]], "tiers.free.daily_tokens", /got true$/],
    [
      "list for a map",
      [[["features"], ["chat"]]],
      "features",
      /^expected a mapping of feature names to feature settings, got a list$/,
    ],
    ["null section", [[["alerts"], null]], "alerts", /^expected an alerts mapping, got null$/],
    [
      "string boolean",
      [[["keys", 1, "trusted"], "yes"]],
      "keys[1].trusted",
      /^expected true or false, got a string$/,
    ],
    [
      "missing field",
      [[["features", "chat", "model"], DELETE]],
      "features.chat.model",
      /^required: expected a model name/,
    ],
    [
      "bad enum",
      [[["features", "chat", "on_exceed"], "drop"]],
      "features.chat.on_exceed",
      /^expected one of "reject", "trim", "truncate", "summarize"$/,
    ],
    [
      "bad on_error",
      [[["store", "on_error"], "ignore"]],
      "store.on_error",
      /^expected one of "deny", "allow", "local"$/,
    ],
    [
      "unknown upstream type",
      [[["upstreams", "local", "type"], "bedrock"]],
      "upstreams.local.type",
      /^expected one of "openai", "anthropic", "mock"$/,
    ],
    [
      "missing upstream type",
      [[["upstreams", "local", "type"], DELETE]],
      "upstreams.local.type",
      /^required: expected one of/,
    ],
    [
      "upstream as a string",
      [[["upstreams", "local"], "mock"]],
      "upstreams.local",
      /^expected an upstream mapping with type openai, anthropic or mock, got a string$/,
    ],
  ]);
});

describe("token caps are positive safe integers", () => {
  itRejectsEach([
    [
      "negative",
      [[["features", "chat", "max_output"], -1]],
      "features.chat.max_output",
      /^expected a positive whole number of tokens, got -1$/,
    ],
    ["zero input", [[["features", "chat", "max_input"], 0]], "features.chat.max_input", /got 0$/],
    [
      "zero output",
      [[["features", "summarize", "max_output"], 0]],
      "features.summarize.max_output",
      /got 0$/,
    ],
    ["fractional", [[["tiers", "pro", "daily_tokens"], 1.5]], "tiers.pro.daily_tokens", /got 1.5$/],
    [
      "unsafe",
      [[["global", "tokens_per_minute"], 2 ** 53]],
      "global.tokens_per_minute",
      /positive whole number/,
    ],
    [
      "zero per minute",
      [[["tiers", "pro", "tokens_per_minute"], 0]],
      "tiers.pro.tokens_per_minute",
      /got 0$/,
    ],
    [
      "zero feature daily",
      [[["features", "chat", "daily_tokens"], 0]],
      "features.chat.daily_tokens",
      /got 0$/,
    ],
    [
      "timer overflow",
      [[["upstreams", "openai", "timeout_ms"], 2 ** 31]],
      "upstreams.openai.timeout_ms",
      /from 1 to 2147483647/,
    ],
    [
      "zero chunk",
      [[["upstreams", "local", "chunk_tokens"], 0]],
      "upstreams.local.chunk_tokens",
      /^expected a positive integer, got 0$/,
    ],
  ]);
});

describe("money is positive, finite and exactly convertible", () => {
  itRejectsEach([
    [
      "zero cap",
      [[["global", "hourly_cost_usd"], 0]],
      "global.hourly_cost_usd",
      /^expected a positive amount of USD, got 0$/,
    ],
    ["negative cap", [[["alerts", "hourly_cost_usd"], -5]], "alerts.hourly_cost_usd", /got -5$/],
    [
      "infinite cap",
      [[["alerts", "hourly_cost_usd"], Number.POSITIVE_INFINITY]],
      "alerts.hourly_cost_usd",
      /got Infinity$/,
    ],
    ["NaN cap", [[["global", "hourly_cost_usd"], Number.NaN]], "global.hourly_cost_usd", /got NaN$/],
    [
      "sub-nano cap",
      [[["features", "chat", "hourly_cost_usd"], 1e-10]],
      "features.chat.hourly_cost_usd",
      /^expected at most 9 decimal places/,
    ],
    [
      "16 digits",
      [[["global", "hourly_cost_usd"], 1234567.123456789]],
      "global.hourly_cost_usd",
      /at most 15 significant digits/,
    ],
    [
      "huge cap",
      [[["global", "hourly_cost_usd"], 1e10]],
      "global.hourly_cost_usd",
      /small enough to count exactly/,
    ],
    [
      "sub-pico price",
      [[["prices", "my-model", "input"], 0.0000375]],
      "prices.my-model.input",
      /^expected at most 6 decimal places/,
    ],
    ["negative price", [[["prices", "my-model", "output"], -1]], "prices.my-model.output", /got -1$/],
  ]);

  it("allows a price of zero (a free model is not an unknown one)", () => {
    const file = validConfigFile();
    file.prices["my-model"] = { input: 0, output: 0 };
    expect(loadConfig(file, TEST_ENV).prices["my-model"]).toEqual({
      inputPicoUsdPerToken: 0,
      outputPicoUsdPerToken: 0,
    });
  });
});

describe("values", () => {
  itRejectsEach([
    [
      "offset time zone",
      [[["tiers", "pro", "time_zone"], "+05:00"]],
      "tiers.pro.time_zone",
      /^expected an IANA time zone name/,
    ],
    ["unknown zone", [[["tiers", "pro", "time_zone"], "Mars/Olympus_Mons"]], "tiers.pro.time_zone", /IANA/],
    ["GMT offset", [[["tiers", "pro", "time_zone"], "UTC+1"]], "tiers.pro.time_zone", /IANA/],
    ["empty zone", [[["tiers", "pro", "time_zone"], ""]], "tiers.pro.time_zone", /IANA/],
    [
      "missing env var",
      [[["upstreams", "openai", "api_key"], "${env:ANTHROPIC_KEY}"]],
      "upstreams.openai.api_key",
      /^environment variable ANTHROPIC_KEY is not set$/,
    ],
    [
      "uppercase hash",
      [[["keys", 0, "hash"], `sha256:${"A".repeat(64)}`]],
      "keys[0].hash",
      /^expected "sha256:" followed by 64 lowercase hex digits$/,
    ],
    ["short hash", [[["keys", 0, "hash"], "sha256:abc"]], "keys[0].hash", /64 lowercase hex/],
    ["hash without prefix", [[["keys", 0, "hash"], "a".repeat(64)]], "keys[0].hash", /64 lowercase hex/],
    [
      "store http URL",
      [[["store", "url"], "http://127.0.0.1:6379"]],
      "store.url",
      /^expected a redis:\/\/ or rediss:\/\/ URL/,
    ],
    [
      "store without scheme",
      [[["store"], "localhost:6379"]],
      "store",
      /^expected "memory" or a redis:\/\/ or rediss:\/\/ URL/,
    ],
    ["store without host", [[["store"], "redis://"]], "store", /redis:\/\//],
    ["store with a path", [[["store"], "redis://h:6379/db0"]], "store", /redis:\/\//],
    [
      "store wrong type",
      [[["store"], 6379]],
      "store",
      /^expected "memory", a redis:\/\/ or rediss:\/\/ URL, or a mapping.*got 6379$/,
    ],
    [
      "ftp webhook",
      [[["alerts", "sinks", 1, "url"], "ftp://hooks.example.com"]],
      "alerts.sinks[1].url",
      /^expected an http:\/\/ or https:\/\/ URL$/,
    ],
    [
      "relative base_url",
      [[["upstreams", "openai", "base_url"], "/v1"]],
      "upstreams.openai.base_url",
      /http:\/\/ or https:\/\//,
    ],
    ["no sinks", [[["alerts", "sinks"], []]], "alerts.sinks", /at least one sink/],
    [
      "threshold above 1",
      [
        [
          ["alerts", "daily_budget_thresholds"],
          [0.5, 1.5],
        ],
      ],
      "alerts.daily_budget_thresholds[1]",
      /greater than 0 and at most 1, got 1.5/,
    ],
    [
      "zero threshold",
      [[["alerts", "daily_budget_thresholds"], [0]]],
      "alerts.daily_budget_thresholds[0]",
      /got 0/,
    ],
    [
      "repeated threshold",
      [
        [
          ["alerts", "daily_budget_thresholds"],
          [0.8, 0.8],
        ],
      ],
      "alerts.daily_budget_thresholds[1]",
      /^duplicate of entry \[0\]$/,
    ],
    [
      "empty features",
      [
        [["features"], {}],
        [["keys"], []],
      ],
      "features",
      /^expected at least one feature/,
    ],
    ["empty upstreams", [[["upstreams"], {}]], "upstreams", /^expected at least one upstream/],
    [
      "feature name with a space",
      [[["features", "my feature"], { model: "m", max_input: 1, max_output: 1, on_exceed: "trim" }]],
      'features["my feature"]',
      /^invalid key: expected a feature name/,
    ],
    [
      "numeric upstream name",
      [[["upstreams", "1"], { type: "mock" }]],
      'upstreams["1"]',
      /starting with a letter/,
    ],
    ["user with a space", [[["keys", 0, "user"], "alice smith"]], "keys[0].user", /^expected a user id/],
    [
      "short admin token",
      [[["admin", "token"], "short"]],
      "admin.token",
      /^expected a secret of at least 16 characters$/,
    ],
    [
      "model with a space",
      [[["features", "chat", "model"], "gpt 4o"]],
      "features.chat.model",
      /^expected a model name/,
    ],
    [
      "repeated allowed model",
      [
        [
          ["features", "chat", "allowed_models"],
          ["a", "a"],
        ],
      ],
      "features.chat.allowed_models[1]",
      /^duplicate of entry \[0\]$/,
    ],
    [
      "empty key features",
      [
        [["keys", 0, "features"], []],
        [["keys", 0, "default_feature"], DELETE],
      ],
      "keys[0].features",
      /at least one feature/,
    ],
    [
      "same feature twice",
      [
        [
          ["keys", 0, "features"],
          ["chat", "chat"],
        ],
      ],
      "keys[0].features[1]",
      /^duplicate of entry \[0\]$/,
    ],
  ]);

  it("accepts every store form", () => {
    for (const store of [
      "memory",
      "redis://h",
      "rediss://u:p@h:6380/3",
      { url: "redis://h:1/0", on_error: "local" },
    ]) {
      const file = validConfigFile();
      file.store = store;
      expect(() => loadConfig(file, TEST_ENV)).not.toThrow();
    }
    expect(hashOf("f")).toMatch(/^sha256:f{64}$/);
  });
});
