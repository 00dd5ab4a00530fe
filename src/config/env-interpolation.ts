import type { RawConfigIssue } from "./config-error.js";
import type { PathSegment } from "./config-path.js";

/** The environment variables interpolation reads (`process.env` fits). */
export type Env = Readonly<Record<string, string | undefined>>;

/** Result of {@link interpolateEnv}. */
export interface InterpolationResult {
  /** A fresh copy of the tree with every `${env:NAME}` replaced. */
  value: unknown;
  issues: RawConfigIssue[];
  /** Paths whose value could not be produced; later stages skip issues at or below them. */
  failedPaths: PathSegment[][];
}

const ENV_NAME = /^env:([A-Za-z_][A-Za-z0-9_]*)$/;

/**
 * Replaces `${env:NAME}` in one string. `$${` is the escape for a literal `${`; any other `$` is
 * literal. A `${…}` that is not `${env:NAME}`, or a variable that is unset or empty, is an error.
 * Messages name the variable but never echo the string, which may hold a secret.
 */
export function interpolateString(
  text: string,
  env: Env,
): { ok: true; value: string } | { ok: false; errors: string[] } {
  if (!text.includes("$")) return { ok: true, value: text };
  let out = "";
  const errors: string[] = [];
  let i = 0;
  while (i < text.length) {
    const ch = text[i];
    if (ch !== "$") {
      out += ch;
      i += 1;
      continue;
    }
    if (text.startsWith("$${", i)) {
      out += "${";
      i += 3;
      continue;
    }
    if (text[i + 1] !== "{") {
      out += "$";
      i += 1;
      continue;
    }
    const close = text.indexOf("}", i + 2);
    if (close === -1) {
      errors.push("unterminated ${ (expected ${env:NAME}; write $${ for a literal ${)");
      break;
    }
    const match = ENV_NAME.exec(text.slice(i + 2, close));
    const name = match?.[1];
    if (name === undefined) {
      errors.push(
        "expected ${env:NAME} with NAME made of letters, digits and _ (write $${ for a literal ${)",
      );
    } else {
      const found = Object.hasOwn(env, name) ? env[name] : undefined;
      if (found === undefined) errors.push(`environment variable ${name} is not set`);
      // Why: an empty variable is almost always a deployment mistake (an unset secret in CI or a
      // compose file); failing here beats an empty API key or URL failing later, at request time.
      else if (found === "") errors.push(`environment variable ${name} is empty`);
      else out += found;
    }
    i = close + 1;
  }
  return errors.length === 0 ? { ok: true, value: out } : { ok: false, errors };
}

/**
 * Interpolates environment variables into every string value of a parsed config tree (keys are left
 * as written). Works on the parsed tree, never on the source text, so a variable's value is only ever
 * a string and cannot inject YAML or JSON structure, and it is not itself interpolated again.
 *
 * The copy it returns is plain data: `undefined` properties are dropped (as JSON would), `-0` becomes
 * `0`, and values a config file cannot contain (functions, class instances, cycles, …) are issues.
 */
export function interpolateEnv(tree: unknown, env: Env): InterpolationResult {
  const issues: RawConfigIssue[] = [];
  const failedPaths: PathSegment[][] = [];
  const ancestors = new Set<object>();

  const fail = (path: PathSegment[], message: string): undefined => {
    issues.push({ path, message });
    failedPaths.push(path);
    return undefined;
  };

  const visit = (node: unknown, path: PathSegment[]): unknown => {
    switch (typeof node) {
      case "string": {
        const result = interpolateString(node, env);
        if (result.ok) return result.value;
        for (const message of result.errors) issues.push({ path, message });
        failedPaths.push(path);
        return node;
      }
      case "number":
        return Object.is(node, -0) ? 0 : node;
      case "boolean":
        return node;
      case "undefined":
        return undefined;
      case "object":
        break;
      default:
        return fail(
          path,
          `expected plain data (string, number, boolean, list or mapping), got a ${typeof node}`,
        );
    }
    if (node === null) return null;
    if (ancestors.has(node)) return fail(path, "circular reference");
    if (Array.isArray(node)) {
      ancestors.add(node);
      const copy = Array.from(node, (item, index) => visit(item, [...path, index]));
      ancestors.delete(node);
      return copy;
    }
    const proto = Object.getPrototypeOf(node);
    if (proto !== Object.prototype && proto !== null) {
      return fail(
        path,
        "expected plain data (string, number, boolean, list or mapping), got a class instance",
      );
    }
    ancestors.add(node);
    const copy: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(node)) {
      const next = visit(value, [...path, key]);
      if (next === undefined && value === undefined) continue;
      // Why defineProperty: a key named "__proto__" (legal in JSON and YAML) must stay an ordinary
      // key, so that validation reports it instead of it silently replacing the prototype.
      Object.defineProperty(copy, key, { value: next, enumerable: true, writable: true, configurable: true });
    }
    ancestors.delete(node);
    return copy;
  };

  return { value: visit(tree, []), issues, failedPaths };
}
