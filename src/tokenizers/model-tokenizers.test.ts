import { describe, expect, it } from "vitest";
import { encodingForModel, getChatTokenizer, tokenizerForModel } from "./model-tokenizers.js";

describe("encodingForModel", () => {
  it.each([
    ["gpt-4o", "o200k_base"],
    ["gpt-4o-2024-08-06", "o200k_base"],
    ["gpt-4o-mini", "o200k_base"],
    ["chatgpt-4o-latest", "o200k_base"],
    ["gpt-4.1", "o200k_base"],
    ["gpt-4.1-nano", "o200k_base"],
    ["gpt-4.5-preview", "o200k_base"],
    ["o1", "o200k_base"],
    ["o1-mini", "o200k_base"],
    ["o3-mini", "o200k_base"],
    ["o4-mini", "o200k_base"],
    ["gpt-5", "o200k_base"],
    ["gpt-5-mini-2025-08-07", "o200k_base"],
    ["openai/gpt-4o", "o200k_base"],
    ["azure/gpt-4.1-mini", "o200k_base"],
    ["ft:gpt-4o-mini-2024-07-18:acme::abc123", "o200k_base"],
    ["GPT-4O", "o200k_base"],
    ["gpt-4", "cl100k_base"],
    ["gpt-4-0613", "cl100k_base"],
    ["gpt-4-32k", "cl100k_base"],
    ["gpt-4-turbo", "cl100k_base"],
    ["gpt-4-turbo-2024-04-09", "cl100k_base"],
    ["gpt-4-1106-preview", "cl100k_base"],
    ["gpt-3.5-turbo", "cl100k_base"],
    ["gpt-3.5-turbo-0125", "cl100k_base"],
    ["openai/gpt-3.5-turbo", "cl100k_base"],
    ["claude-sonnet-4-5", "estimate"],
    ["anthropic/claude-3-5-haiku-20241022", "estimate"],
    ["gemini-2.5-pro", "estimate"],
    ["my-finetune", "estimate"],
    ["o10-future", "estimate"],
    ["gpt-40", "estimate"],
    ["", "estimate"],
  ])("%s → %s", (model, encoding) => {
    expect(encodingForModel(model)).toBe(encoding);
    expect(tokenizerForModel(model).encoding).toBe(encoding);
  });

  it("shares one chat tokenizer per encoding and image profile", () => {
    expect(tokenizerForModel("gpt-4o")).toBe(getChatTokenizer("o200k_base"));
    expect(tokenizerForModel("gpt-4o-2024-08-06")).toBe(tokenizerForModel("openai/gpt-4o"));
    expect(tokenizerForModel("gpt-4o-mini")).not.toBe(tokenizerForModel("gpt-4o"));
    expect(tokenizerForModel("gpt-4o").exact).toBe(true);
    expect(tokenizerForModel("claude-opus-4").exact).toBe(false);
  });
});
