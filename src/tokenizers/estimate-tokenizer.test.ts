import { describe, expect, it } from "vitest";
import { createBpeTextTokenizer } from "./bpe-text-tokenizer.js";
import { createEstimateTokenizer, nonAsciiQuarterTokens } from "./estimate-tokenizer.js";
import {
  base64Sample,
  cjkSample,
  codeSample,
  emojiSample,
  jsonSample,
  mixedDocument,
  proseSample,
  whitespaceSample,
} from "./test-samples.js";

const estimator = createEstimateTokenizer();
const references = [createBpeTextTokenizer("o200k_base"), createBpeTextTokenizer("cl100k_base")];

const KINDS: [string, (seed: number) => string][] = [
  ["prose", (seed) => proseSample(seed, 4_000)],
  ["code", (seed) => codeSample(seed, 4_000)],
  ["json", (seed) => jsonSample(seed, 4_000)],
  ["cjk", (seed) => cjkSample(seed, 1_500)],
  ["emoji", (seed) => emojiSample(seed, 1_000)],
  ["base64", (seed) => base64Sample(seed, 3_000)],
  ["whitespace", (seed) => whitespaceSample(seed, 2_000)],
  ["mixed", (seed) => mixedDocument(seed, 20_000)],
];

describe("estimator", () => {
  it.each(KINDS)("never undercounts o200k_base or cl100k_base on %s samples", (_kind, make) => {
    for (let seed = 1; seed <= 25; seed++) {
      const text = make(seed);
      const estimate = estimator.countText(text);
      for (const ref of references) expect(estimate).toBeGreaterThanOrEqual(ref.countText(text));
    }
  });

  it("never undercounts short snippets either", () => {
    const snippets = [
      "Hi",
      "OK.",
      "2 + 2 = 4",
      "https://example.com/a/b?c=d&e=f",
      "user@example.com",
      "SELECT * FROM users WHERE id = 42;",
      "お誕生日おめでとう",
      "👨‍👩‍👧‍👦",
      "🇫🇷🇯🇵",
      "antidisestablishmentarianism",
      "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
      "\n\n\n",
      "    ",
    ];
    for (const text of snippets) {
      for (const ref of references)
        expect(estimator.countText(text)).toBeGreaterThanOrEqual(ref.countText(text));
    }
  });

  it("charges non-ASCII characters at most 4 quarter tokens per UTF-8 byte", () => {
    for (const cp of [
      0xe9, 0x416, 0x4e2d, 0x3042, 0xac00, 0x2192, 0x1f600, 0x1f1eb, 0x20000, 0x1d400, 0x200d, 0xfe0f,
    ]) {
      const bytes = Buffer.byteLength(String.fromCodePoint(cp));
      expect(nonAsciiQuarterTokens(cp)).toBeLessThanOrEqual(4 * bytes);
    }
  });

  it("estimates a prefix as the running total, so truncation is exact for the estimate", () => {
    const text = mixedDocument(3, 50_000);
    for (const max of [0, 1, 10, 333, 5_000]) {
      const cut = estimator.truncateText(text, max);
      expect(estimator.countText(cut)).toBeLessThanOrEqual(max);
      const next = text.slice(0, cut.length + ((text.codePointAt(cut.length) ?? 0 > 0xffff) ? 2 : 1));
      if (cut.length < text.length) expect(estimator.countText(next)).toBeGreaterThan(max);
    }
  });
});
