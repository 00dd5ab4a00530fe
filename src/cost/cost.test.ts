import { calcPrice } from "@pydantic/genai-prices";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { costNanoUsd } from "./cost.js";
import { createPriceTable } from "./price-table.js";

describe("price table", () => {
  const table = createPriceTable({
    "my-finetune": { inputPicoUsdPerToken: 3_000_000, outputPicoUsdPerToken: 12_000_000 },
  });

  it("reads the maintained table as integer pico-USD per token", () => {
    // gpt-4o in the table: $2.50 / 1M input, $1.25 cached, $10 output.
    expect(table.priceFor("gpt-4o")).toEqual({
      inputPicoUsdPerToken: 2_500_000,
      cachedInputPicoUsdPerToken: 1_250_000,
      outputPicoUsdPerToken: 10_000_000,
      source: "genai-prices",
    });
    expect(table.priceFor("gpt-4.1-nano")?.cachedInputPicoUsdPerToken).toBe(25_000);
  });

  it("config overrides win; an unknown model has no price (never free)", () => {
    expect(table.priceFor("my-finetune")?.source).toBe("config");
    expect(table.priceFor("no-such-model-xyz")).toBeUndefined();
  });

  it("uses the highest tier of tiered prices (never cheaper than the bill)", () => {
    const p = table.priceFor("gemini-2.5-pro");
    expect(p?.inputPicoUsdPerToken).toBe(2_500_000);
    expect(p?.outputPicoUsdPerToken).toBe(15_000_000);
  });
});

describe("cost", () => {
  it("a request with cached and reasoning tokens equals a hand computation from the package's prices", () => {
    const price = createPriceTable({}).priceFor("o3");
    if (!price) throw new Error("o3 has no price");
    const usage = {
      inputTokens: 12_000,
      cachedInputTokens: 8_000,
      outputTokens: 3_000,
      reasoningTokens: 2_000,
    };
    // o3: input $2 / 1M, cached input $0.50 / 1M, output $8 / 1M (reasoning billed as output).
    const hand = 4_000 * 2 + 8_000 * 0.5 + 3_000 * 8; // micro-USD
    expect(costNanoUsd(usage, price)).toBe(hand * 1000);
    // And the package's own float computation agrees to the nano-dollar.
    const theirs = calcPrice({ input_tokens: 12_000, cache_read_tokens: 8_000, output_tokens: 3_000 }, "o3");
    expect(Math.round((theirs?.total_price ?? 0) * 1e9)).toBe(costNanoUsd(usage, price));
  });

  it("is an integer, rounded up per request, and sums equal the sum of the parts exactly", () => {
    const price = {
      inputPicoUsdPerToken: 37_500,
      outputPicoUsdPerToken: 150_001,
      cachedInputPicoUsdPerToken: 1,
    };
    fc.assert(
      fc.property(
        fc.array(fc.record({ i: fc.nat(200_000), c: fc.nat(200_000), o: fc.nat(50_000) }), { maxLength: 50 }),
        (reqs) => {
          let sum = 0;
          for (const r of reqs) {
            const c = costNanoUsd(
              { inputTokens: r.i, cachedInputTokens: r.c, outputTokens: r.o, reasoningTokens: 0 },
              price,
            );
            expect(Number.isSafeInteger(c)).toBe(true);
            const exactPico = (r.i - Math.min(r.c, r.i)) * 37_500 + Math.min(r.c, r.i) * 1 + r.o * 150_001;
            expect(c).toBe(Math.ceil(exactPico / 1000));
            sum += c;
          }
          expect(Number.isSafeInteger(sum)).toBe(true);
        },
      ),
    );
  });
});
