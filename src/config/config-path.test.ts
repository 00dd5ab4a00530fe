import { describe, expect, it } from "vitest";
import { formatPath, isPathWithin } from "./config-path.js";

describe("formatPath", () => {
  it.each<[(string | number)[], string]>([
    [[], "(root)"],
    [["features", "chat", "max_input"], "features.chat.max_input"],
    [["keys", 0, "hash"], "keys[0].hash"],
    [["prices", "gpt-4.1", "input"], 'prices["gpt-4.1"].input'],
    [["prices", "my-model"], "prices.my-model"],
    [["features", "my feature"], 'features["my feature"]'],
    [["upstreams", "1"], 'upstreams["1"]'],
    [["a", 'q"uote'], 'a["q\\"uote"]'],
  ])("%j → %s", (segments, text) => {
    expect(formatPath(segments)).toBe(text);
  });
});

describe("isPathWithin", () => {
  it("matches the path itself and anything below it", () => {
    expect(isPathWithin(["a", 1, "b"], ["a", 1])).toBe(true);
    expect(isPathWithin(["a", 1], ["a", 1])).toBe(true);
    expect(isPathWithin(["a"], ["a", 1])).toBe(false);
    expect(isPathWithin(["a", "1"], ["a", 1])).toBe(false);
  });
});
