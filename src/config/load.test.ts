import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { type ConfigError, isConfigError } from "./config-error.js";
import { defaultConfig, loadConfig, loadConfigFile, loadConfigText } from "./load.js";

const EXAMPLES = new URL("../../examples/", import.meta.url);
const exampleEnv = {
  ALERT_WEBHOOK_URL: "https://hooks.example.com/services/T000/B000/XXXX",
  TOKENFUSE_ADMIN_TOKEN: "admin-token-0123456789abcdef",
};

function tempFile(name: string, text: string): string {
  const path = join(mkdtempSync(join(tmpdir(), "tokenfuse-config-")), name);
  writeFileSync(path, text);
  return path;
}

/** The ConfigError that `load` throws (failing the test when it does not throw one). */
function configErrorOf(load: () => unknown): ConfigError {
  try {
    load();
  } catch (error) {
    if (isConfigError(error)) return error;
    throw error;
  }
  throw new Error("expected a ConfigError, but the config loaded");
}

describe("example files", () => {
  it("loads examples/tokenfuse.yaml with its environment variables", () => {
    const config = loadConfigFile(new URL("tokenfuse.yaml", EXAMPLES).pathname, exampleEnv);
    expect(config.upstreams.map((u) => [u.name, u.type])).toEqual([["local", "mock"]]);
    expect(Object.keys(config.features)).toEqual([
      "chat",
      "summarize",
      "code_review",
      "quick_answer",
      "support",
    ]);
    expect(config.features.code_review?.hourlyCostNanoUsd).toBe(20_000_000_000);
    expect(config.features.support).toMatchObject({ onExceed: "summarize", summarizeWith: "summarize" });
    expect(config.tiers.pro).toEqual({
      name: "pro",
      dailyTokens: 100_000,
      tokensPerMinute: 20_000,
      timeZone: "America/New_York",
    });
    expect(config.alerts.sinks).toEqual([
      { type: "log" },
      { type: "webhook", url: exampleEnv.ALERT_WEBHOOK_URL },
    ]);
    expect(config.admin).toEqual({ token: exampleEnv.TOKENFUSE_ADMIN_TOKEN });
    expect(config.prices["my-finetune"]).toEqual({
      inputPicoUsdPerToken: 3_000_000,
      outputPicoUsdPerToken: 12_000_000,
      cachedInputPicoUsdPerToken: 1_500_000,
    });
    expect(config.keys[1]).toMatchObject({ user: "backend", trusted: true, defaultFeature: "chat" });
  });

  it("keeps the commented-out openai upstream of the example valid", () => {
    const lines = readFileSync(new URL("tokenfuse.yaml", EXAMPLES), "utf8").split("\n");
    const begin = lines.findIndex((line) => line.includes("# --- begin openai upstream"));
    const end = lines.findIndex((line) => line.includes("# --- end openai upstream"));
    expect(begin).toBeGreaterThan(0);
    expect(end).toBeGreaterThan(begin + 1);
    const uncommented = lines.map((line, i) =>
      i > begin && i < end ? line.replace(/^(\s*)# /, "$1") : line,
    );
    const config = loadConfigText(uncommented.join("\n"), {
      format: "yaml",
      env: { ...exampleEnv, OPENAI_API_KEY: "sk-test" },
    });
    expect(config.upstreams[1]).toEqual({
      name: "openai",
      type: "openai",
      baseUrl: "https://api.openai.com/v1",
      apiKey: "sk-test",
      timeoutMs: 600_000,
    });
  });

  it("names every missing variable of the example", () => {
    const error = configErrorOf(() => loadConfigFile(new URL("tokenfuse.yaml", EXAMPLES).pathname, {}));
    expect(error.issues).toEqual([
      { path: "alerts.sinks[1].url", message: "environment variable ALERT_WEBHOOK_URL is not set" },
      { path: "admin.token", message: "environment variable TOKENFUSE_ADMIN_TOKEN is not set" },
    ]);
  });

  it("loads examples/tokenfuse.minimal.yaml without any environment", () => {
    const config = loadConfigFile(new URL("tokenfuse.minimal.yaml", EXAMPLES).pathname, {});
    expect(Object.keys(config.features)).toEqual(["chat"]);
    expect(Object.keys(config.tiers)).toEqual(["free", "pro", "enterprise"]);
    expect(config.upstreams).toHaveLength(1);
  });
});

describe("defaults", () => {
  it("builds the article's config from an empty object", () => {
    const config = loadConfig({}, {});
    expect(config.store).toEqual({ kind: "memory" });
    expect(config.upstreams).toEqual([
      { name: "mock", type: "mock", completionTokens: 50, latencyMs: 0, chunkTokens: 5, timeoutMs: 600_000 },
    ]);
    expect(config.features.chat).toEqual({
      name: "chat",
      model: "gpt-4o",
      allowedModels: [],
      maxInputTokens: 4000,
      maxOutputTokens: 1000,
      onExceed: "trim",
      enabled: true,
      upstream: "mock",
    });
    expect(config.features.summarize).toMatchObject({
      model: "gpt-4o-mini",
      maxInputTokens: 16000,
      maxOutputTokens: 500,
    });
    expect(config.features.code_review).toMatchObject({
      model: "gpt-4.1",
      hourlyCostNanoUsd: 20e9,
      onExceed: "reject",
    });
    expect(config.features.quick_answer).toMatchObject({
      model: "gpt-4.1-nano",
      maxInputTokens: 1000,
      onExceed: "truncate",
    });
    expect(Object.values(config.tiers).map((t) => [t.name, t.dailyTokens, t.timeZone])).toEqual([
      ["free", 10_000, "UTC"],
      ["pro", 100_000, "UTC"],
      ["enterprise", 1_000_000, "UTC"],
    ]);
    expect(config.defaultTier).toBe("free");
    expect(config.global).toEqual({ tokensPerMinute: 1_000_000 });
    expect(config.alerts).toEqual({ dailyBudgetThresholds: [0.8, 1], sinks: [{ type: "log" }] });
    expect(config.keys).toEqual([]);
    expect(config.admin).toBeUndefined();
    expect(config.unknownPrice).toBe("reject");
  });

  it("replaces whole sections rather than merging them", () => {
    const config = loadConfig(
      {
        tiers: { free: { daily_tokens: 5 } },
        features: { a: { model: "m", max_input: 1, max_output: 1, on_exceed: "reject" } },
      },
      {},
    );
    expect(Object.keys(config.tiers)).toEqual(["free"]);
    expect(Object.keys(config.features)).toEqual(["a"]);
  });

  it("defaults default_tier to free only when a free tier exists", () => {
    expect(loadConfig({ tiers: { gold: { daily_tokens: 5 } }, default_tier: "gold" }, {}).defaultTier).toBe(
      "gold",
    );
    const error = configErrorOf(() => loadConfig({ tiers: { gold: { daily_tokens: 5 } } }, {}));
    expect(error.issues).toEqual([
      { path: "default_tier", message: 'required because tiers has no "free" tier; expected one of: gold' },
    ]);
  });

  it("keeps upstream order, makes the first the default, and fills feature upstreams", () => {
    const config = loadConfig(
      {
        upstreams: {
          zeta: { type: "mock" },
          alpha: { type: "openai", api_key: "k", base_url: "http://localhost:8080/v1/" },
        },
        features: {
          a: { model: "m", max_input: 1, max_output: 1, on_exceed: "trim" },
          b: { model: "m", max_input: 1, max_output: 1, on_exceed: "trim", upstream: "alpha" },
        },
      },
      {},
    );
    expect(config.upstreams.map((u) => u.name)).toEqual(["zeta", "alpha"]);
    expect(config.upstreams[1]).toMatchObject({ baseUrl: "http://localhost:8080/v1" });
    expect([config.features.a?.upstream, config.features.b?.upstream]).toEqual(["zeta", "alpha"]);
  });

  it("resolves the store forms", () => {
    expect(loadConfig({ store: "rediss://user:pw@cache:6380/2" }, {}).store).toEqual({
      kind: "redis",
      url: "rediss://user:pw@cache:6380/2",
      keyPrefix: "tf:v1:",
      onError: "deny",
      commandTimeoutMs: 1000,
      localLimitFraction: 0.1,
    });
    expect(
      loadConfig(
        {
          store: {
            url: "redis://127.0.0.1:6379",
            key_prefix: "app:",
            on_error: "local",
            command_timeout_ms: 250,
            local_limit_fraction: 0.25,
          },
        },
        {},
      ).store,
    ).toEqual({
      kind: "redis",
      url: "redis://127.0.0.1:6379",
      keyPrefix: "app:",
      onError: "local",
      commandTimeoutMs: 250,
      localLimitFraction: 0.25,
    });
  });

  it("resolves the usage log forms: off by default, stdout, or a file path", () => {
    expect(loadConfig({}, {}).usageLog).toBeUndefined();
    expect(loadConfig({ usage_log: "stdout" }, {}).usageLog).toEqual({ kind: "stdout" });
    expect(
      loadConfig({ usage_log: { path: "${env:LOG_DIR}/usage.jsonl" } }, { LOG_DIR: "/var/log/tf" }).usageLog,
    ).toEqual({ kind: "file", path: "/var/log/tf/usage.jsonl" });
    for (const [value, message] of [
      ["stderr", 'usage_log: expected "stdout" or a mapping with path'],
      [{ path: "" }, "usage_log.path: expected a file path"],
      [{ path: "usage.jsonl\n" }, "usage_log.path: expected a file path"],
      [{ path: 42 }, "usage_log.path: expected a file path"],
      [{}, "usage_log.path: required: expected a file path"],
      [{ path: "u.jsonl", rotate: true }, "usage_log.rotate: unknown key"],
    ] as const) {
      expect(configErrorOf(() => loadConfig({ usage_log: value }, {})).message).toContain(message);
    }
  });

  it("gives a key its only feature as default feature and sorts alert thresholds", () => {
    const hash = `sha256:${"a".repeat(64)}`;
    const config = loadConfig(
      { keys: [{ hash, user: "u", features: ["chat"] }], alerts: { daily_budget_thresholds: [1, 0.5, 0.9] } },
      {},
    );
    expect(config.keys).toEqual([
      { hash, user: "u", features: ["chat"], defaultFeature: "chat", trusted: false },
    ]);
    expect(config.alerts.dailyBudgetThresholds).toEqual([0.5, 0.9, 1]);
  });

  it("canonicalises time zones", () => {
    const config = loadConfig(
      {
        tiers: {
          free: { daily_tokens: 1, time_zone: "utc" },
          b: { daily_tokens: 1, time_zone: "US/Eastern" },
        },
      },
      {},
    );
    expect([config.tiers.free?.timeZone, config.tiers.b?.timeZone]).toEqual(["UTC", "America/New_York"]);
  });

  it("uses prototype-free records, so request-supplied names find nothing by accident", () => {
    const config = defaultConfig();
    expect(config.features.constructor).toBeUndefined();
    expect("toString" in config.tiers).toBe(false);
    const proto = "__proto__";
    expect(config.prices[proto]).toBeUndefined();
  });
});

describe("money", () => {
  it("converts USD amounts and prices exactly", () => {
    const config = loadConfig(
      {
        features: {
          a: { model: "m", max_input: 1, max_output: 1, on_exceed: "trim", hourly_cost_usd: 0.1 },
          b: { model: "m", max_input: 1, max_output: 1, on_exceed: "trim", hourly_cost_usd: 0.3 },
          c: { model: "m", max_input: 1, max_output: 1, on_exceed: "trim", hourly_cost_usd: 20 },
        },
        global: { hourly_cost_usd: 8.2 },
        alerts: { hourly_cost_usd: 1.005 },
        prices: { "gpt-4.1-nano": { input: 0.1, output: 0.4, cached_input: 0.025, reasoning: 0.0375 } },
      },
      {},
    );
    expect(Object.values(config.features).map((f) => f.hourlyCostNanoUsd)).toEqual([
      100_000_000, 300_000_000, 20_000_000_000,
    ]);
    expect(config.global.hourlyCostNanoUsd).toBe(8_200_000_000);
    expect(config.alerts.hourlyCostNanoUsd).toBe(1_005_000_000);
    expect(config.prices["gpt-4.1-nano"]).toEqual({
      inputPicoUsdPerToken: 100_000,
      outputPicoUsdPerToken: 400_000,
      cachedInputPicoUsdPerToken: 25_000,
      reasoningPicoUsdPerToken: 37_500,
    });
  });

  it("reads YAML amounts as written", () => {
    const config = loadConfigText(
      "global: { hourly_cost_usd: 0.3 }\nprices: { m: { input: 0.0375, output: 1.1e-1 } }\n",
      {
        env: {},
      },
    );
    expect(config.global.hourlyCostNanoUsd).toBe(300_000_000);
    expect(config.prices.m).toEqual({ inputPicoUsdPerToken: 37_500, outputPicoUsdPerToken: 110_000 });
  });
});

describe("defaultConfig", () => {
  it("is the empty config, fresh on every call", () => {
    const a = defaultConfig();
    expect(a).toEqual(loadConfig({}, {}));
    a.features.chat = undefined as never;
    expect(defaultConfig().features.chat).toBeDefined();
  });

  it("puts an openai upstream first when the environment has OPENAI_API_KEY (SPEC §6)", () => {
    const config = defaultConfig({ OPENAI_API_KEY: "sk-live" });
    expect(config.upstreams.map((u) => u.name)).toEqual(["openai", "mock"]);
    expect(config.upstreams[0]).toMatchObject({ type: "openai", apiKey: "sk-live" });
    expect(defaultConfig({ OPENAI_API_KEY: "" }).upstreams.map((u) => u.name)).toEqual(["mock"]);
  });

  it("turns the admin API on with TOKENFUSE_ADMIN_TOKEN from the environment for the CLI (SPEC §6: config/env)", () => {
    const cli = { adminFromEnv: true };
    expect(defaultConfig({ TOKENFUSE_ADMIN_TOKEN: "0123456789abcdef0123" }, cli).admin?.token).toBe(
      "0123456789abcdef0123",
    );
    expect(defaultConfig({ TOKENFUSE_ADMIN_TOKEN: "" }, cli).admin).toBeUndefined();
    expect(defaultConfig({}, cli).admin).toBeUndefined();
    // The library has no admin API: the variable is not read there, a short one included.
    expect(defaultConfig({ TOKENFUSE_ADMIN_TOKEN: "short" }).admin).toBeUndefined();
    // As in a config file: a token too short to be safe is refused, naming the variable's setting.
    expect(() => defaultConfig({ TOKENFUSE_ADMIN_TOKEN: "short" }, cli)).toThrow(
      /TOKENFUSE_ADMIN_TOKEN: the admin token must be at least 16 characters/,
    );
  });
});

describe("sources and formats", () => {
  const file = {
    upstreams: { openai: { type: "openai", api_key: "${env:OPENAI_API_KEY}" } },
    alerts: { sinks: [{ type: "webhook", url: "https://hooks.example.com/${env:HOOK}/in" }] },
    prices: { "gpt-4.1": { input: 2, output: 8, cached_input: 0.5 } },
  };
  const env = { OPENAI_API_KEY: "sk-abc", HOOK: "T1/B2" };

  it("interpolates variables inside longer strings", () => {
    const config = loadConfig(file, env);
    expect(config.alerts.sinks).toEqual([{ type: "webhook", url: "https://hooks.example.com/T1/B2/in" }]);
    expect(config.upstreams[0]).toMatchObject({ apiKey: "sk-abc" });
  });

  it("does not modify the object it is given", () => {
    const copy = structuredClone(file);
    loadConfig(file, env);
    expect(file).toEqual(copy);
  });

  it("loads the same config from YAML, JSON and an object", () => {
    const fromObject = loadConfig(file, env);
    expect(loadConfigFile(tempFile("c.yaml", stringify(file)), env)).toEqual(fromObject);
    expect(loadConfigFile(tempFile("c.yml", stringify(file)), env)).toEqual(fromObject);
    expect(loadConfigFile(tempFile("c.json", JSON.stringify(file, null, 2)), env)).toEqual(fromObject);
    // Other extensions: detected by content.
    expect(loadConfigFile(tempFile("c.conf", JSON.stringify(file)), env)).toEqual(fromObject);
    expect(loadConfigFile(tempFile("c.conf", stringify(file)), env)).toEqual(fromObject);
    expect(loadConfig(tempFile("c.yaml", stringify(file)), env)).toEqual(fromObject);
  });

  it("accepts a $schema key so JSON files can point editors at the schema", () => {
    expect(() => loadConfigText('{"$schema": "./schema/tokenfuse.schema.json"}', { env: {} })).not.toThrow();
  });

  it("cannot inject YAML through a variable", () => {
    const config = loadConfigText('admin: { token: "${env:T}" }', {
      env: { T: "x\nstore: redis://evil:1\n# padding-padding" },
    });
    expect(config.store).toEqual({ kind: "memory" });
    expect(config.admin?.token).toBe("x\nstore: redis://evil:1\n# padding-padding");
  });

  it("reports YAML syntax errors with line and column", () => {
    const error = configErrorOf(() =>
      loadConfigText("features:\n  chat:\n    model: gpt-4o\n    model: gpt-4.1\n", { env: {} }),
    );
    expect(error.issues).toEqual([
      { path: "line 4, column 5", message: "YAML syntax: Map keys must be unique" },
    ]);
    const flow = configErrorOf(() =>
      loadConfigText("tiers: { free: { daily_tokens: 5 }\nkeys: []\n", { env: {} }),
    );
    expect(flow.issues[0]?.path).toMatch(/^line \d+, column \d+$/);
  });

  it("reports JSON syntax errors with line and column", () => {
    const error = configErrorOf(() =>
      loadConfigText('{\n  "store": "memory",\n  "tiers": {,}\n}', { fileName: "c.json", env: {} }),
    );
    expect(error.issues[0]?.path).toMatch(/^line 3, column \d+$/);
    expect(error.issues[0]?.message).toMatch(/^JSON syntax: /);
    expect(error.source).toBe("c.json");
  });

  it("rejects an empty file instead of running the demo config", () => {
    for (const text of ["", "   \n", "# only a comment\n"]) {
      expect(configErrorOf(() => loadConfigText(text, { format: "yaml", env: {} })).issues).toEqual([
        { path: "(root)", message: "the config is empty (write {} to use every default)" },
      ]);
    }
    expect(loadConfigText("{}", { env: {} }).defaultTier).toBe("free");
  });

  it("rejects a document that is not a mapping", () => {
    const error = configErrorOf(() => loadConfigText("- store\n- memory\n", { env: {} }));
    expect(error.issues).toEqual([
      { path: "(root)", message: "expected a mapping of config sections, got a list" },
    ]);
    expect(configErrorOf(() => loadConfig([] as never, {})).issues[0]?.path).toBe("(root)");
  });

  it("reports an unreadable file as a ConfigError naming it", () => {
    const error = configErrorOf(() => loadConfigFile("/nonexistent/tokenfuse.yaml", {}));
    expect(error.issues).toEqual([
      { path: "/nonexistent/tokenfuse.yaml", message: "cannot read the config file (ENOENT)" },
    ]);
    expect(error.code).toBe("invalid_config");
  });

  it("resists alias explosions", () => {
    const bomb = ["a: &a [x, x, x, x, x, x, x, x, x]"];
    for (let i = 1; i < 9; i++)
      bomb.push(
        `${String.fromCharCode(97 + i)}: &${String.fromCharCode(97 + i)} [${Array(9)
          .fill(`*${String.fromCharCode(96 + i)}`)
          .join(", ")}]`,
      );
    const error = configErrorOf(() => loadConfigText(bomb.join("\n"), { format: "yaml", env: {} }));
    expect(error.issues[0]?.message).toMatch(/aliases/);
  });
});
