import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { createBpeTextTokenizer } from "./bpe-text-tokenizer.js";
import { provenOverflowPrefix, textLowerBound } from "./lower-bound.js";
import type { BpeEncodingName } from "./pretokenizer.js";
import { loadRankTable } from "./rank-loader.js";
import { parseRankTable } from "./rank-table.js";
import { cjkSample, emojiSample, mixedDocument } from "./test-samples.js";

const ENCODINGS: BpeEncodingName[] = ["o200k_base", "cl100k_base"];

const textArbitrary = fc.oneof(
  fc.string({ unit: "grapheme", maxLength: 200 }),
  fc.string({ unit: "binary", maxLength: 100 }),
  fc
    .tuple(
      fc.constantFrom("a", "Z", " ", "-", "=", "\n", "\t", "中", "😀", "é", "7", "ab", "a1"),
      fc.integer({ min: 1, max: 3_000 }),
    )
    .map(([unit, n]) => unit.repeat(n)),
  fc.integer({ min: 0, max: 1e6 }).map((seed) => mixedDocument(seed, 3_000)),
);

describe.each(ENCODINGS)("%s lower bounds", (encoding) => {
  const table = loadRankTable(encoding);
  const tokenizer = createBpeTextTokenizer(encoding);
  const scratch = new Uint32Array(256);

  it("never exceed the exact count", () => {
    fc.assert(
      fc.property(textArbitrary, (text) => {
        expect(textLowerBound(table, text, 0, text.length, scratch)).toBeLessThanOrEqual(
          tokenizer.countText(text),
        );
      }),
      { numRuns: 300 },
    );
    for (const text of [cjkSample(1, 5_000), emojiSample(1, 5_000), "a".repeat(50_000), " ".repeat(50_000)]) {
      expect(textLowerBound(table, text, 0, text.length, scratch)).toBeLessThanOrEqual(
        tokenizer.countText(text),
      );
    }
  });

  it("are tight on runs of one character", () => {
    // o200k_base and cl100k_base have no token with more than 8 "a"s, and spaces come in tokens of 128.
    expect(textLowerBound(table, "a".repeat(100_000), 0, 100_000, scratch)).toBe(12_500);
    expect(textLowerBound(table, " ".repeat(100_000), 0, 100_000, scratch)).toBe(782);
    // One 4-byte character per token at most: every emoji is at least one token.
    expect(textLowerBound(table, "😀".repeat(1_000), 0, 2_000, scratch)).toBeGreaterThanOrEqual(1_000);
  });

  it("prove an overflow no later than the prefix that really overflows", () => {
    fc.assert(
      fc.property(textArbitrary, fc.integer({ min: 1, max: 500 }), (text, cap) => {
        const end = provenOverflowPrefix(table, text, cap);
        if (end < text.length) expect(tokenizer.countText(text.slice(0, end))).toBeGreaterThan(cap);
      }),
      { numRuns: 300 },
    );
  });
});

describe("rank table parsing", () => {
  it("reads several `! rank` lines and looks tokens up by bytes", () => {
    const b64 = (s: string) => Buffer.from(s, "latin1").toString("base64");
    const table = parseRankTable({
      pat_str: "",
      special_tokens: {},
      bpe_ranks: `! 0 ${b64("a")} ${b64("b")}\n! 2 ${b64("ab")} ${b64("abababababab")}`,
    });
    expect(table.size).toBe(4);
    expect(table.maxTokenBytes).toBe(12);
    const probe = Buffer.from("xabababababab", "latin1");
    expect(table.rankOf(probe, 1, 3)).toBe(2);
    expect(table.rankOf(probe, 1, 13)).toBe(3);
    expect(table.rankOf(probe, 0, 2)).toBe(-1);
    expect(table.maxByteCount[0x61]).toBe(6);
    expect(Buffer.from(table.tokenBytes(3)).toString("latin1")).toBe("abababababab");
  });

  it("refuses ranks with gaps", () => {
    expect(() => parseRankTable({ pat_str: "", special_tokens: {}, bpe_ranks: "! 0 YQ== ! 5 Yg==" })).toThrow(
      /contiguous/,
    );
  });
});
