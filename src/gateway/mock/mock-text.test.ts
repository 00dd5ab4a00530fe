import { get_encoding, type Tiktoken } from "tiktoken";
import { afterAll, describe, expect, it } from "vitest";
import { getTextTokenizer, tokenizerForModel } from "../../tokenizers/index.js";
import { MOCK_WORDS, mockCompletionText, mockTextSlice } from "./mock-text.js";

const ENCODINGS = ["o200k_base", "cl100k_base"] as const;

/** OpenAI's own BPE (WASM): the reference the project's tokenizer is checked against too. */
const reference = new Map<string, Tiktoken>(ENCODINGS.map((e) => [e, get_encoding(e)]));
afterAll(() => {
  for (const enc of reference.values()) enc.free();
});

describe("mock completion text", { timeout: 30_000 }, () => {
  it("uses only lower-case letter words, so both pre-tokenizers cut at every space", () => {
    expect(MOCK_WORDS.length).toBeGreaterThanOrEqual(20);
    for (const w of MOCK_WORDS) expect(w).toMatch(/^[a-z]+$/);
  });

  describe.each(ENCODINGS)("%s", (encoding) => {
    const tokenizer = getTextTokenizer(encoding);
    const tiktoken = reference.get(encoding) as Tiktoken;

    it("has every word as exactly one token, with and without a leading space", () => {
      for (const w of MOCK_WORDS) {
        for (const s of [w, ` ${w}`]) {
          expect(tokenizer.countText(s), JSON.stringify(s)).toBe(1);
          expect(tiktoken.encode(s).length, JSON.stringify(s)).toBe(1);
        }
      }
    });

    it("makes a text of N words exactly N tokens, for every choice", () => {
      for (let choice = 0; choice < 4; choice++) {
        for (let n = 0; n <= 3 * MOCK_WORDS.length + 5; n++) {
          const text = mockCompletionText(n, choice);
          expect(tokenizer.countText(text)).toBe(n);
          expect(tiktoken.encode(text).length).toBe(n);
        }
      }
      const long = mockCompletionText(5_000, 1);
      expect(tokenizer.countText(long)).toBe(5_000);
      expect(tiktoken.encode(long).length).toBe(5_000);
    });
  });

  it("counts exactly with the chat tokenizers of gpt-4o and gpt-4", () => {
    for (const model of ["gpt-4o", "gpt-4o-mini", "gpt-4", "gpt-3.5-turbo"]) {
      const tokenizer = tokenizerForModel(model);
      expect(tokenizer.exact).toBe(true);
      expect(tokenizer.countText(mockCompletionText(123, 2))).toBe(123);
    }
  });

  it("concatenates slices into the whole text, whatever the chunk size", () => {
    for (const size of [1, 2, 5, 7, 100]) {
      let joined = "";
      for (let from = 0; from < 60; from += size) joined += mockTextSlice(3, from, Math.min(from + size, 60));
      expect(joined).toBe(mockCompletionText(60, 3));
    }
  });

  it("gives choices different texts of the same length", () => {
    const a = mockCompletionText(10, 0);
    const b = mockCompletionText(10, 1);
    expect(a).not.toBe(b);
    expect(a.split(" ")).toHaveLength(10);
    expect(b.split(" ")).toHaveLength(10);
    expect(mockCompletionText(0)).toBe("");
  });
});
