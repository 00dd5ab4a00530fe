import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { parse as parseYaml } from "yaml";
import type { ResolvedConfig } from "../config/types.js";
import { TokenBudgetError } from "../core/errors.js";
import { billedDefinitions, validateAdmitRequest } from "../core/request.js";
import type { ChatMessage, ToolDefinition } from "../core/types.js";
import { createPriceTable } from "../cost/price-table.js";
import { checkGatewayUpstreams } from "../gateway/upstream/create-clients.js";
import { tokenizerForModel } from "../tokenizers/index.js";
import { checkUsageLogPath } from "../usage-log/writer.js";
import { resolveCliConfig } from "./config-arg.js";
import { CliError, type CliIo, parseCliArgs, readInput } from "./io.js";
import { num, renderTable, usd } from "./table.js";

/** The budget table `check` prints. */
export function budgetTable(config: ResolvedConfig): string {
  const features = renderTable([
    ["feature", "model", "max_input", "max_output", "on_exceed", "daily_tokens", "hourly_cost", "enabled"],
    ...Object.values(config.features).map((f) => [
      f.name,
      f.model,
      num(f.maxInputTokens),
      num(f.maxOutputTokens),
      f.onExceed + (f.summarizeWith ? ` (${f.summarizeWith})` : ""),
      num(f.dailyTokens),
      usd(f.hourlyCostNanoUsd),
      f.enabled ? "yes" : "no",
    ]),
  ]);
  const tiers = renderTable([
    ["tier", "daily_tokens", "tokens_per_minute", "time_zone"],
    ...Object.values(config.tiers).map((t) => [
      t.name + (t.name === config.defaultTier ? " (default)" : ""),
      num(t.dailyTokens),
      num(t.tokensPerMinute),
      t.timeZone,
    ]),
  ]);
  const store = config.store.kind === "memory" ? "memory" : `redis (on_error: ${config.store.onError})`;
  const upstreams = config.upstreams.map((u) => `${u.name} (${u.type})`).join(", ");
  return [
    features,
    "",
    tiers,
    "",
    `global: ${num(config.global.tokensPerMinute)} tokens/minute${config.global.hourlyCostNanoUsd !== undefined ? `, ${usd(config.global.hourlyCostNanoUsd)}/hour` : ""}`,
    `store: ${store}`,
    `upstreams: ${upstreams}`,
    `api keys: ${config.keys.length}`,
  ].join("\n");
}

/**
 * Limits too small for a feature's largest request (its max_input + max_output): such requests are
 * refused whatever was spent before ("can never fit"), which a config review should know about.
 */
export function capWarnings(config: ResolvedConfig): string[] {
  const out: string[] = [];
  for (const f of Object.values(config.features)) {
    const full = f.maxInputTokens + f.maxOutputTokens;
    const needs = `feature ${f.name} at its caps needs ${num(full)} tokens (max_input + max_output)`;
    const over = (what: string, limit: number) => {
      if (full > limit)
        out.push(`${needs}, more than ${what} (${num(limit)}): its largest requests are always refused`);
    };
    if (f.dailyTokens !== undefined) over("its own daily_tokens", f.dailyTokens);
    for (const t of Object.values(config.tiers)) {
      over(`tier ${t.name}'s daily_tokens`, t.dailyTokens);
      if (t.tokensPerMinute !== undefined) over(`tier ${t.name}'s tokens_per_minute`, t.tokensPerMinute);
    }
    over("the global tokens_per_minute", config.global.tokensPerMinute);
  }
  return out;
}

/**
 * Requests `on_error: local` refuses while Redis is unreachable. Each process then admits alone into
 * `floor(limit × local_limit_fraction)` of every scope's limit (the guarded store's fallback), and a
 * reservation is the input plus the output cap (`max_output` unless the caller asks for fewer), so a
 * share below a feature's largest request refuses those requests, and a share below its smallest
 * one (an empty message plus `max_output`) refuses every request that keeps the output cap. Warnings,
 * not errors: the config works while Redis is up. A request larger than the whole limit is already
 * in {@link capWarnings}.
 */
