/**
 * The config loader — the one choke point through which every config (file, text, object, built-in)
 * becomes a {@link ResolvedConfig}: parse → interpolate `${env:…}` → validate → check references →
 * resolve units. Every issue found is reported at once in a {@link ConfigError}.
 */
import { readFileSync } from "node:fs";
import { ConfigError, finalizeIssues, type RawConfigIssue } from "./config-error.js";
import { isPathWithin } from "./config-path.js";
import { type Env, interpolateEnv } from "./env-interpolation.js";
import { type ConfigFormat, detectFormat, parseConfigText } from "./parse-text.js";
import { checkReferences } from "./references.js";
import { resolveConfig } from "./resolve.js";
import { type ConfigFileInput, configFileSchema } from "./schema.js";
import type { ResolvedConfig } from "./types.js";
import { convertZodIssues, fallbackErrorMap } from "./zod-issues.js";

/** A config: a file path, or an object of the file's shape (snake_case keys, `${env:…}` allowed). */
export type ConfigSource = string | ConfigFileInput | Readonly<Record<string, unknown>>;

/** Options of {@link loadConfigText}. */
export interface LoadTextOptions {
  /** `yaml` or `json`; detected from `fileName` or the content when omitted. */
  format?: ConfigFormat;
  /** Used to detect the format and named in the error. */
  fileName?: string;
  /** Environment for `${env:NAME}` (default `process.env`). */
  env?: Env;
}

/**
 * Validates and resolves a parsed config tree (the file's shape). Throws {@link ConfigError} listing
 * every issue.
 */
export function resolveConfigTree(tree: unknown, env: Env = process.env, source?: string): ResolvedConfig {
  const interpolated = interpolateEnv(tree, env);
  const parsed = configFileSchema.safeParse(interpolated.value, { error: fallbackErrorMap });
  const later: RawConfigIssue[] = [
    ...(parsed.success ? [] : convertZodIssues(parsed.error.issues, interpolated.value)),
    ...checkReferences(interpolated.value),
  ];
  // A value whose interpolation failed is reported once, for the variable; not again for its shape.
  const failed = interpolated.failedPaths;
  const issues = [
    ...interpolated.issues,
    ...later.filter((issue) => !failed.some((path) => isPathWithin(issue.path, path))),
  ];
  if (!parsed.success && issues.length === 0) issues.push({ path: [], message: "invalid config" });
  if (issues.length > 0 || !parsed.success) throw new ConfigError(finalizeIssues(issues), source);
  return resolveConfig(parsed.data);
}

/** Loads config text (YAML or JSON). Throws {@link ConfigError}. */
export function loadConfigText(text: string, options: LoadTextOptions = {}): ResolvedConfig {
  const format = options.format ?? detectFormat(text, options.fileName);
  const parsed = parseConfigText(text, format);
  if (!parsed.ok) throw new ConfigError(finalizeIssues(parsed.issues), options.fileName);
  return resolveConfigTree(parsed.value, options.env ?? process.env, options.fileName);
}

/**
 * Loads a config file: `.yaml`/`.yml` as YAML, `.json` as JSON, any other name by its content.
 * Throws {@link ConfigError}, also when the file cannot be read.
 */
export function loadConfigFile(path: string, env: Env = process.env): ResolvedConfig {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    const reason = typeof code === "string" ? code : "read error";
    throw new ConfigError([{ path, message: `cannot read the config file (${reason})` }], path);
  }
  return loadConfigText(text, { fileName: path, env });
}

/**
 * Loads a config from a file path or from an object of the file's shape (as the library's
 * `createTokenfuse({ config })` accepts). Throws {@link ConfigError} listing every issue.
 */
export function loadConfig(source: ConfigSource, env: Env = process.env): ResolvedConfig {
  if (typeof source === "string") return loadConfigFile(source, env);
  return resolveConfigTree(source, env);
}

/**
 * The built-in example config (the article's four features and three tiers, memory store) that runs
 * when there is no config file. Its only upstream is the deterministic `mock`, unless `env` is given
 * and holds a non-empty `OPENAI_API_KEY`: then an `openai` upstream using it comes first (the default)
 * and `mock` second (SPEC §6); with `adminFromEnv` (the CLI), a non-empty `TOKENFUSE_ADMIN_TOKEN`
 * turns the admin API on with that token (at least 16 characters, as in a config file). Returns a
 * fresh object on every call.
 */
export function defaultConfig(env?: Env, opts: { adminFromEnv?: boolean } = {}): ResolvedConfig {
  const openAiKey = env?.OPENAI_API_KEY;
  const upstreams =
    openAiKey !== undefined && openAiKey !== ""
      ? { openai: { type: "openai", api_key: "${env:OPENAI_API_KEY}" }, mock: { type: "mock" } }
      : undefined;
  // SPEC §6: the admin token from config or environment; a config file names it as ${env:NAME}.
  // Only where there is an admin API to turn on (the CLI's serve and check): the library has none.
  const adminToken = opts.adminFromEnv ? env?.TOKENFUSE_ADMIN_TOKEN : undefined;
  if (adminToken !== undefined && adminToken !== "" && adminToken.length < 16)
    throw new ConfigError(
      [{ path: "TOKENFUSE_ADMIN_TOKEN", message: "the admin token must be at least 16 characters" }],
      "the environment",
    );
  const admin =
    adminToken !== undefined && adminToken !== "" ? { token: "${env:TOKENFUSE_ADMIN_TOKEN}" } : undefined;
  return resolveConfigTree(
    { ...(upstreams === undefined ? {} : { upstreams }), ...(admin === undefined ? {} : { admin }) },
    env ?? {},
  );
}
