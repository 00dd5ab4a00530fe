import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { type ConfigIssue, isConfigError } from "./config-error.js";
import { loadConfig, loadConfigText } from "./load.js";
import { isIanaTimeZone } from "./schema-fields.js";
import { hashOf, TEST_ENV, validConfigFile } from "./test-config-fixtures.js";
import type { ResolvedConfig } from "./types.js";

type Path = (string | number)[];
type Outcome = { ok: true; config: ResolvedConfig } | { ok: false; issues: ConfigIssue[] };

/** Runs `load`, turning a ConfigError into a value; any other exception escapes and fails the property. */
function outcome(load: () => ResolvedConfig): Outcome {
  try {
    return { ok: true, config: load() };
  } catch (error) {
    if (isConfigError(error)) return { ok: false, issues: [...error.issues] };
    throw error;
  }
}

const isPositiveInt = (n: unknown) => Number.isSafeInteger(n) && (n as number) > 0;

/** What every loaded config guarantees to its consumers, whatever the file said. */
function expectWellFormed(config: ResolvedConfig): void {
  const upstreams = new Set(config.upstreams.map((u) => u.name));
  expect(upstreams.size).toBe(config.upstreams.length);
  expect(upstreams.size).toBeGreaterThan(0);
  const features = config.features;
  expect(Object.keys(features).length).toBeGreaterThan(0);
  for (const [name, f] of Object.entries(features)) {
    expect(f.name).toBe(name);
    expect(isPositiveInt(f.maxInputTokens) && isPositiveInt(f.maxOutputTokens)).toBe(true);
    expect(f.upstream !== undefined && upstreams.has(f.upstream)).toBe(true);
    expect(f.summarizeWith !== undefined).toBe(f.onExceed === "summarize");
    if (f.summarizeWith !== undefined) expect(features[f.summarizeWith]?.onExceed).not.toBe("summarize");
    if (f.dailyTokens !== undefined) expect(isPositiveInt(f.dailyTokens)).toBe(true);
    if (f.hourlyCostNanoUsd !== undefined) expect(isPositiveInt(f.hourlyCostNanoUsd)).toBe(true);
  }
  for (const [name, t] of Object.entries(config.tiers)) {
    expect(t.name).toBe(name);
    expect(isPositiveInt(t.dailyTokens) && isIanaTimeZone(t.timeZone)).toBe(true);
  }
  expect(Object.hasOwn(config.tiers, config.defaultTier)).toBe(true);
  expect(isPositiveInt(config.global.tokensPerMinute)).toBe(true);
  expect(new Set(config.keys.map((k) => k.hash)).size).toBe(config.keys.length);
  for (const key of config.keys) {
    if (key.tier !== undefined) expect(Object.hasOwn(config.tiers, key.tier)).toBe(true);
    for (const f of key.features ?? []) expect(Object.hasOwn(features, f)).toBe(true);
    if (key.defaultFeature !== undefined) {
      expect((key.features ?? Object.keys(features)).includes(key.defaultFeature)).toBe(true);
    }
  }
  for (const price of Object.values(config.prices)) {
    for (const pico of Object.values(price)) expect(Number.isSafeInteger(pico) && pico >= 0).toBe(true);
  }
}

// ------------------------------------------------------------------------------------------ mutations

function allPaths(node: unknown, path: Path = []): Path[] {
  const out: Path[] = [path];
  if (Array.isArray(node)) {
    node.forEach((item, i) => {
      out.push(...allPaths(item, [...path, i]));
    });
  } else if (node !== null && typeof node === "object") {
    for (const [key, value] of Object.entries(node)) out.push(...allPaths(value, [...path, key]));
  }
  return out;
}

const BASE_PATHS = allPaths(validConfigFile());

/** Values that exercise the loader's edges: references, interpolation, units, prototype names. */
const SPECIAL_VALUES = [
  "chat",
  "summarize",
  "pro",
  "free",
  "local",
  "openai",
  "memory",
  "redis://127.0.0.1:6379",
  "summarize",
  "reject",
  "trim",
  "mock",
  "webhook",
  "log",
  "UTC",
  "+05:00",
  "${env:OPENAI_API_KEY}",
  "${env:MISSING}",
  "$${env:X}",
  "${",
  "__proto__",
  "constructor",
  hashOf("a"),
  hashOf("c"),
  "",
  0,
  -0,
  -1,
  1,
  1.5,
  0.1,
  0.0000000001,
  1e21,
  2 ** 53,
  2 ** 31,
  true,
  false,
  null,
  [],
  {},
  ["chat"],
  { type: "mock" },
];
const KEY_NAMES = [
  "__proto__",
  "<<",
  "constructor",
  "type",
  "model",
  "features",
  "tier",
  "url",
  "free",
  "chat",
  "x",
];

