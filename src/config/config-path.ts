/**
 * Config paths: how a location in the config file is named in error messages
 * (`features.chat.max_input`, `keys[0].hash`, `prices["gpt-4.1"].input`).
 */

/** One step of a path: an object key or an array index. */
export type PathSegment = string | number;

/** A key that can be written bare after a dot; anything else is quoted (`["gpt-4.1"]`). */
const BARE_KEY = /^[A-Za-z_][A-Za-z0-9_-]*$/;

/**
 * Formats path segments as a readable config path. The empty path (the document itself) is `(root)`.
 */
export function formatPath(segments: readonly PathSegment[]): string {
  let out = "";
  for (const segment of segments) {
    if (typeof segment === "number") out += `[${segment}]`;
    else if (BARE_KEY.test(segment)) out += out === "" ? segment : `.${segment}`;
    else out += `[${JSON.stringify(segment)}]`;
  }
  return out === "" ? "(root)" : out;
}

/** True when `path` equals `prefix` or lies below it. */
export function isPathWithin(path: readonly PathSegment[], prefix: readonly PathSegment[]): boolean {
  if (prefix.length > path.length) return false;
  return prefix.every((segment, i) => path[i] === segment);
}
