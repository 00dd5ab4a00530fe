/**
 * The config module: loads a tokenfuse config (file, text or object) into a `ResolvedConfig`.
 */
export { ConfigError, type ConfigIssue, isConfigError } from "./config-error.js";
export type { Env } from "./env-interpolation.js";
export { configJsonSchema } from "./json-schema.js";
export {
  type ConfigSource,
  defaultConfig,
  type LoadTextOptions,
  loadConfig,
  loadConfigFile,
  loadConfigText,
  resolveConfigTree,
} from "./load.js";
export type { ConfigFormat } from "./parse-text.js";
export { type ConfigFileInput, configFileSchema } from "./schema.js";
export type * from "./types.js";
