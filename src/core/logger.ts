import { createRequire } from "node:module";
import { pino } from "pino";

// sonic-boom is CommonJS (module.exports = the class); its typings declare an ES default export,
// which TypeScript's NodeNext resolution does not see as constructable. Loaded as what it is.
const SonicBoom: typeof import("sonic-boom").SonicBoom = createRequire(import.meta.url)("sonic-boom");

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

let stderrSink: { write(s: string): void } | undefined;

/**
 * The process's one destination for log lines on stderr, shared by every logger it creates (one
 * buffer, so lines stay in order). Why not `pino.destination(2)`: pino 10 bundles sonic-boom 4,
 * whose flush at exit retries a failing write forever when the error is not EAGAIN; with stderr's
 * reader gone (`tokenfuse serve 2>&1 | head`) the process hung at exit and ignored SIGTERM.
 * sonic-boom 5 gives up on such errors, and this sink stops writing once stderr is closed (EPIPE)
 * or otherwise fails: a log line nobody can read must never stop the gateway.
 */
function stderrDestination(): { write(s: string): void } {
  if (stderrSink) return stderrSink;
  const boom = new SonicBoom({ fd: 2, minLength: 0 });
  let broken = false;
  boom.on("error", () => {
    broken = true;
  });
  // Lines still buffered when the process exits are written synchronously, once.
  process.once("exit", () => {
    if (broken) return;
    try {
      boom.flushSync();
    } catch {
      // stderr is gone: nothing can report it
    }
  });
  stderrSink = {
    write(s: string): void {
      if (!broken) boom.write(s);
    },
  };
  return stderrSink;
}

/**
 * The default logger: JSON lines on stderr (or `destination`), level from `TOKENFUSE_LOG_LEVEL`
 * (default `info`), secrets redacted.
 */
export function createLogger(
  level = process.env.TOKENFUSE_LOG_LEVEL ?? "info",
  destination: { write(s: string): void } = stderrDestination(),
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
