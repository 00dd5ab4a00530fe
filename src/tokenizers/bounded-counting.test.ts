import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { createBpeTextTokenizer } from "./bpe-text-tokenizer.js";
import { createEstimateTokenizer } from "./estimate-tokenizer.js";
import {
  base64Sample,
  cjkSample,
  codeSample,
  createRandom,
  emojiSample,
  jsonSample,
  mixedDocument,
  proseSample,
  whitespaceSample,
} from "./test-samples.js";
import type { TextTokenizer } from "./types.js";

const o200k = createBpeTextTokenizer("o200k_base");
const cl100k = createBpeTextTokenizer("cl100k_base");
const estimator = createEstimateTokenizer();
const TOKENIZERS: [string, TextTokenizer][] = [
  ["o200k_base", o200k],
  ["cl100k_base", cl100k],
  ["estimate", estimator],
];

const MIB = 1 << 20;

/** Text of every kind, with long runs, for property tests. */
const textArbitrary = fc.oneof(
  fc.string({ unit: "grapheme", maxLength: 300 }),
  fc.string({ unit: "binary", maxLength: 100 }),
  fc
    .tuple(fc.integer({ min: 0, max: 1e6 }), fc.integer({ min: 1, max: 8_000 }))
    .map(([seed, size]) => mixedDocument(seed, size)),
  fc
    .tuple(fc.constantFrom("a", " ", "-", "\n", "中", "😀", "ab", " \t"), fc.integer({ min: 1, max: 3_000 }))
    .map(([unit, n]) => unit.repeat(n)),
);

describe.each(TOKENIZERS)("%s bounded counting", (_name, tokenizer) => {
  it("countTextUpTo(text, limit) = min(countText(text), limit + 1)", () => {
    fc.assert(
      fc.property(textArbitrary, fc.integer({ min: 0, max: 3_000 }), (text, limit) => {
        const count = tokenizer.countText(text);
        expect(tokenizer.countTextUpTo(text, limit)).toBe(Math.min(count, limit + 1));
      }),
      { numRuns: 300 },
    );
  });

  it("decides that 1 MiB inputs of any content exceed 4 000 tokens", () => {
    const random = createRandom(9);
    const inputs = [
      "a".repeat(MIB),
      " ".repeat(MIB),
      "-".repeat(MIB),
      "\n".repeat(MIB),
      "中".repeat(MIB),
      "😀".repeat(MIB / 2),
      base64Sample(1, (MIB * 3) / 4, false),
      cjkSample(1, MIB),
      emojiSample(1, MIB),
      mixedDocument(1, MIB),
      Array.from({ length: MIB }, () => String.fromCharCode(0x61 + Math.floor(random() * 26))).join(""),
    ];
    for (const text of inputs) expect(tokenizer.countTextUpTo(text, 4_000)).toBe(4_001);
  });

  it("counts exactly under the limit on texts that fit", () => {
    const text = proseSample(5, 6_000);
    const count = tokenizer.countText(text);
    expect(tokenizer.countTextUpTo(text, count)).toBe(count);
    expect(tokenizer.countTextUpTo(text, count - 1)).toBe(count);
    expect(tokenizer.countTextUpTo(text, Number.POSITIVE_INFINITY)).toBe(count);
    expect(tokenizer.countTextUpTo("", 0)).toBe(0);
    expect(tokenizer.countTextUpTo("x", 0)).toBe(1);
  });
});

/** True when `cut` ends inside a surrogate pair of `text`. */
function splitsPair(text: string, cut: number): boolean {
  const c = text.charCodeAt(cut - 1);
  const d = text.charCodeAt(cut);
  return c >= 0xd800 && c <= 0xdbff && d >= 0xdc00 && d <= 0xdfff;
}

describe.each(TOKENIZERS)("%s truncateText", (_name, tokenizer) => {
  it("returns a prefix that fits, on a code point boundary", () => {
    fc.assert(
      fc.property(textArbitrary, fc.integer({ min: 0, max: 2_000 }), (text, max) => {
        const cut = tokenizer.truncateText(text, max);
        expect(text.startsWith(cut)).toBe(true);
        expect(tokenizer.countText(cut)).toBeLessThanOrEqual(max);
        expect(splitsPair(text, cut.length)).toBe(false);
        if (tokenizer.countText(text) <= max) expect(cut).toBe(text);
      }),
      { numRuns: 200 },
    );
  });

  it("keeps at least 90 % of the budget on long ordinary text", () => {
    const texts = [
      proseSample(1, 200_000),
      codeSample(2, 200_000),
      jsonSample(3, 200_000),
      cjkSample(4, 100_000),
      emojiSample(5, 100_000),
      base64Sample(6, 150_000),
      whitespaceSample(7, 200_000),
      mixedDocument(8, MIB),
    ];
    for (const text of texts) {
      for (const max of [1, 7, 100, 4_000]) {
        const count = tokenizer.countText(tokenizer.truncateText(text, max));
        expect(count).toBeLessThanOrEqual(max);
        expect(count).toBeGreaterThanOrEqual(Math.floor(max * 0.9));
      }
    }
  });

  it("truncates 1 MiB pathological runs to a non-empty prefix that fits", () => {
    for (const text of [
      "a".repeat(MIB),
      " ".repeat(MIB),
      "-".repeat(MIB),
      "中".repeat(MIB),
      "😀".repeat(MIB / 2),
    ]) {
      const cut = tokenizer.truncateText(text, 4_000);
      expect(cut.length).toBeGreaterThan(0);
      expect(text.startsWith(cut)).toBe(true);
      expect(tokenizer.countText(cut)).toBeLessThanOrEqual(4_000);
    }
  });

  it("never splits a surrogate pair where its first look-ahead window ends", () => {
    // 10 tokens of 128 spaces reach past the first head (16 units per token + 1 024): make that
    // boundary fall inside an emoji.
    for (let spaces = 1_170; spaces < 1_200; spaces++) {
      const text = " ".repeat(spaces) + "😀".repeat(100);
      const cut = tokenizer.truncateText(text, 10);
      expect(splitsPair(text, cut.length)).toBe(false);
      expect(tokenizer.countText(cut)).toBeLessThanOrEqual(10);
    }
  });

  it("never splits a surrogate pair, even when a token ends inside a character", () => {
    // o200k and cl100k split many emoji into several byte tokens.
    const text = "🧑🏿‍🚀".repeat(2_000);
    for (let max = 1; max <= 40; max++) {
      const cut = tokenizer.truncateText(text, max);
      expect(splitsPair(text, cut.length)).toBe(false);
      expect(tokenizer.countText(cut)).toBeLessThanOrEqual(max);
    }
  });
});
