/**
 * Config text → plain data. YAML and JSON both go through the `yaml` package, so that syntax errors
 * carry a line and column and duplicate keys are errors in both (JSON.parse keeps the last silently).
 */
import { LineCounter, parseDocument, type YAMLError } from "yaml";
import type { RawConfigIssue } from "./config-error.js";

/** The two file formats. */
export type ConfigFormat = "yaml" | "json";

/** Result of {@link parseConfigText}. */
export type ParseResult = { ok: true; value: unknown } | { ok: false; issues: RawConfigIssue[] };

/**
 * The format of a config: by extension (`.yaml`, `.yml`, `.json`), otherwise by content (a document
 * starting with `{` or `[` is JSON).
 */
export function detectFormat(text: string, fileName?: string): ConfigFormat {
  const lower = fileName?.toLowerCase() ?? "";
  if (lower.endsWith(".yaml") || lower.endsWith(".yml")) return "yaml";
  if (lower.endsWith(".json")) return "json";
  return /^\uFEFF?\s*[{[]/.test(text) ? "json" : "yaml";
}

/**
 * Messages for yaml error codes whose own message may quote source text. Why: the quoted text can be
 * part of a secret written inline (an unterminated `token: "…`), and errors must never show secrets.
 */
const SAFE_MESSAGES: Readonly<Record<string, string>> = {
  TAG_RESOLVE_FAILED: "unsupported tag or value (in JSON, strings must be quoted)",
  BAD_DQ_ESCAPE: "invalid escape sequence in a double-quoted string",
  UNEXPECTED_TOKEN: "unexpected token",
  BAD_SCALAR_START: "a plain value cannot start with this character; quote the value",
  BAD_ALIAS: "invalid alias",
  BAD_DIRECTIVE: "invalid directive",
  BAD_COLLECTION_TYPE: "tag does not fit the collection type",
  IMPOSSIBLE: "invalid syntax",
};

function syntaxIssue(error: YAMLError, lines: LineCounter, format: ConfigFormat): RawConfigIssue {
  const { line, col } = lines.linePos(error.pos[0]);
  const what = SAFE_MESSAGES[error.code] ?? error.message.split("\n")[0] ?? error.code;
  return {
    path: [],
    location: `line ${line}, column ${col}`,
    message: `${format.toUpperCase()} syntax: ${what}`,
  };
}

/** Parses config text. An empty document is an issue, not an empty config. */
export function parseConfigText(text: string, format: ConfigFormat): ParseResult {
  const lines = new LineCounter();
  const source = text.startsWith("\uFEFF") ? text.slice(1) : text;
  const doc = parseDocument(source, {
    lineCounter: lines,
    prettyErrors: false,
    schema: format === "json" ? "json" : "core",
    // No YAML merge keys (`<<`): YAML 1.2 dropped them, and without them a YAML file and the JSON of
    // the same object always mean the same thing.
    merge: false,
    // Why: keys must be plain strings; a collection as a key would be stringified into a surprise name.
    stringKeys: true,
    uniqueKeys: true,
    logLevel: "silent",
  });
  const problems = [...doc.errors, ...doc.warnings];
  if (problems.length > 0) return { ok: false, issues: problems.map((e) => syntaxIssue(e, lines, format)) };
  if (doc.contents === null) {
    // Why: an empty or truncated file must not quietly start the built-in demo config (with its mock
    // upstream) in production; the default config is asked for by having no file, or by `{}`.
    return {
      ok: false,
      issues: [{ path: [], message: "the config is empty (write {} to use every default)" }],
    };
  }
  try {
    return { ok: true, value: doc.toJS({ maxAliasCount: 100 }) };
  } catch {
    // toJS throws only for aliases: unresolvable ones or an alias explosion ("billion laughs").
    return {
      ok: false,
      issues: [{ path: [], message: `${format.toUpperCase()} aliases: unresolvable or too many` }],
    };
  }
}
