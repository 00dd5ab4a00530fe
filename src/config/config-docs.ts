/**
 * Renders docs/config.md — the config reference — from the JSON Schema (itself generated from the zod
 * schema), so that every key, type, default and description in the docs is the one the loader
 * enforces. The prose around the tables is written here. A test fails when the committed file drifts.
 */
import { stringify } from "yaml";
import { configJsonSchema, type JsonSchema } from "./json-schema.js";

interface Row {
  key: string;
  type: string;
  presence: string;
  description: string;
}

function isSchema(value: unknown): value is JsonSchema {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

function schemas(value: unknown): JsonSchema[] {
  return Array.isArray(value) ? value.filter(isSchema) : [];
}

const code = (text: string) => `\`${text.replaceAll("|", "\\|")}\``;

/** The branch of an env-wrapped string (`anyOf: [checks, ${env:…}]`) that carries the checks. */
function unwrapEnv(node: JsonSchema): JsonSchema {
  const branches = schemas(node.anyOf);
  const [checks, env] = branches;
  if (
    branches.length === 2 &&
    checks !== undefined &&
    env !== undefined &&
    String(env.pattern).includes("env:")
  ) {
    return { ...checks, ...Object.fromEntries(Object.entries(node).filter(([k]) => k !== "anyOf")) };
  }
  return node;
}

function numberType(node: JsonSchema, base: string): string {
  const min = node.minimum;
  const max = node.maximum === Number.MAX_SAFE_INTEGER ? undefined : node.maximum;
  const exclusiveMin = node.exclusiveMinimum;
  if (exclusiveMin === 0 && max === 1) return `${base} in (0, 1]`;
  if (exclusiveMin === 0) return `${base} > 0`;
  if (min !== undefined && max !== undefined) return `${base} ${String(min)}…${String(max)}`;
  if (min !== undefined) return `${base} ≥ ${String(min)}`;
  return base;
}

/** A short type description of a schema node. */
function describeType(raw: JsonSchema): string {
  const node = unwrapEnv(raw);
  if (node.const !== undefined) return code(JSON.stringify(node.const));
  if (Array.isArray(node.enum)) return node.enum.map((v) => code(JSON.stringify(v))).join(" \\| ");
  const variants = schemas(node.anyOf ?? node.oneOf);
  if (variants.length > 0) {
    if (variants.every((v) => v.type === "object")) return "mapping (by `type`)";
    return variants.map(describeType).join(" or ");
  }
  switch (node.type) {
    case "integer":
      return numberType(node, "integer");
    case "number":
      return numberType(node, "number");
    case "boolean":
      return "boolean";
    case "string":
      if (node.format === "uri")
        return typeof node.pattern === "string" ? `URL (${code(node.pattern)})` : "URL";
      if (typeof node.pattern === "string") return `string matching ${code(node.pattern)}`;
      return typeof node.minLength === "number" && node.minLength > 1
        ? `string (≥ ${node.minLength} chars)`
        : "string";
    case "array": {
      const items = isSchema(node.items) ? describeType(node.items) : "values";
      return `list of ${items}`;
    }
    case "object":
      return isSchema(node.additionalProperties) ? "map of name → mapping" : "mapping";
    default:
      return "any";
  }
}

function describePresence(node: JsonSchema, required: boolean): string {
  if (required) return "**required**";
  if (node.default === undefined) return "optional";
  const text = JSON.stringify(node.default);
  return text.length > 40 ? "see below" : `default ${code(text)}`;
}

function oneLine(text: unknown): string {
  return typeof text === "string" ? text.replaceAll("|", "\\|").replaceAll("\n", " ") : "";
}

/** The object variants of a node (one for a plain mapping, several for a union by `type`). */
function objectVariants(node: JsonSchema): { label: string; node: JsonSchema }[] {
  const variants = schemas(node.anyOf ?? node.oneOf).filter((v) => v.type === "object");
  if (variants.length === 0) return node.type === "object" ? [{ label: "", node }] : [];
  return variants.map((variant) => {
    const props = isSchema(variant.properties) ? variant.properties : {};
    const tag = isSchema(props.type) ? props.type.const : undefined;
    return { label: tag === undefined ? "" : ` *(type ${String(tag)})*`, node: variant };
  });
}

/** Appends rows for the fields of `node`, found at config path `path`. */
function collectRows(node: JsonSchema, path: string, rows: Row[]): void {
  for (const { label, node: variant } of objectVariants(node)) {
    if (isSchema(variant.additionalProperties)) {
      collectRows(variant.additionalProperties, `${path}.${path === "prices" ? "<model>" : "<name>"}`, rows);
      continue;
    }
    const props = isSchema(variant.properties) ? variant.properties : {};
    const required = Array.isArray(variant.required) ? variant.required : [];
    for (const [key, child] of Object.entries(props)) {
      if (!isSchema(child)) continue;
      const childPath = `${path}.${key}`;
      rows.push({
        key: `${code(childPath)}${label}`,
        type: describeType(child),
        presence: describePresence(child, required.includes(key)),
        description: oneLine(child.description),
      });
      collectRows(child, childPath, rows);
    }
  }
  if (node.type === "array" && isSchema(node.items)) collectRows(node.items, `${path}[]`, rows);
}

function section(name: string, node: JsonSchema, required: boolean): string {
  const parts = [`### \`${name}\``, "", oneLine(node.description), ""];
  const presence = describePresence(node, required).replace("see below", "default below");
  parts.push(`Type: ${describeType(node)}. ${presence.charAt(0).toUpperCase()}${presence.slice(1)}.`, "");
  if (node.default !== undefined && JSON.stringify(node.default).length > 40) {
    parts.push("Default:", "", "```yaml", stringify({ [name]: node.default }).trimEnd(), "```", "");
  }
  const rows: Row[] = [];
  collectRows(node, name, rows);
  if (rows.length > 0) {
    parts.push("| key | type | presence | meaning |", "|---|---|---|---|");
    for (const row of rows) parts.push(`| ${row.key} | ${row.type} | ${row.presence} | ${row.description} |`);
    parts.push("");
  }
  return parts.join("\n");
}

const INTRO = `# Configuration reference

<!-- Generated from src/config/schema.ts by \`npm run schema\` (src/config/write-json-schema.ts).
     Do not edit by hand: a test fails when this file and the schema disagree. -->

tokenfuse reads one config file, \`tokenfuse.yaml\` (or \`.yml\`, or \`.json\`; any other name is read as
JSON when it starts with \`{\` or \`[\`, else as YAML). The library also takes an object of the same shape:
\`createTokenfuse({ config: { features: { … } } })\`. Keys are snake_case. See
[examples/tokenfuse.yaml](../examples/tokenfuse.yaml) for a full commented example and
[examples/tokenfuse.minimal.yaml](../examples/tokenfuse.minimal.yaml) for a small one.

Editors can validate and complete the file with the JSON Schema \`schema/tokenfuse.schema.json\`
(generated from the same schema as this page): in YAML add
\`# yaml-language-server: $schema=./node_modules/tokenfuse/schema/tokenfuse.schema.json\` as the first line;
in JSON add a \`"$schema"\` key with that path.

## Validation

- **Unknown keys are errors** at every depth (typo protection); the error suggests the closest valid key.
  A key written twice in the same mapping is an error too, in YAML and in JSON.
- Every problem is reported at once, one per line, as \`path: message\`, e.g.
  \`features.chat.max_input: expected a positive whole number of tokens, got 0\` or
  \`keys[1].tier: unknown tier "gold"; expected one of: free, pro, enterprise\`.
  YAML and JSON syntax errors name the line and column. The library throws \`ConfigError\`
  (\`code: "invalid_config"\`, \`issues: [{ path, message }]\`); the CLI exits with code 2.
- Error messages never contain string values from the file, so secrets (API keys, tokens, webhook and
  Redis URLs) cannot leak through them; numbers are shown.
- Names of features, tiers and upstreams start with a letter and use letters, digits, \`_\`, \`-\` and \`.\`
  (at most 64): they appear in HTTP headers, metric labels and Redis keys.
- Token amounts are positive whole numbers (zero, negative and fractional values are errors).
- An empty file is an error (write \`{}\` to get every default): a truncated file must not silently
  start the demo config.
- Besides each value, these references are checked: \`default_tier\` and every key's \`tier\` name a tier;
  every key's \`features\` and \`default_feature\` name features, and \`default_feature\` is one of the key's
  \`features\`; a feature's \`upstream\` names an upstream; \`summarize_with\` is given exactly when
  \`on_exceed\` is \`summarize\`, and names a feature that does not itself summarize (no cycles); key
  hashes are unique; list entries (\`allowed_models\`, a key's \`features\`, \`daily_budget_thresholds\`)
  are not repeated.

## Environment variables

Any string value may contain \`\${env:NAME}\`, alone or inside a longer string
(\`url: "https://hooks.example.com/\${env:HOOK_ID}"\`). NAME is letters, digits and \`_\`.

- A variable that is not set, or is set to the empty string, is an error naming the path:
  \`upstreams.openai.api_key: environment variable OPENAI_API_KEY is not set\`.
- \`$\${\` is a literal \`\${\`: \`"$\${env:X}"\` is the text \`\${env:X}\`. Any other \`$\` is literal. Any other
  \`\${…}\` is an error.
- Interpolation happens on the parsed document, before validation, and only in values (not in keys).
  A variable's value is always a string: it cannot add YAML structure, is not interpolated again, and
  does not turn into a number (\`max_input: "\${env:X}"\` is an error — numbers are written as numbers).
- In YAML, quote values that start with \`\${\` inside flow mappings (\`{ api_key: "\${env:KEY}" }\`).

YAML is read as YAML 1.2 (\`yes\`/\`no\` are strings, not booleans). Anchors and aliases work
(\`chat: &chat { … }\`, then \`assistant: *chat\`); merge keys (\`<<: *chat\`) are not supported.

## Defaults

- **Whole-section defaults.** \`upstreams\`, \`features\` and \`tiers\` default as a whole: when the key is
  omitted you get the built-in entries shown below; when it is given, its entries *replace* the
  built-in ones (they are not merged), so a file that defines \`features\` has exactly those features.
  An empty mapping is an error.
- **\`default_tier\`** defaults to \`free\` only when a tier named \`free\` exists (always true with the
  built-in tiers); otherwise it is required.
- **Field defaults.** Inside a section, omitted fields take the defaults in the tables below (a
  feature's \`enabled: true\`, a tier's \`time_zone: UTC\`, …). \`global\` and \`alerts\` may be omitted or
  partly given; their fields default individually.
- \`store\` defaults to \`memory\`, \`keys\` to none, \`prices\` to none (the built-in price table
  applies), \`unknown_price\` to \`reject\`; without \`admin\` the admin API is disabled, and without
  \`usage_log\` no usage log is written.
- The first upstream is the default one: a feature without \`upstream\` uses it.
- With no config file at all, tokenfuse runs the built-in example config: every default above
  (memory store, the \`mock\` upstream, the four features, the three tiers). When the environment
  has \`OPENAI_API_KEY\`, that config puts a real \`openai\` upstream (https://api.openai.com/v1, that
  key) first and the mock second, so requests go to OpenAI.

## Units

- Tokens are whole numbers. Durations are milliseconds (\`…_ms\`); timers accept at most 2147483647.
- Money is written in USD and converted exactly, digit by digit (never with float arithmetic), to
  integers: caps and alert thresholds (\`hourly_cost_usd\`) to nano-USD (10⁻⁹ USD), so they may have at
  most 9 decimal places; prices (USD per 1M tokens) to pico-USD per token (USD per 1M × 10⁶), so they
  may have at most 6 decimal places ($0.0375 / 1M tokens = 37 500 pico-USD per token). A value with
  more decimals is an error rather than being rounded.
- A tier's \`time_zone\` is an IANA name (\`UTC\`, \`Europe/Paris\`, \`America/New_York\`); bare offsets
  such as \`+05:00\` are errors. Daily budgets reset at that zone's midnight. A user's daily counter is
  named by the local date (\`user:{alice}:day:2026-11-24\`), not by the zone: a user moved during a day
  to a tier in another zone keeps what was used on the same-named date there (and a request that spans
  midnight is charged to the day it was admitted on, while its cost counts in the hour it settled).

## Reference
`;

/** Renders the whole config reference page (Markdown). */
export function renderConfigReference(): string {
  const root = configJsonSchema();
  const props = isSchema(root.properties) ? root.properties : {};
  const required = Array.isArray(root.required) ? root.required : [];
  const sections = Object.entries(props)
    .filter((entry): entry is [string, JsonSchema] => entry[0] !== "$schema" && isSchema(entry[1]))
    .map(([name, node]) => section(name, node, required.includes(name)));
  const page = `${INTRO}\n${sections.join("\n")}`.replace(/\n{3,}/g, "\n\n").trimEnd();
  return `${page}\n`;
}
