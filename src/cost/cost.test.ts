import { calcPrice } from "@pydantic/genai-prices";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { costNanoUsd } from "./cost.js";
import { createPriceTable, pico, priceForInput } from "./price-table.js";

const NOW = Date.UTC(2026, 10, 24, 12);

describe("price table", () => {
  const table = createPriceTable({
    "my-finetune": { inputPicoUsdPerToken: 3_000_000, outputPicoUsdPerToken: 12_000_000 },
  });

  it("reads the maintained table as integer pico-USD per token", () => {
    // gpt-4o in the table: $2.50 / 1M input, $1.25 cached, $10 output.
    expect(table.priceFor("gpt-4o", NOW)).toEqual({
      inputPicoUsdPerToken: 2_500_000,
      cachedInputPicoUsdPerToken: 1_250_000,
      outputPicoUsdPerToken: 10_000_000,
      source: "genai-prices",
    });
    expect(table.priceFor("gpt-4.1-nano", NOW)?.cachedInputPicoUsdPerToken).toBe(25_000);
  });

  it("config overrides win; an unknown model has no price (never free)", () => {
    expect(table.priceFor("my-finetune", NOW)?.source).toBe("config");
    expect(table.priceFor("no-such-model-xyz", NOW)).toBeUndefined();
  });

  it("tiered prices: a request pays its input's tier, for every token, as the package computes it", () => {
    const p = table.priceFor("gemini-2.5-pro", NOW);
    if (!p) throw new Error("gemini-2.5-pro has no price");
    // Up to 200 000 input tokens: $1.25 / $0.125 cached / $10; above: $2.50 / $0.25 / $15.
    expect(priceForInput(p, 200_000)).toMatchObject({
      inputPicoUsdPerToken: 1_250_000,
      cachedInputPicoUsdPerToken: 125_000,
      outputPicoUsdPerToken: 10_000_000,
    });
    expect(priceForInput(p, 200_001)).toMatchObject({
      inputPicoUsdPerToken: 2_500_000,
      cachedInputPicoUsdPerToken: 250_000,
      outputPicoUsdPerToken: 15_000_000,
    });
    for (const [input, cached, output] of [
      [12_000, 8_000, 3_000],
      [200_000, 0, 1_000],
      [250_000, 100_000, 2_000],
    ] as const) {
      const usage = {
        inputTokens: input,
        cachedInputTokens: cached,
        outputTokens: output,
        reasoningTokens: 0,
      };
      const theirs = calcPrice(
        { input_tokens: input, cache_read_tokens: cached, output_tokens: output },
        "gemini-2.5-pro",
        { timestamp: new Date(NOW) },
      );
      expect(costNanoUsd(usage, priceForInput(p, input))).toBe(Math.round((theirs?.total_price ?? 0) * 1e9));
    }
  });

  it("a price is the one in force at the instant asked: peak hours and dated changes", () => {
    // deepseek-chat has peak and off-peak rates by UTC time of day; ask the same table at both.
    const t = createPriceTable({});
    const at = (h: number, m = 0) => Date.UTC(2026, 10, 24, h, m);
    for (const ms of [at(2), at(12), at(18), at(2), at(18)]) {
      const theirs = calcPrice({ input_tokens: 1_000_000, output_tokens: 1_000_000 }, "deepseek-chat", {
        timestamp: new Date(ms),
      });
      const p = t.priceFor("deepseek-chat", ms);
      if (!p) throw new Error("deepseek-chat has no price");
      const usage = {
        inputTokens: 1_000_000,
        cachedInputTokens: 0,
        outputTokens: 1_000_000,
        reasoningTokens: 0,
      };
      expect([ms, costNanoUsd(usage, priceForInput(p, 1_000_000))]).toEqual([
        ms,
        Math.round((theirs?.total_price ?? 0) * 1e9),
      ]);
    }
    const rates = new Set([at(2), at(18)].map((ms) => t.priceFor("deepseek-chat", ms)?.inputPicoUsdPerToken));
    expect(rates.size).toBe(2);
  });

  it("a float artefact in the package's data (0.18000000000000002, Qwen3-VL-8B) is still a price", () => {
    expect(pico(0.18000000000000002)).toBe(180_000);
    expect(pico(0.1 + 0.2)).toBe(300_000);
    expect(pico(2.5)).toBe(2_500_000);
  });
});

describe("cost", () => {
  it("a request with cached and reasoning tokens equals a hand computation from the package's prices", () => {
    const price = createPriceTable({}).priceFor("o3", NOW);
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
