/**
 * A conservative token estimator for models whose tokenizer is not public (Anthropic, Gemini,
 * unknown models). It loads no vocabulary: one pass over the characters, O(1) work each, and every
 * bounded call stops as soon as its answer is known.
 *
 * Costs are kept in quarter tokens and the estimate is the total rounded up. Text is read as runs
 * of one character class, charged roughly as byte-level BPE tokenizers charge them:
 * - ASCII letters and digits form words; each change of class inside a word (lower, upper, digit;
 *   a capital followed by lower case is one word, as in `Hello`) costs a token. Lower-case runs
 *   then cost a token per started group of 4 letters, upper-case letters one token each, digits a
 *   token per started group of 3 (OpenAI's encodings split numbers that way). A word that has
 *   changed class 3 times looks random (base64, hashes, ids) and pays a token per letter from then on;
 * - whitespace: a single space is free (it joins the next word) except before a number; other runs
 *   cost a token per started group of 4 characters;
 * - ASCII punctuation: 3/4 token per character; control characters a token each;
 * - other characters by UTF-8 length and block ({@link nonAsciiQuarterTokens}): CJK 1.5, emoji
 *   3.5, zero-width joiner and variation selectors 2, Latin-1/Greek/Cyrillic/Arabic 1, other
 *   characters their byte count (which bounds any byte-level BPE).
 * The weights were chosen so that the estimate is at least the o200k_base and cl100k_base counts on
 * prose, code, JSON, CJK, emoji, base64 and whitespace samples (docs/tokenizers.md has the measured
 * ratios; a test asserts it). The estimate is `exact: false`; settlement corrects it with the
 * provider's reported usage.
 */

import type { TextTokenizer } from "./types.js";

const QUARTER = 4;
/** Lower-case letters of one run charged per token. */
const LOWER_PER_TOKEN = 4;
/** Class changes after which a word is treated as random and pays per letter. */
const RANDOM_WORD_CHANGES = 3;
const PUNCTUATION_QUARTERS = 3;
const WHITESPACE_PER_TOKEN = 4;

enum Kind {
  None = 0,
  Lower = 1,
  Upper = 2,
  Digit = 3,
  Space = 4,
  Punct = 5,
  Other = 6,
}

/** A {@link TextTokenizer} whose counts are estimates. */
export interface EstimateTokenizer extends TextTokenizer {
  readonly encoding: "estimate";
  readonly exact: false;
}

/** Quarter tokens charged for a non-ASCII code point (never more than 4 × its UTF-8 length). */
export function nonAsciiQuarterTokens(cp: number): number {
  // 2-byte: Latin-1 and Latin Extended, Greek, Cyrillic, Hebrew, Arabic.
  if (cp < 0x800) return 4;
  // Zero-width joiner and variation selectors inside emoji sequences (2 tokens each in cl100k_base).
  if (cp === 0x200d || (cp >= 0xfe00 && cp <= 0xfe0f)) return 8;
  if (cp < 0x10000) {
    // CJK ideographs, kana, Hangul, CJK punctuation, fullwidth forms.
    if ((cp >= 0x3000 && cp <= 0x9fff) || (cp >= 0xac00 && cp <= 0xd7a3) || (cp >= 0xff00 && cp <= 0xffef))
      return 6;
    return 12; // other 3-byte characters (symbols, Indic, Thai...): their byte count
  }
  if (cp >= 0x1f000 && cp <= 0x1faff) return 14; // emoji and pictographs, flags, skin tones
  return 16; // other astral characters (rare CJK extensions, math alphanumerics): byte count
}

/** Creates the estimator. Stateless; one instance can be shared. */
export function createEstimateTokenizer(): EstimateTokenizer {
  /**
   * Walks `text` charging quarter tokens; stops once the rounded-up total exceeds `cap`. Returns the
   * total (cap + 1 when over) and the end of the last character that still fitted. The estimate of a
   * prefix is the running total at its end, so `fitEnd` is the longest prefix that fits.
   */
  function walk(text: string, cap: number): { tokens: number; fitEnd: number } {
    const capQuarters = cap * QUARTER;
    let quarters = 0;
    let kind = Kind.None;
    let runLength = 0;
    let wordLength = 0;
    let wordChanges = 0;
    let fitEnd = 0;
    for (let i = 0; i < text.length; ) {
      const c = text.charCodeAt(i);
      let cost = 0;
      let units = 1;
      const next =
        c >= 0x61 && c <= 0x7a
          ? Kind.Lower
          : c >= 0x41 && c <= 0x5a
            ? Kind.Upper
            : c >= 0x30 && c <= 0x39
              ? Kind.Digit
              : c === 0x20 || (c >= 0x09 && c <= 0x0d)
                ? Kind.Space
                : c < 0x80
                  ? Kind.Punct
                  : Kind.Other;
      if (next === Kind.Lower || next === Kind.Upper || next === Kind.Digit) {
        if (wordLength === 0) wordChanges = 0;
        wordLength++;
        if (next === kind) {
          runLength++;
          const perToken =
            next === Kind.Digit
              ? 3
              : next === Kind.Upper || wordChanges >= RANDOM_WORD_CHANGES
                ? 1
                : LOWER_PER_TOKEN;
          if (runLength % perToken === 1 || perToken === 1) cost = QUARTER;
        } else if (next === Kind.Lower && kind === Kind.Upper && runLength === 1) {
          // "Hello": the capital starts the word, the lower case continues it.
          runLength = 2;
          if (wordChanges >= RANDOM_WORD_CHANGES) cost = QUARTER;
        } else {
          if (wordLength > 1) wordChanges++;
          runLength = 1;
          cost = QUARTER;
          // A space before a number is its own token in both encodings ("2 + 2": "2", " +", " ", "2").
          if (next === Kind.Digit && text.charCodeAt(i - 1) === 0x20) cost += QUARTER;
        }
      } else {
        wordLength = 0;
        if (next === Kind.Space) {
          runLength = kind === Kind.Space ? runLength + 1 : 1;
          const freeFirst = text.charCodeAt(i - runLength + 1) === 0x20 ? 1 : 0;
          const charged = runLength - freeFirst;
          if (charged > 0 && charged % WHITESPACE_PER_TOKEN === 1) cost = QUARTER;
        } else if (next === Kind.Punct) {
          runLength = kind === Kind.Punct ? runLength + 1 : 1;
          // Control characters are rare in vocabularies: a token each.
          cost = c < 0x20 || c === 0x7f ? QUARTER : PUNCTUATION_QUARTERS;
        } else {
          let cp = c;
          if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
            const d = text.charCodeAt(i + 1);
            if (d >= 0xdc00 && d <= 0xdfff) {
              cp = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
              units = 2;
            }
          }
          runLength = 1;
          cost = nonAsciiQuarterTokens(cp);
        }
      }
      kind = next;
      if (quarters + cost > capQuarters) return { tokens: cap + 1, fitEnd };
      quarters += cost;
      i += units;
      fitEnd = i;
    }
    return { tokens: Math.ceil(quarters / QUARTER), fitEnd };
  }

  const toCap = (limit: number): number =>
    Number.isFinite(limit) ? Math.max(0, Math.floor(limit)) : Number.MAX_SAFE_INTEGER / QUARTER;

  return {
    encoding: "estimate",
    exact: false,
    countText(text) {
      return walk(text, Number.MAX_SAFE_INTEGER / QUARTER).tokens;
    },
    countTextUpTo(text, limit) {
      return walk(text, toCap(limit)).tokens;
    },
    truncateText(text, maxTokens) {
      return text.slice(0, walk(text, toCap(maxTokens)).fitEnd);
    },
  };
}