export function localShareWarnings(config: ResolvedConfig): string[] {
  if (config.store.kind !== "redis" || config.store.onError !== "local") return [];
  const fraction = config.store.localLimitFraction;
  const out: string[] = [];
  for (const f of Object.values(config.features)) {
    const largest = f.maxInputTokens + f.maxOutputTokens;
    // The least input any request has: one empty message, as the engine counts it for this model.
    const leastInput = tokenizerForModel(f.model).countChat([{ role: "user", content: "" }]);
    const smallest = leastInput + f.maxOutputTokens;
    const check = (what: string, limit: number) => {
      const share = Math.floor(limit * fraction);
      const admits = `feature ${f.name}: while Redis is unreachable (on_error: local) each process admits at most ${num(share)} tokens of ${what} (local_limit_fraction ${fraction} × ${num(limit)})`;
      if (smallest > share)
        out.push(
          `${admits}, less than even the feature's smallest request at its output cap (${num(smallest)}: ${num(leastInput)} input + max_output ${num(f.maxOutputTokens)}): every request that does not ask for fewer output tokens is refused until Redis is back`,
        );
      else if (largest > share && largest <= limit)
        out.push(
          `${admits}, less than the feature's largest request (${num(largest)}: max_input + max_output): its largest requests are refused until Redis is back`,
        );
    };
    if (f.dailyTokens !== undefined) check(`feature ${f.name}'s daily_tokens`, f.dailyTokens);
    for (const t of Object.values(config.tiers)) {
      check(`tier ${t.name}'s daily_tokens`, t.dailyTokens);
      if (t.tokensPerMinute !== undefined) check(`tier ${t.name}'s tokens_per_minute`, t.tokensPerMinute);
    }
    check("the global tokens_per_minute", config.global.tokensPerMinute);
  }
  return out;
}

/**
 * Models the engine refuses to admit: with `unknown_price: reject`, a request whose model has no
 * price (the config's `prices:`, else the maintained table, at `nowMs`) is refused with
 * `price_unknown` before anything is reserved. A feature's own model is an error (every request to
 * the feature is refused, unless it names a priced allowed model); an allowed model only fails the
 * requests that name it, a warning. Nothing is refused under `allow_and_alert`.
 */
export function priceProblems(
  config: ResolvedConfig,
  nowMs: number,
): { errors: string[]; warnings: string[] } {
  const errors: string[] = [];
  const warnings: string[] = [];
  if (config.unknownPrice !== "reject") return { errors, warnings };
  const prices = createPriceTable(config.prices);
  const unpriced = (model: string) => prices.priceFor(model, nowMs) === undefined;
  for (const f of Object.values(config.features)) {
    if (unpriced(f.model)) {
      // A request naming a priced model the feature allows is still admitted.
      const escapes = [...new Set(f.allowedModels)].filter((m) => m !== f.model && !unpriced(m));
      errors.push(
        `feature ${f.name}: model "${f.model}" has no known price and unknown_price is reject: every request to the feature${escapes.length > 0 ? ` that does not name ${escapes.map((m) => `"${m}"`).join(" or ")}` : ""} is refused with price_unknown (add the model under prices:, or set unknown_price: allow_and_alert)`,
      );
    }
    for (const m of new Set(f.allowedModels)) {
      if (m !== f.model && unpriced(m))
        warnings.push(
          `feature ${f.name}: allowed model "${m}" has no known price and unknown_price is reject: requests naming it are refused with price_unknown (add it under prices:)`,
        );
    }
  }
  return { errors, warnings };
}

const list = (title: string, items: string[]) =>
  items.length > 0 ? `\n${title}:\n${items.map((w) => `- ${w}\n`).join("")}` : "";

interface Fixture {
  file: string;
  feature: string;
  messages: ChatMessage[];
  /** Every billed definition: `tools`, `functions` and a `response_format` JSON schema. */
  tools?: ToolDefinition[];
  model?: string;
}

function loadFixture(file: string, raw: string): Fixture {
  let data: unknown;
  try {
    data = file.endsWith(".json") ? JSON.parse(raw) : parseYaml(raw);
  } catch (e) {
    throw new CliError(
      `${file}: not valid ${file.endsWith(".json") ? "JSON" : "YAML"}: ${(e as Error).message.split("\n")[0]}`,
    );
  }
  if (typeof data !== "object" || data === null || Array.isArray(data)) {
    throw new CliError(`${file}: expected an object with "feature" and "messages"`);
  }
  const o = data as Record<string, unknown>;
  if (typeof o.feature !== "string") throw new CliError(`${file}: "feature" must be a string`);
  // What the gateway counts besides the messages: tools, legacy functions, a response_format schema.
  const tools = billedDefinitions(o);
  if (tools instanceof TokenBudgetError) throw new CliError(`${file}: ${tools.message}`);
  const err = validateAdmitRequest({
    feature: o.feature,
    user: "check",
    messages: o.messages as ChatMessage[],
    tools,
  });
  if (err) throw new CliError(`${file}: ${err.message}`);
  return {
    file,
    feature: o.feature,
    messages: o.messages as ChatMessage[],
    ...(tools ? { tools } : {}),
    ...(typeof o.model === "string" ? { model: o.model } : {}),
  };
}

