import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { completionBody, mockUsage } from "./mock-wire.js";

describe("completionBody", () => {
  it("is byte for byte JSON.stringify of the completion object, with or without a reused choices part", () => {
    fc.assert(
      fc.property(
        fc.string(),
        fc.integer({ min: 0, max: 2 ** 40 }),
        fc.string(),
        fc.array(
          fc.record({
            content: fc.string(),
            finishReason: fc.constantFrom("stop" as const, "length" as const),
          }),
          {
            minLength: 1,
            maxLength: 3,
          },
        ),
        fc.option(fc.tuple(fc.nat(), fc.nat())),
        fc.boolean(),
        (id, created, model, choices, usage, keyed) => {
          const identity = { id, created, model, systemFingerprint: "fp_mock" };
          const u = usage ? mockUsage(usage[0], usage[1]) : undefined;
          const expected = JSON.stringify({
            id,
            object: "chat.completion",
            created,
            model,
            choices: choices.map((c, index) => ({
              index,
              message: { role: "assistant", content: c.content, refusal: null, annotations: [] },
              logprobs: null,
              finish_reason: c.finishReason,
            })),
            usage: u,
            system_fingerprint: "fp_mock",
          });
          // A key unique to these choices: the first call fills the cache, the second reuses it.
          const key = keyed ? JSON.stringify(choices) : undefined;
          expect(completionBody(identity, choices, u, key)).toBe(expected);
          expect(completionBody(identity, choices, u, key)).toBe(expected);
        },
      ),
      { numRuns: 300 },
    );
  });
});
