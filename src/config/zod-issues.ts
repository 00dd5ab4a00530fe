/**
 * Turns zod issues into config issues: one per problem, with the full config path and a message
 * saying what was expected (unknown keys get a "did you mean" suggestion).
 */
import type { z } from "zod";
import type { RawConfigIssue } from "./config-error.js";
import type { PathSegment } from "./config-path.js";
import { ALLOWED_KEYS_MARK } from "./schema.js";
import { describeValue } from "./schema-fields.js";

type ZodIssue = z.core.$ZodIssue;

/** Per-parse fallback for schemas without their own messages: says what was expected, never echoes strings. */
export const fallbackErrorMap: z.core.$ZodErrorMap = (issue) => {
  if (issue.code !== "invalid_type") return undefined;
  if (issue.input === undefined) return `required: expected ${issue.expected}`;
  return `expected ${issue.expected}, got ${describeValue(issue.input)}`;
};

/** Converts the issues of one zod parse of `input`. */
export function convertZodIssues(
  issues: readonly ZodIssue[],
  input: unknown,
  base: readonly PathSegment[] = [],
): RawConfigIssue[] {
  const out: RawConfigIssue[] = [];
  for (const issue of issues) out.push(...convertIssue(issue, input, base));
  return out;
}

function toSegments(path: readonly PropertyKey[]): PathSegment[] {
  return path.map((segment) => (typeof segment === "number" ? segment : String(segment)));
}

function convertIssue(issue: ZodIssue, input: unknown, base: readonly PathSegment[]): RawConfigIssue[] {
  const path = [...base, ...toSegments(issue.path)];
  switch (issue.code) {
    case "unrecognized_keys": {
      const markAt = issue.message.indexOf(ALLOWED_KEYS_MARK);
      const allowed = markAt === -1 ? [] : issue.message.slice(markAt + ALLOWED_KEYS_MARK.length).split(", ");
      return issue.keys.map((key) => {
        const guess = closest(key, allowed);
        const hint = guess === undefined ? "" : ` (did you mean "${guess}"?)`;
        const list = allowed.length > 0 ? `; ${ALLOWED_KEYS_MARK}${allowed.join(", ")}` : "";
        return { path: [...path, key], message: `unknown key${hint}${list}` };
      });
    }
    case "invalid_union": {
      if ("discriminator" in issue && issue.discriminator !== undefined) {
        const listed: readonly unknown[] =
          "options" in issue && Array.isArray(issue.options) ? issue.options : [];
        const options = listed.map((option) => JSON.stringify(option)).join(", ");
        const missing = valueAt(input, path) === undefined;
        return [{ path, message: `${missing ? "required: " : ""}expected one of ${options}` }];
      }
      // Report the branch the value was evidently meant for (the only one whose type matched),
      // rather than every branch's complaint; when that is ambiguous, the union's own message.
      const plausible = issue.errors.filter(
        (branch) =>
          !branch.some(
            (b) => b.path.length === 0 && (b.code === "invalid_type" || b.code === "invalid_value"),
          ),
      );
      const [only] = plausible;
      if (plausible.length === 1 && only !== undefined) return convertZodIssues(only, input, path);
      return [{ path, message: issue.message }];
    }
    case "invalid_key":
    case "invalid_element": {
      const [first] = issue.issues;
      const what = issue.code === "invalid_key" ? "invalid key" : "invalid entry";
      return [{ path, message: first === undefined ? what : `${what}: ${first.message}` }];
    }
    default:
      return [{ path, message: issue.message }];
  }
}

/** The value at `path` in `root`, or undefined. */
export function valueAt(root: unknown, path: readonly PathSegment[]): unknown {
  let node = root;
  for (const segment of path) {
    if (node === null || typeof node !== "object" || !Object.hasOwn(node, segment)) return undefined;
    node = (node as Record<PropertyKey, unknown>)[segment];
  }
  return node;
}

/** The allowed name closest to `name` when it is a plausible typo of it. */
export function closest(name: string, allowed: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Math.max(2, Math.floor(name.length / 3)) + 1;
  for (const candidate of allowed) {
    const d = editDistance(name.toLowerCase(), candidate.toLowerCase());
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  if (Math.abs(a.length - b.length) > 8) return Number.POSITIVE_INFINITY;
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = (previous[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1);
      current[j] = Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, substitution);
    }
    previous = current;
  }
  return previous[b.length] ?? Number.POSITIVE_INFINITY;
}