type Mutation = { path: Path; op: "delete" | "set" | "add"; key: string; value: unknown };

function mutationArb(value: fc.Arbitrary<unknown>): fc.Arbitrary<Mutation> {
  return fc.record({
    path: fc.constantFrom(...BASE_PATHS),
    op: fc.constantFrom("delete", "set", "add"),
    key: fc.oneof(fc.constantFrom(...KEY_NAMES), fc.string({ maxLength: 8 })),
    value,
  });
}

const jsonValues = fc.oneof(fc.constantFrom(...SPECIAL_VALUES), fc.jsonValue({ maxDepth: 2 }));
const anyValues = fc.oneof(
  jsonValues,
  fc.anything({
    maxDepth: 2,
    withBoxedValues: true,
    withMap: true,
    withSet: true,
    withObjectString: true,
    withNullPrototype: true,
    withBigInt: true,
    withDate: true,
    withTypedArray: true,
    withSparseArray: true,
  }),
);

/** Sets an own property, even one named "__proto__". */
function put(target: object, key: string | number, value: unknown): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

function applyMutations(mutations: readonly Mutation[]): unknown {
  let root: unknown = validConfigFile();
  for (const { path, op, key, value } of mutations) {
    if (path.length === 0) {
      if (op === "set") root = value;
      else if (op === "add" && root !== null && typeof root === "object") put(root, key, value);
      continue;
    }
    let parent: unknown = root;
    for (const segment of path.slice(0, -1)) {
      parent =
        parent !== null && typeof parent === "object"
          ? (parent as Record<string, unknown>)[segment]
          : undefined;
    }
    const last = path[path.length - 1] as string | number;
    if (parent === null || typeof parent !== "object" || !Object.hasOwn(parent, last)) continue;
    // A typed array placed by an earlier mutation is a leaf value, not config structure: its
    // elements cannot be deleted (that throws in the harness, not in the loader).
    if (ArrayBuffer.isView(parent)) continue;
    const node = (parent as Record<string | number, unknown>)[last];
    if (op === "delete") {
      if (Array.isArray(parent) && typeof last === "number") parent.splice(last, 1);
      else delete (parent as Record<string | number, unknown>)[last];
    } else if (op === "set") {
      put(parent, last, value);
    } else if (Array.isArray(node)) {
      node.push(value);
    } else if (node !== null && typeof node === "object") {
      put(node, key, value);
    }
  }
  return root;
}

describe("config loader properties", () => {
  it("a randomly mutated valid config either loads well-formed or throws ConfigError", () => {
    fc.assert(
      fc.property(fc.array(mutationArb(anyValues), { minLength: 1, maxLength: 4 }), (mutations) => {
        const result = outcome(() =>
          loadConfig(applyMutations(mutations) as Record<string, unknown>, TEST_ENV),
        );
        if (result.ok) expectWellFormed(result.config);
        else expect(result.issues.length).toBeGreaterThan(0);
      }),
      { numRuns: 400 },
    );
  });

  it("arbitrary values at the root never escape as other exceptions", () => {
    fc.assert(
      fc.property(
        fc.anything({ withNullPrototype: true, withMap: true, withBigInt: true, withDate: true }),
        (value) => {
          outcome(() => loadConfig(value as Record<string, unknown>, TEST_ENV));
        },
      ),
    );
    fc.assert(
      fc.property(fc.string({ maxLength: 200 }), (text) => {
        outcome(() => loadConfigText(text, { format: "yaml", env: TEST_ENV }));
        outcome(() => loadConfigText(text, { format: "json", env: TEST_ENV }));
      }),
    );
  });

  it("JSON and YAML of the same mutated object give the same outcome", () => {
    fc.assert(
      fc.property(fc.array(mutationArb(jsonValues), { maxLength: 3 }), (mutations) => {
        const file = applyMutations(mutations);
        const fromJson = outcome(() =>
          loadConfigText(JSON.stringify(file), { format: "json", env: TEST_ENV }),
        );
        const fromYaml = outcome(() => loadConfigText(stringify(file), { format: "yaml", env: TEST_ENV }));
        expect(fromYaml).toEqual(fromJson);
        // A string given to loadConfig is a file path by design; any other value is the config itself.
        if (typeof file !== "string") {
          expect(outcome(() => loadConfig(file as Record<string, unknown>, TEST_ENV))).toEqual(fromJson);
        }
      }),
      { numRuns: 300 },
    );
  });

  it("generated valid configs load, and load equal from JSON, YAML and the object", () => {
    fc.assert(
      fc.property(validConfigArb, (file) => {
        const fromObject = loadConfig(file, TEST_ENV);
        expectWellFormed(fromObject);
        expect(loadConfigText(JSON.stringify(file), { format: "json", env: TEST_ENV })).toEqual(fromObject);
        expect(loadConfigText(stringify(file), { format: "yaml", env: TEST_ENV })).toEqual(fromObject);
      }),
      { numRuns: 200 },
    );
  });
});

