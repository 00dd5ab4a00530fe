/**
 * Pre-tokenization: the regular expression that splits text into pieces before BPE.
 *
 * The patterns are OpenAI's published ones for each encoding, rewritten for JavaScript so that they
 * split exactly as tiktoken's Rust `fancy-regex` does:
 * - `\s` becomes `\p{White_Space}`: Rust's `\s` is the Unicode White_Space property (it includes
 *   U+0085 and excludes U+FEFF), while JavaScript's `\s` excludes U+0085 and includes U+FEFF.
 * - `(?i:'s|'t|...)` (inline case-insensitivity, not available in Node 20) is spelled out. Rust
 *   folds case with Unicode simple case folding, under which `s` also matches `ſ` (U+017F LONG S),
 *   so the expansion keeps `ſ`; no other letter of these contractions has an extra fold.
 * - Every Unicode class (`\p{L}`, `\p{N}`, `\s`, …) is written out from Unicode 16.0, the version
 *   tiktoken's regex engine knows (unicode-classes.ts, generated; why there), never the runtime's
 *   `\p{..}`, whose Unicode version changes with Node's.
 * Both patterns are compiled with the `u` flag (code-point semantics) and `y` (sticky), so a caller
 * can walk the text piece by piece and stop whenever it wants.
 */

import type { EncodingName } from "./types.js";
import * as U from "./unicode-classes.js";

/** Encodings that have a BPE vocabulary (everything but the estimator). */
export type BpeEncodingName = Exclude<EncodingName, "estimate">;

/** The Unicode classes the patterns are built from, as regex source. */
interface Classes {
  L: string;
  N: string;
  Lu: string;
  Ll: string;
  Lt: string;
  Lm: string;
  Lo: string;
  M: string;
  WHITE_SPACE: string;
}

/** The runtime's own property classes: fast, and exact while the text holds nothing of DIFFERS. */
const RUNTIME: Classes = {
  L: "\\p{L}",
  N: "\\p{N}",
  Lu: "\\p{Lu}",
  Ll: "\\p{Ll}",
  Lt: "\\p{Lt}",
  Lm: "\\p{Lm}",
  Lo: "\\p{Lo}",
  M: "\\p{M}",
  WHITE_SPACE: "\\p{White_Space}",
};

/** `(?i:'s|'t|'re|'ve|'m|'ll|'d)` with Rust's simple case folding. */
const CONTRACTIONS = "'(?:[sSſtTmMdD]|[rR][eE]|[vV][eE]|[lL][lL])";

function patternSource(encoding: BpeEncodingName, c: Classes): string {
  const ws = `[${c.WHITE_SPACE}]`;
  const notWs = `[^${c.WHITE_SPACE}]`;
  /** Neither a line break, a letter nor a number (the optional lead of a word). */
  const lead = `[^\\r\\n${c.L}${c.N}]`;
  const upperish = `[${c.Lu}${c.Lt}${c.Lm}${c.Lo}${c.M}]`;
  const lowerish = `[${c.Ll}${c.Lm}${c.Lo}${c.M}]`;
  if (encoding === "cl100k_base")
    return [
      CONTRACTIONS,
      `${lead}?[${c.L}]+`,
      `[${c.N}]{1,3}`,
      ` ?[^${c.WHITE_SPACE}${c.L}${c.N}]+[\\r\\n]*`,
      `${ws}*[\\r\\n]+`,
      `${ws}+(?!${notWs})`,
      `${ws}+`,
    ].join("|");
  return [
    `${lead}?${upperish}*${lowerish}+(?:${CONTRACTIONS})?`,
    `${lead}?${upperish}+${lowerish}*(?:${CONTRACTIONS})?`,
    `[${c.N}]{1,3}`,
    ` ?[^${c.WHITE_SPACE}${c.L}${c.N}]+[\\r\\n/]*`,
    `${ws}*[\\r\\n]+`,
    `${ws}+(?!${notWs})`,
    `${ws}+`,
  ].join("|");
}

/** Code points a runtime of DIFFERS_COMPUTED_ON's version may class otherwise than Unicode 16.0. */
const DIFFERS_RE = new RegExp(`[${U.DIFFERS}]`, "u");
const RUNTIME_UNICODE = process.versions.unicode;

/**
 * Whether `text` must be split with the written-out Unicode 16.0 classes: on a runtime of another
 * Unicode version, when it holds a code point the two may class differently (why: unicode-classes.ts).
 */
export function needsPinnedClasses(text: string): boolean {
  if (RUNTIME_UNICODE === U.PINNED_UNICODE) return false;
  if (RUNTIME_UNICODE !== U.DIFFERS_COMPUTED_ON) return true;
  return DIFFERS_RE.test(text);
}

/**
 * A fresh sticky regular expression that matches one piece at `lastIndex`: with the runtime's
 * Unicode classes, or (`pinned`) with Unicode 16.0's written out; pick with `needsPinnedClasses`.
 *
 * Every code point of well-formed text starts some piece (each alternative set above covers
 * letters, numbers, whitespace and everything else), so on well-formed input `test()` never fails
 * before the end and never matches the empty string.
 */
export function createPieceRegExp(encoding: BpeEncodingName, pinned = false): RegExp {
  return new RegExp(patternSource(encoding, pinned ? U : RUNTIME), "uy");
}

/** Splits `text` into its pieces (for tests and diagnostics; the encoder walks pieces lazily). */
export function splitPieces(encoding: BpeEncodingName, text: string): string[] {
  const re = createPieceRegExp(encoding, needsPinnedClasses(text));
  const pieces: string[] = [];
  let at = 0;
  while (at < text.length) {
    re.lastIndex = at;
    if (!re.test(text)) throw new Error(`pretokenizer: no piece matches at offset ${at}`);
    pieces.push(text.slice(at, re.lastIndex));
    at = re.lastIndex;
  }
  return pieces;
}
