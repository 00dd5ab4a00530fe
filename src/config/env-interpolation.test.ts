import { describe, expect, it } from "vitest";
import { interpolateEnv, interpolateString } from "./env-interpolation.js";

const env = { KEY: "sk-123", HOST: "example.com", EMPTY: "", DOLLAR: "${env:KEY}" };

describe("interpolateString", () => {
  it("replaces a whole value and references inside longer strings", () => {
    expect(interpolateString("${env:KEY}", env)).toEqual({ ok: true, value: "sk-123" });
    expect(interpolateString("https://${env:HOST}/v1?k=${env:KEY}", env)).toEqual({
      ok: true,
      value: "https://example.com/v1?k=sk-123",
    });
  });

  it("leaves other dollars alone and unescapes $${", () => {
    expect(interpolateString("price $5 or $$5", env)).toEqual({ ok: true, value: "price $5 or $$5" });
    expect(interpolateString("$${env:KEY}", env)).toEqual({ ok: true, value: "${env:KEY}" });
    expect(interpolateString("a$${b}c", env)).toEqual({ ok: true, value: "a${b}c" });
    // Only "$${" is an escape: "$$${" is a literal "$" followed by the escape.
    expect(interpolateString("$$${env:KEY}", env)).toEqual({ ok: true, value: "$${env:KEY}" });
  });

  it("does not interpolate a variable's value again", () => {
    expect(interpolateString("${env:DOLLAR}", env)).toEqual({ ok: true, value: "${env:KEY}" });
  });

  it("reports unset and empty variables by name", () => {
    expect(interpolateString("${env:NOPE} ${env:EMPTY}", env)).toEqual({
      ok: false,
      errors: ["environment variable NOPE is not set", "environment variable EMPTY is empty"],
    });
  });

  it("ignores inherited properties of the env object", () => {
    expect(interpolateString("${env:toString}", env)).toEqual({
      ok: false,
      errors: ["environment variable toString is not set"],
    });
  });

  it("rejects malformed references without echoing the text", () => {
    const bad = interpolateString("pw-${secretpart}", env);
    expect(bad.ok).toBe(false);
    expect(JSON.stringify(bad)).not.toContain("secretpart");
    expect(interpolateString("${env:KEY", env)).toMatchObject({
      ok: false,
      errors: [expect.stringContaining("unterminated")],
    });
    expect(interpolateString("${env:1X}", env).ok).toBe(false);
    expect(interpolateString("${ENV:KEY}", env).ok).toBe(false);
  });
});

describe("interpolateEnv", () => {
  it("copies the tree, interpolating values but not keys", () => {
    const tree = { "${env:KEY}": { list: ["${env:HOST}", 1, true, null] } };
    const result = interpolateEnv(tree, env);
    expect(result.issues).toEqual([]);
    expect(result.value).toEqual({ "${env:KEY}": { list: ["example.com", 1, true, null] } });
    expect(tree["${env:KEY}"].list[0]).toBe("${env:HOST}");
  });

  it("names the path of every failure", () => {
    const result = interpolateEnv({ a: { b: ["x", "${env:NOPE}"] }, c: "${env:EMPTY}" }, env);
    expect(result.issues).toEqual([
      { path: ["a", "b", 1], message: "environment variable NOPE is not set" },
      { path: ["c"], message: "environment variable EMPTY is empty" },
    ]);
    expect(result.failedPaths).toEqual([["a", "b", 1], ["c"]]);
  });

  it("keeps __proto__ an ordinary key", () => {
    const tree = JSON.parse('{"__proto__": {"polluted": true}}') as unknown;
    const { value } = interpolateEnv(tree, env);
    expect(Object.getPrototypeOf(value)).toBe(Object.prototype);
    expect(Object.keys(value as object)).toEqual(["__proto__"]);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it("normalises -0, drops undefined, and reports what a file cannot hold", () => {
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    const result = interpolateEnv({ n: -0, u: undefined, f: () => 1, d: new Date(0), cyclic }, env);
    expect(Object.is((result.value as { n: number }).n, 0)).toBe(true);
    expect(Object.hasOwn(result.value as object, "u")).toBe(false);
    expect(result.issues.map((i) => i.path)).toEqual([["f"], ["d"], ["cyclic", "self"]]);
  });
});
