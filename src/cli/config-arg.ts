import { existsSync } from "node:fs";
import { defaultConfig, loadConfigFile } from "../config/load.js";
import type { ResolvedConfig } from "../config/types.js";
import { CliError, type CliIo } from "./io.js";

/** The config a command runs on, and where it came from (for the first line it prints). */
export interface CliConfig {
  config: ResolvedConfig;
  source: string;
}

/**
 * `--config F`, else `./tokenfuse.yaml` (or `.yml`, `.json`) when present, else the built-in example.
 * Config errors propagate as ConfigError (exit 2, every issue with its path).
 */
export function resolveCliConfig(
  path: string | undefined,
  io: CliIo,
  /** The commands that run or check the admin API (serve, check) read TOKENFUSE_ADMIN_TOKEN. */
  opts: { adminFromEnv?: boolean } = {},
): CliConfig {
  // `--config "$CONFIG"` with CONFIG unset must not check or run the built-in example instead.
  if (path === "") throw new CliError("--config needs a file path, got an empty value");
  const candidates = path ? [path] : ["tokenfuse.yaml", "tokenfuse.yml", "tokenfuse.json"];
  for (const p of candidates) {
    if (path || existsSync(p)) return { config: loadConfigFile(p, io.env), source: p };
  }
  return {
    config: defaultConfig(io.env, { adminFromEnv: opts.adminFromEnv === true }),
    source: "built-in example config",
  };
}
