import { formatPath, type PathSegment } from "./config-path.js";

/** One problem found in a config: where (a config path) and what was expected. */
export interface ConfigIssue {
  /** Config path such as `features.chat.max_input`, `keys[0].hash`, or `(root)`. */
  path: string;
  /** What is wrong and what was expected. Never contains a secret value. */
  message: string;
}

/** An issue whose path is still in segments, as the loader's stages collect them. */
export interface RawConfigIssue {
  path: readonly PathSegment[];
  message: string;
  /** Shown instead of the path when the problem has no config path (a YAML syntax error's line). */
  location?: string;
}

/**
 * Thrown by the config loader when the config cannot be used. It carries every issue found (not only
 * the first), and its message lists them one per line as `path: message`.
 */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
  /** Stable code for callers that map errors (CLI exit code 2, library callers). */
  readonly code = "invalid_config" as const;
  /** Every issue, in the order found. */
  readonly issues: readonly ConfigIssue[];
  /** The file the config came from, when it came from one. */
  readonly source: string | undefined;

  constructor(issues: readonly ConfigIssue[], source?: string) {
    super(issues.map((issue) => `${issue.path}: ${issue.message}`).join("\n"));
    this.issues = issues;
    this.source = source;
  }
}

/** True when `e` is a {@link ConfigError} (also across module copies). */
export function isConfigError(e: unknown): e is ConfigError {
  return (
    e instanceof ConfigError ||
    (e instanceof Error && e.name === "ConfigError" && (e as { code?: unknown }).code === "invalid_config")
  );
}

/** Converts raw issues to public ones, dropping exact duplicates and keeping the first order. */
export function finalizeIssues(raw: readonly RawConfigIssue[]): ConfigIssue[] {
  const seen = new Set<string>();
  const out: ConfigIssue[] = [];
  for (const issue of raw) {
    const path = issue.location ?? formatPath(issue.path);
    const key = `${path}\u0000${issue.message}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push({ path, message: issue.message });
  }
  return out;
}
