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
 * Both patterns are compiled with the `u` flag (code-point semantics, `\p{..}` classes) and `y`
 * (sticky), so a caller can walk the text piece by piece and stop whenever it wants.
 */

import type { EncodingName } from "./types.js";

/** Encodings that have a BPE vocabulary (everything but the estimator). */
export type BpeEncodingName = Exclude<EncodingName, "estimate">;

const WS = "\\p{White_Space}";
const NOT_WS = "\\P{White_Space}";
/** `(?i:'s|'t|'re|'ve|'m|'ll|'d)` with Rust's simple case folding. */
const CONTRACTIONS = "'(?:[sSſtTmMdD]|[rR][eE]|[vV][eE]|[lL][lL])";
const UPPERISH = "[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]";
const LOWERISH = "[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]";

const PATTERN_SOURCES: Record<BpeEncodingName, string> = {
  cl100k_base: [
    CONTRACTIONS,
    "[^\\r\\n\\p{L}\\p{N}]?\\p{L}+",
    "\\p{N}{1,3}",
    ` ?[^${WS}\\p{L}\\p{N}]+[\\r\\n]*`,
    `${WS}*[\\r\\n]+`,
    `${WS}+(?!${NOT_WS})`,
    `${WS}+`,
  ].join("|"),
  o200k_base: [
    `[^\\r\\n\\p{L}\\p{N}]?${UPPERISH}*${LOWERISH}+(?:${CONTRACTIONS})?`,
    `[^\\r\\n\\p{L}\\p{N}]?${UPPERISH}+${LOWERISH}*(?:${CONTRACTIONS})?`,
    "\\p{N}{1,3}",
    ` ?[^${WS}\\p{L}\\p{N}]+[\\r\\n/]*`,
    `${WS}*[\\r\\n]+`,
    `${WS}+(?!${NOT_WS})`,
    `${WS}+`,
  ].join("|"),
};

/**
 * A fresh sticky regular expression that matches one piece at `lastIndex`.
 *
 * Every code point of well-formed text starts some piece (each alternative set above covers
 * letters, numbers, whitespace and everything else), so on well-formed input `test()` never fails
 * before the end and never matches the empty string.
 */
export function createPieceRegExp(encoding: BpeEncodingName): RegExp {
  return new RegExp(PATTERN_SOURCES[encoding], "uy");
}

/** Splits `text` into its pieces (for tests and diagnostics; the encoder walks pieces lazily). */
export function splitPieces(encoding: BpeEncodingName, text: string): string[] {
  const re = createPieceRegExp(encoding);
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
