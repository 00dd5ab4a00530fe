import { describe, expect, it } from "vitest";
import { createTokenCountCache } from "./token-count-cache.js";

describe("token count cache", () => {
  it("never confuses keys that share length and both ends (same fingerprint)", () => {
    const cache = createTokenCountCache();
    const edge = "x".repeat(40);
    const keys = Array.from({ length: 20 }, (_, i) => `${edge}${String(i).padStart(4, "0")}${edge}`);
    keys.forEach((key, i) => {
      cache.set(key, "s", { tokens: i, exact: true });
    });
    keys.forEach((key, i) => {
      expect(cache.get(key, "s")).toEqual({ tokens: i, exact: true });
      // An equal string built anew (as from a new request) finds the same entry.
      expect(cache.get(`${key} `.slice(0, -1), "s")).toEqual({ tokens: i, exact: true });
    });
    expect(cache.get(`${edge}9999${edge}`, "s")).toBeUndefined();
    expect(cache.stats().entries).toBe(20);
  });

  it("keys counts by secondary key too, and packs exactness", () => {
    const cache = createTokenCountCache();
    cache.set("hello", "a", { tokens: 7, exact: true });
    cache.set("hello", "b", { tokens: 9, exact: false });
    expect(cache.get("hello", "a")).toEqual({ tokens: 7, exact: true });
    expect(cache.get("hello", "b")).toEqual({ tokens: 9, exact: false });
    expect(cache.get("hello", "c")).toBeUndefined();
  });

  it("evicts the least recently used keys first and stays within its bound", () => {
    const cache = createTokenCountCache({ maxChars: 100 });
    cache.set("a".repeat(40), "s", { tokens: 1, exact: true });
    cache.set("b".repeat(40), "s", { tokens: 2, exact: true });
    expect(cache.get("a".repeat(40), "s")).toBeDefined(); // "a…" is now the most recent
    cache.set("c".repeat(40), "s", { tokens: 3, exact: true });
    expect(cache.get("b".repeat(40), "s")).toBeUndefined();
    expect(cache.get("a".repeat(40), "s")).toBeDefined();
    expect(cache.get("c".repeat(40), "s")).toBeDefined();
    expect(cache.stats().chars).toBeLessThanOrEqual(100);
    cache.set("d".repeat(500), "s", { tokens: 4, exact: true });
    expect(cache.get("d".repeat(500), "s")).toBeUndefined();
    expect(cache.stats().evictions).toBe(1);
  });
});
