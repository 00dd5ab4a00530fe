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

describe("SSE tap: events of any shape", () => {
  const ev = (data: string) => `data: ${data}\n\n`;
  it("passes odd but valid JSON through untouched, never throwing", () => {
    const tap = createSseTap({ stripUsage: true });
    const odd = [
      "null",
      "42",
      '"x"',
      "[]",
      '{"choices":{}}',
      '{"choices":[null]}',
      '{"choices":[{"delta":null}]}',
      '{"choices":[{"delta":{"tool_calls":[null,{"function":null}]}}]}',
      '{"choices":[{"delta":{"content":5}}]}',
    ];
    for (const o of odd) expect(tap.push(ev(o))).toBe(ev(o));
    expect(tap.push(ev('{"choices":[{"delta":{"content":"ok"}}]}'))).toContain("ok");
    expect(tap.generatedText()).toBe("ok");
  });

  it("keeps refusals and legacy function calls for the estimate", () => {
    const tap = createSseTap({ stripUsage: false });
    tap.push(ev('{"choices":[{"delta":{"refusal":"I cannot"}}]}'));
    tap.push(ev('{"choices":[{"delta":{"function_call":{"name":"f","arguments":"{\\"a\\":1}"}}}]}'));
    expect(tap.generatedText()).toBe('I cannotf{"a":1}');
  });

  it("takes usage off a chunk that also has choices when the client did not ask, keeps it when it did", () => {
    const last = {
      id: "c",
      choices: [{ index: 0, delta: {}, finish_reason: "stop" }],
      usage: { prompt_tokens: 3, completion_tokens: 4 },
    };
    const stripped = createSseTap({ stripUsage: true });
    const out = stripped.push(ev(JSON.stringify(last)));
    expect(out.endsWith("\n\n")).toBe(true);
    const { usage: _u, ...rest } = last;
    expect(JSON.parse(out.trim().slice("data: ".length))).toEqual(rest);
    expect(stripped.usage).toEqual(last.usage);
    const kept = createSseTap({ stripUsage: false });
    expect(kept.push(ev(JSON.stringify(last)))).toBe(ev(JSON.stringify(last)));
  });
});