/** The fixture files in `dir`, sorted; a CliError (exit 2) naming `dir` when it cannot be listed. */
function listFixtures(dir: string): string[] {
  // An empty value (`--fixtures "$DIR"` with DIR unset) must not skip the fixtures gate.
  if (dir === "") throw new CliError("--fixtures needs a directory, got an empty value");
  let files: string[];
  try {
    if (!statSync(dir).isDirectory()) throw Object.assign(new Error("not a directory"), { code: "ENOTDIR" });
    files = readdirSync(dir)
      .filter((f) => /\.(json|ya?ml)$/.test(f))
      .sort();
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why =
      code === "ENOENT"
        ? "no such file or directory"
        : code === "ENOTDIR"
          ? "not a directory"
          : code === "EACCES" || code === "EPERM"
            ? "permission denied"
            : (e as Error).message.split("\n")[0];
    throw new CliError(`cannot read fixtures directory ${dir}: ${why}`);
  }
  if (files.length === 0) throw new CliError(`no fixtures (*.json, *.yaml) in ${dir}`);
  return files;
}

/** `tokenfuse check [--config F] [--fixtures DIR]` */
export async function runCheck(args: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseCliArgs(
    args,
    { config: { type: "string" }, fixtures: { type: "string" } },
    false,
  );
  void positionals;
  const { config, source } = resolveCliConfig(values.config as string | undefined, io, {
    adminFromEnv: true,
  });
  // A fixtures directory that cannot be listed is bad usage (exit 2), found before anything is printed.
  const dir = values.fixtures as string | undefined;
  const files = dir === undefined ? [] : listFixtures(dir);
  // What `serve` (or a library with a usage log) would refuse at start fails here too: a deploy
  // gate must not pass a config the gateway then refuses.
  checkGatewayUpstreams(config);
  checkUsageLogPath(config.usageLog);
  // What the gateway accepts at start but then refuses on every request fails the check (exit 1).
  const prices = priceProblems(config, Date.now());
  const errors = prices.errors;
  const warnings = [...capWarnings(config), ...localShareWarnings(config), ...prices.warnings];
  io.out(
    `${errors.length > 0 ? "config FAILED" : "config OK"}: ${source}\n\n${budgetTable(config)}\n${list("errors", errors)}${list("warnings", warnings)}`,
  );
  if (dir === undefined) return errors.length > 0 ? 1 : 0;
  const rows: string[][] = [["fixture", "feature", "model", "input_tokens", "max_input", "result"]];
  let failed = 0;
  for (const name of files) {
    const fx = loadFixture(name, await readInput(join(dir, name), io));
    const feature = Object.hasOwn(config.features, fx.feature) ? config.features[fx.feature] : undefined;
    if (!feature) {
      failed++;
      rows.push([name, fx.feature, "-", "-", "-", "FAIL: unknown feature"]);
      continue;
    }
    const model = fx.model && feature.allowedModels.includes(fx.model) ? fx.model : feature.model;
    const tokenizer = tokenizerForModel(model);
    const counted = tokenizer.countChatDetailed(fx.messages, fx.tools);
    const n = counted.tokens;
    const fits = n <= feature.maxInputTokens;
    if (!fits) failed++;
    rows.push([
      name,
      fx.feature,
      model,
      `${num(n)}${counted.exact ? "" : " (est.)"}`,
      num(feature.maxInputTokens),
      fits ? "ok" : `FAIL: over by ${num(n - feature.maxInputTokens)} (on_exceed: ${feature.onExceed})`,
    ]);
  }
  io.out(
    `\n${renderTable(rows)}\n\n${files.length - failed} of ${files.length} fixtures fit their feature\n`,
  );
  return failed > 0 || errors.length > 0 ? 1 : 0;
}
