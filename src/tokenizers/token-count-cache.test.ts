import { describe, expect, it } from "vitest";
import { createTokenCountCache, MAX_CHAIN } from "./token-count-cache.js";

describe("token count cache", () => {
  it("never confuses keys that share length and both ends (same fingerprint)", () => {
    const cache = createTokenCountCache();
    const edge = "x".repeat(40);
    const keys = Array.from({ length: MAX_CHAIN }, (_, i) => `${edge}${String(i).padStart(4, "0")}${edge}`);
    keys.forEach((key, i) => {
      cache.set(key, "s", { tokens: i, exact: true });
    });
    keys.forEach((key, i) => {
      expect(cache.get(key, "s")).toEqual({ tokens: i, exact: true });
      // An equal string built anew (as from a new request) finds the same entry.
      expect(cache.get(`${key} `.slice(0, -1), "s")).toEqual({ tokens: i, exact: true });
    });
    expect(cache.get(`${edge}9999${edge}`, "s")).toBeUndefined();
    expect(cache.stats().entries).toBe(MAX_CHAIN);
  });

  it("keeps at most MAX_CHAIN keys per fingerprint: a flood of such keys cannot slow every lookup", () => {
    const cache = createTokenCountCache();
    const edge = "y".repeat(40);
    const key = (i: number) => `${edge}${String(i).padStart(6, "0")}${edge}`;
    const n = 1000;
    for (let i = 0; i < n; i++) cache.set(key(i), "s", { tokens: i, exact: true });
    const st = cache.stats();
    expect(st.entries).toBe(MAX_CHAIN);
    expect(st.evictions).toBe(n - MAX_CHAIN);
    expect(st.chars).toBe(MAX_CHAIN * (key(0).length + 1));
    // The newest are kept; the dropped ones are misses, never another key's count.
    for (let i = n - MAX_CHAIN; i < n; i++)
      expect(cache.get(key(i), "s")).toEqual({ tokens: i, exact: true });
    for (let i = 0; i < n - MAX_CHAIN; i += 97) expect(cache.get(key(i), "s")).toBeUndefined();
    // Keys of other fingerprints are untouched by the cap.
    cache.set("other", "s", { tokens: 3, exact: false });
    expect(cache.get("other", "s")).toEqual({ tokens: 3, exact: false });
    expect(cache.stats().entries).toBe(MAX_CHAIN + 1);
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
