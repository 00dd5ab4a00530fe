import { pino } from "pino";

/** The logging surface tokenfuse uses (a subset of pino's, so a pino logger can be passed in). */
export interface Logger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

/**
 * Paths redacted from every log line. Why: provider keys, API keys and the admin token must never
 * reach logs (SPEC §6), whatever object a caller logs.
 */
export const REDACT_PATHS = [
  "apiKey",
  "api_key",
  "token",
  "authorization",
  "headers.authorization",
  "req.headers.authorization",
  "*.apiKey",
  "*.api_key",
  "*.token",
  "*.authorization",
  "secret",
  "*.secret",
];

/** The default logger: JSON lines on stderr, level from `TOKENFUSE_LOG_LEVEL` (default `info`). */
export function createLogger(level = process.env.TOKENFUSE_LOG_LEVEL ?? "info"): Logger {
  return pino(
    { name: "tokenfuse", level, redact: { paths: REDACT_PATHS, censor: "[redacted]" } },
    pino.destination(2),
  );
}

/** A logger that drops everything (tests, benchmarks). */
export const silentLogger: Logger = { info() {}, warn() {}, error() {} };