// ---------------------------------------------------------------------------------- valid generator

const name = fc.stringMatching(/^[a-z][a-z0-9_.-]{0,10}$/);
const model = fc.stringMatching(/^[a-z0-9][a-z0-9:./@-]{0,20}$/);
const tokens = fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER });

/** A decimal with at most `places` decimals and 15 significant digits, as text would give it. */
function decimal(places: number, min: number): fc.Arbitrary<number> {
  return fc
    .tuple(fc.integer({ min, max: 999_999_999_999_999 }), fc.integer({ min: 0, max: places }))
    .map(([digits, p]) => digits / 10 ** p)
    .map((n) => Number(n.toPrecision(15)))
    .filter((n) => n >= min && String(n).replace(/^[0.]+|\./g, "").length <= 15);
}

const usd = decimal(9, 1).filter((n) => n * 1e9 <= Number.MAX_SAFE_INTEGER);
const price = decimal(6, 0).filter((n) => n * 1e6 <= Number.MAX_SAFE_INTEGER);
const opt = <T>(arb: fc.Arbitrary<T>) => fc.option(arb, { nil: undefined });

const featureArb = fc.record(
  {
    model,
    allowed_models: fc.uniqueArray(model, { maxLength: 3 }),
    max_input: tokens,
    max_output: tokens,
    on_exceed: fc.constantFrom("reject", "trim", "truncate"),
    daily_tokens: opt(tokens),
    hourly_cost_usd: opt(usd),
    enabled: fc.boolean(),
  },
  { requiredKeys: ["model", "max_input", "max_output", "on_exceed"] },
);

const tierArb = fc.record(
  {
    daily_tokens: tokens,
    tokens_per_minute: opt(tokens),
    time_zone: fc.constantFrom("UTC", "Europe/Paris", "America/New_York", "Asia/Kolkata", "Pacific/Chatham"),
  },
  { requiredKeys: ["daily_tokens"] },
);

const upstreamArb = fc.oneof(
  fc.record({ type: fc.constant("mock"), completion_tokens: fc.nat(), latency_ms: fc.nat({ max: 1000 }) }),
  fc.record({ type: fc.constantFrom("openai", "anthropic"), api_key: fc.constant("${env:OPENAI_API_KEY}") }),
);

const validConfigArb = fc
  .record({
    upstreams: fc.dictionary(name, upstreamArb, { minKeys: 1, maxKeys: 3 }),
    features: fc.dictionary(name, featureArb, { minKeys: 1, maxKeys: 4 }),
    tiers: fc.dictionary(name, tierArb, { minKeys: 1, maxKeys: 3 }),
    global: fc.record({ tokens_per_minute: tokens, hourly_cost_usd: opt(usd) }),
    prices: fc.dictionary(model, fc.record({ input: price, output: price, cached_input: opt(price) }), {
      maxKeys: 3,
    }),
    hashes: fc.uniqueArray(fc.stringMatching(/^[0-9a-f]{64}$/), { maxLength: 3 }),
    summarizer: fc.boolean(),
  })
  .chain((c) => {
    const featureNames = Object.keys(c.features);
    const tierNames = Object.keys(c.tiers);
    const keyArb = (hash: string) =>
      fc.record({
        hash: fc.constant(`sha256:${hash}`),
        user: name,
        tier: fc.constantFrom(...tierNames),
        features: fc.subarray(featureNames, { minLength: 1 }),
        trusted: fc.boolean(),
      });
    return fc.record({
      rest: fc.constant(c),
      keys: fc.tuple(...c.hashes.map(keyArb)),
      default_tier: fc.constantFrom(...tierNames),
    });
  })
  .map(({ rest, keys, default_tier }) => {
    const features: Record<string, unknown> = { ...rest.features };
    const [first] = Object.keys(features);
    if (rest.summarizer && first !== undefined && !Object.hasOwn(features, "summarizing")) {
      features.summarizing = {
        model: "gpt-4o",
        max_input: 100,
        max_output: 10,
        on_exceed: "summarize",
        summarize_with: first,
      };
    }
    return {
      upstreams: rest.upstreams,
      features,
      tiers: rest.tiers,
      default_tier,
      global: rest.global,
      prices: rest.prices,
      keys,
    };
  });
