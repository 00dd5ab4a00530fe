import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { needsPinnedClasses, splitPieces } from "./pretokenizer.js";
import * as U from "./unicode-classes.js";
import { UNICODE_CLASSES_FILE, unicodeClassesText } from "./write-unicode-classes.js";

describe("unicode-classes.ts (generated)", () => {
  it("is up to date with its generator (npm run unicode-classes)", async () => {
    expect(readFileSync(UNICODE_CLASSES_FILE, "utf8")).toBe(await unicodeClassesText());
  });

  it("holds Unicode 16.0: letters new in 16.0 are letters, those new in 17.0 are not", () => {
    const letter = new RegExp(`^[${U.L}]$`, "u");
    expect(letter.test("a")).toBe(true);
    expect(letter.test("\u{105C0}")).toBe(true); // Todhri, 16.0
    expect(letter.test("\u{323B0}")).toBe(false); // CJK Extension J, 17.0
    expect(new RegExp(`^[${U.N}]$`, "u").test("\u{0661}")).toBe(true);
    const ws = new RegExp(`^[${U.WHITE_SPACE}]$`, "u");
    expect(["\u0085", "\u00a0", "\u3000"].every((c) => ws.test(c))).toBe(true);
    expect(ws.test("\ufeff")).toBe(false); // JavaScript's \s has it; Unicode's White_Space does not
  });

  it("only a text holding a code point the runtime may class otherwise takes the written-out classes", () => {
    // This runtime is the one DIFFERS was computed on (the staleness test above checks that).
    expect(process.versions.unicode).toBe(U.DIFFERS_COMPUTED_ON);
    for (const text of ["plain ASCII prose.", "中文文本，日本語のテキスト", "emoji 😀👍🏽 and ʔ", ""])
      expect(needsPinnedClasses(text), text).toBe(false);
    for (const text of ["x\u{323B0}", "\u{0295}", "a\u{A2CA0}b"])
      expect(needsPinnedClasses(text), text).toBe(true);
    // Either way the split is Unicode 16.0's: U+323B0 is not a letter, so it does not join "x".
    expect(splitPieces("cl100k_base", "x\u{323B0}")).toEqual(["x", "\u{323B0}"]);
  });
});
