import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { createSseTap } from "./sse-tap.js";

const chunk = (o: object) => `data: ${JSON.stringify(o)}\n\n`;
const stream = [
  chunk({
    id: "c1",
    object: "chat.completion.chunk",
    choices: [{ index: 0, delta: { role: "assistant", content: "" } }],
    usage: null,
  }),
  chunk({
    id: "c1",
    object: "chat.completion.chunk",
    choices: [{ index: 0, delta: { content: "Hello" } }],
    usage: null,
  }),
  chunk({
    id: "c1",
    object: "chat.completion.chunk",
    choices: [{ index: 0, delta: { content: " wörld 🙂" } }],
    usage: null,
  }),
  chunk({
    id: "c1",
    object: "chat.completion.chunk",
    choices: [{ index: 0, delta: {}, finish_reason: "stop" }],
    usage: null,
  }),
  chunk({
    id: "c1",
    object: "chat.completion.chunk",
    choices: [],
    usage: { prompt_tokens: 9, completion_tokens: 4, total_tokens: 13 },
  }),
  "data: [DONE]\n\n",
].join("");

function feed(text: string, cuts: number[], stripUsage: boolean) {
  const tap = createSseTap({ stripUsage });
  const bytes = Buffer.from(text, "utf8");
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  let out = "";
  let prev = 0;
  for (const p of [...points, bytes.length]) {
    out += tap.push(bytes.subarray(prev, p));
    prev = p;
  }
  out += tap.end();
  return { tap, out };
}

describe("SSE tap", () => {
  it("passes the stream through unchanged and reads usage, however the bytes are chunked", () => {
    fc.assert(
      fc.property(fc.array(fc.nat(), { maxLength: 20 }), (cuts) => {
        const { tap, out } = feed(stream, cuts, false);
        expect(out).toBe(stream);
        expect(tap.usage).toEqual({ prompt_tokens: 9, completion_tokens: 4, total_tokens: 13 });
        expect(tap.done).toBe(true);
        expect(tap.generatedText()).toBe("Hello wörld 🙂");
      }),
    );
  });

  it("drops only the usage chunk when the client did not ask for it", () => {
    fc.assert(
      fc.property(fc.array(fc.nat(), { maxLength: 20 }), (cuts) => {
        const { tap, out } = feed(stream, cuts, true);
        expect(out).not.toContain('"prompt_tokens"');
        expect(out).toContain("data: [DONE]");
        expect(out.split("\n\n").length).toBe(stream.split("\n\n").length - 1);
        expect(tap.usage?.total_tokens).toBe(13);
      }),
    );
  });

  it("keeps tool-call deltas for estimation and tolerates CRLF and junk events", () => {
    const s =
      chunk({
        choices: [
          { index: 0, delta: { tool_calls: [{ index: 0, function: { name: "f", arguments: '{"a":' } }] } },
        ],
      }).replace("\n\n", "\r\n\r\n") +
      ": comment\n\n" +
      "data: not json\n\n" +
      chunk({
        choices: [{ index: 0, delta: { tool_calls: [{ index: 0, function: { arguments: "1}" } }] } }],
      });
    const { tap, out } = feed(s, [3, 50], true);
    expect(out).toBe(s);
    expect(tap.generatedText()).toBe('f{"a":1}');
    expect(tap.usage).toBeUndefined();
    expect(tap.done).toBe(false);
  });
});
