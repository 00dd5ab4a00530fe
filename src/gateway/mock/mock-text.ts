/**
 * The mock upstream's completion text. Every word is exactly one token in both o200k_base (gpt-4o,
 * gpt-4.1, gpt-5, o-series) and cl100k_base (gpt-4, gpt-3.5-turbo), both alone and with a leading
 * space, and is made of lower-case letters only. Both encodings' pre-tokenizers cut such text at
 * each space, so the text of N words is exactly N tokens: `countText(text) === completion_tokens`
 * for every OpenAI model (mock-text.test.ts checks this against tiktoken too).
 */

/** The words the mock writes, in order (a choice starts at a different word, then cycles). */
export const MOCK_WORDS: readonly string[] = Object.freeze(
  (
    "this is a mock reply from the test server each word is one token so every count is exact " +
    "and easy to check the text has no real meaning it only fills the budget you set"
  ).split(" "),
);

const SPACED_WORDS: readonly string[] = MOCK_WORDS.map((w) => ` ${w}`);

/** How far apart the choices' starting words are, so that `n > 1` choices differ. */
const CHOICE_STRIDE = 7;

/**
 * Words `from` (inclusive) to `to` (exclusive) of choice `choice`'s text, as they appear in the
 * whole text: every word but the text's first carries its leading space, so consecutive slices
 * concatenate to the whole text (what streaming relies on).
 */
export function mockTextSlice(choice: number, from: number, to: number): string {
  const count = SPACED_WORDS.length;
  const offset = (choice * CHOICE_STRIDE) % count;
  let text = "";
  for (let i = from; i < to; i++) {
    const k = (offset + i) % count;
    text += i === 0 ? (MOCK_WORDS[k] as string) : (SPACED_WORDS[k] as string);
  }
  return text;
}

/** The whole text of choice `choice`: exactly `tokens` tokens. */
export function mockCompletionText(tokens: number, choice = 0): string {
  return mockTextSlice(choice, 0, tokens);
}
