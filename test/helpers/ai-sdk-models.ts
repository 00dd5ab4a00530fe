import type { LanguageModelV4CallOptions } from "@ai-sdk/provider";
import { MockLanguageModelV4 } from "ai/test";

/** An AI SDK usage (LanguageModelV4Usage) of `input` and `output` tokens. */
export const usageOf = (input: number, output: number) => ({
  inputTokens: { total: input, noCache: input, cacheRead: undefined, cacheWrite: undefined },
  outputTokens: { total: output, text: output, reasoning: undefined },
});

/** A model that records the options of every call and answers "ok" with 10 input and 2 output tokens. */
export function recordingModel(modelId = "gpt-4o") {
  const calls: LanguageModelV4CallOptions[] = [];
  const m = new MockLanguageModelV4({
    modelId,
    doGenerate: async (o) => {
      calls.push(o);
      return {
        content: [{ type: "text", text: "ok" }],
        finishReason: { unified: "stop", raw: "stop" },
        usage: usageOf(10, 2),
        warnings: [],
      };
    },
  });
  return { m, calls };
}
