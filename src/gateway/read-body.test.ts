import { describe, expect, it } from "vitest";
import { MAX_JSON_DEPTH, nestedDeeperThan, parseJsonObject } from "./read-body.js";

describe("request body nesting", () => {
  it("measures nesting outside strings only, escapes included", () => {
    expect(nestedDeeperThan('{"a":[{"b":1}]}', 3)).toBe(false);
    expect(nestedDeeperThan('{"a":[{"b":[1]}]}', 3)).toBe(true);
    expect(nestedDeeperThan(`{"s":"${"[{".repeat(500)}"}`, 1)).toBe(false);
    expect(nestedDeeperThan('{"s":"\\\\\\"[[[["}', 1)).toBe(false);
  });

  it("decides by depth, not by how many brackets there are (many shallow ones pass, few deep ones do not)", () => {
    const wide = `{"messages":[${Array.from({ length: 300 }, () => '{"role":"user","content":[{"type":"text"}]}').join(",")}]}`;
    expect(nestedDeeperThan(wide, MAX_JSON_DEPTH)).toBe(false);
    expect(nestedDeeperThan(wide, 3)).toBe(true);
    expect(nestedDeeperThan('{"a":[1]}', 2)).toBe(false);
    expect(nestedDeeperThan('{"a":[[1]]}', 2)).toBe(true);
  });

  it("refuses a body nested deeper than the limit with invalid_request, and parses one at the limit", () => {
    const at = `{"x":${"[".repeat(MAX_JSON_DEPTH - 1)}${"]".repeat(MAX_JSON_DEPTH - 1)}}`;
    expect(parseJsonObject(Buffer.from(at))).toHaveProperty("x");
    const deep = `{"tools":${"[".repeat(100_000)}${"]".repeat(100_000)}}`;
    expect(() => parseJsonObject(Buffer.from(deep))).toThrow(/nested more than/);
  });
});
