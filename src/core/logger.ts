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

/** pino's levels, and `silent`. */
const LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"];

/**
 * The default logger: JSON lines on stderr (or `destination`), level from `TOKENFUSE_LOG_LEVEL`
 * (default `info`), secrets redacted.
 */
export function createLogger(
  level = process.env.TOKENFUSE_LOG_LEVEL ?? "info",
  destination: { write(s: string): void } = pino.destination(2),
): Logger {
  // pino takes levels in any case ("WARN"); anything else is refused here, naming the variable.
  const lower = level.toLowerCase();
  if (!LEVELS.includes(lower))
    throw new Error(`TOKENFUSE_LOG_LEVEL must be one of ${LEVELS.join(", ")} (it is "${level}")`);
  return pino(
    { name: "tokenfuse", level: lower, redact: { paths: REDACT_PATHS, censor: "[redacted]" } },
    destination,
  );
}

/** A logger that drops everything (tests, benchmarks). */
export const silentLogger: Logger = { info() {}, warn() {}, error() {} };
