import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { OnExceed } from "../config/types.js";
import { TokenBudgetError } from "../core/errors.js";
import type { ChatMessage } from "../core/types.js";
import { getChatTokenizer } from "../tokenizers/index.js";
import { applyInputPolicy, measureInput, SUMMARY_PREFIX } from "./input-policy.js";
import { splitConversation } from "./units.js";

const tok = getChatTokenizer("o200k_base");

const words = fc.array(
  fc.constantFrom("alpha", "beta", "gamma", "delta", "tokens", "budget", "的", "🙂", " ", "\n", "x1"),
  {
    minLength: 0,
    maxLength: 60,
  },
);
const text = words.map((w) => w.join(" "));

/** Conversations: system messages, then turns (some with tool calls and results), usually ending with a user message. */
const conversation = fc
  .record({
    systems: fc.array(text, { minLength: 0, maxLength: 2 }),
    turns: fc.array(
      fc.record({
        user: text,
        assistant: text,
        tools: fc.array(text, { minLength: 0, maxLength: 2 }),
      }),
      { minLength: 1, maxLength: 8 },
    ),
    lastUser: text,
    midSystem: fc.boolean(),
  })
  .map(({ systems, turns, lastUser, midSystem }) => {
    const msgs: ChatMessage[] = systems.map((s) => ({ role: "system", content: s }));
    turns.forEach((t, i) => {
      msgs.push({ role: "user", content: t.user });
      if (t.tools.length > 0) {
        msgs.push({
          role: "assistant",
          content: null,
          tool_calls: t.tools.map((_, j) => ({
            id: `call_${i}_${j}`,
            type: "function",
            function: { name: "lookup", arguments: `{"q":${j}}` },
          })),
        });
        for (const [j, r] of t.tools.entries())
          msgs.push({ role: "tool", tool_call_id: `call_${i}_${j}`, content: r });
      }
      msgs.push({ role: "assistant", content: t.assistant });
      if (midSystem && i === 0) msgs.push({ role: "system", content: "mid-conversation instruction" });
    });
    msgs.push({ role: "user", content: lastUser });
    return msgs;
  });

function requiredTokens(messages: ChatMessage[]): number {
  const conv = splitConversation(messages);
  const keep: ChatMessage[] = conv.pinned.map((i) => messages[i] as ChatMessage);
  for (let u = conv.anchor; u < conv.units.length; u++) {
    for (const i of conv.units[u]?.indexes ?? []) keep.push(messages[i] as ChatMessage);
  }
  return tok.countChat(keep);
}

function checkInvariants(input: ChatMessage[], out: ChatMessage[], policy: OnExceed): void {
  // Order kept, every system message kept (by identity).
  let last = -1;
  for (const m of out) {
    const i = input.indexOf(m);
    if (i === -1) continue; // truncated copy or summary
    expect(i).toBeGreaterThan(last);
    last = i;
  }
  for (const m of input) if (m.role === "system") expect(out).toContain(m);
  // The newest user message is kept (truncate may shorten it: then its text is a prefix).
  const newestUser = [...input].reverse().find((m) => m.role === "user") as ChatMessage;
  if (!out.includes(newestUser)) {
    expect(policy).toBe("truncate");
    const copy = out.find((m) => m.role === "user" && input.indexOf(m) === -1);
    expect(copy).toBeDefined();
    expect((newestUser.content as string).startsWith(copy?.content as string)).toBe(true);
  }
  // Turns go whole: when trim or summarize dropped messages, what is kept of the conversation (system
  // messages and a summary aside) starts with a question, never with a reply to a dropped one.
  if ((policy === "trim" || policy === "summarize") && out.length < input.length) {
    const first = out.find((m) => m.role !== "system" && m.role !== "developer");
    expect(first?.role).toBe("user");
  }
  // Tool results never separated from their calls.
  const callIds = new Set(out.flatMap((m) => (m.tool_calls ?? []).map((c) => c.id)));
  for (const m of out) if (m.role === "tool") expect(callIds.has(m.tool_call_id as string)).toBe(true);
  for (const m of input) {
    if (m.role === "tool" && callIds.has(m.tool_call_id as string)) expect(out).toContain(m);
  }
}

describe("input policies (properties)", () => {
  for (const policy of ["reject", "trim", "truncate", "summarize"] as const) {
    it(`${policy}: fits max_input by the same count, or rejects only when it must`, async () => {
      await fc.assert(
        fc.asyncProperty(
          conversation,
          fc.integer({ min: 5, max: 1500 }),
          fc.boolean(),
          async (messages, maxInput, summaryWorks) => {
            const res = await applyInputPolicy({
              messages,
              maxInputTokens: maxInput,
              onExceed: policy,
              tokenizer: tok,
              summarizer: async () => {
                if (!summaryWorks) throw new Error("provider down");
                return "they talked about budgets";
              },
            });
            const whole = tok.countChat(messages);
            if (res instanceof TokenBudgetError) {
              expect(res.code).toBe("input_budget_exceeded");
              expect(whole).toBeGreaterThan(maxInput);
              if (policy !== "reject" && policy !== "truncate")
                expect(requiredTokens(messages)).toBeGreaterThan(maxInput);
              return;
            }
            expect(tok.countChat(res.messages)).toBe(res.inputTokens);
            expect(res.inputTokens).toBeLessThanOrEqual(maxInput);
            if (whole <= maxInput) {
              expect(res.messages).toEqual(messages);
              expect(res.reduced).toBe(false);
            } else {
              expect(policy).not.toBe("reject");
              expect(res.reduced).toBe(true);
            }
            checkInvariants(messages, res.messages, policy);
            if (res.summarized) {
              expect(
                res.messages.some(
                  (m) => typeof m.content === "string" && m.content.startsWith(SUMMARY_PREFIX),
                ),
              ).toBe(true);
            }
          },
        ),
        { numRuns: 150 },
      );
    });
  }
});

describe("input policies (examples)", () => {
  const sys: ChatMessage = { role: "system", content: "Be brief." };
  const long = (n: number) => "word ".repeat(n);
  const history: ChatMessage[] = [
    sys,
    { role: "user", content: long(300) },
    { role: "assistant", content: long(300) },
    { role: "user", content: long(300) },
    { role: "assistant", content: long(300) },
    { role: "user", content: "and now?" },
  ];

  it("trim drops the oldest turns whole and reports how many", async () => {
    const res = await applyInputPolicy({
      messages: history,
      maxInputTokens: 400,
      onExceed: "trim",
      tokenizer: tok,
    });
    if (res instanceof TokenBudgetError) throw res;
    // The newest reply (300 words) would fit, but its question does not: the turn goes whole, and
    // the conversation never starts with a reply to nothing.
    expect(res.messages).toEqual([sys, history[5]]);
    expect(res.droppedMessages).toBe(4);
    expect(res.inputTokens).toBe(tok.countChat(res.messages));
  });

  it("trim of a conversation without any user message keeps the newest messages that fit", async () => {
    const notes: ChatMessage[] = [
      sys,
      { role: "assistant", content: long(300) },
      { role: "assistant", content: long(50) },
      { role: "assistant", content: long(50) },
    ];
    const res = await applyInputPolicy({
      messages: notes,
      maxInputTokens: 200,
      onExceed: "trim",
      tokenizer: tok,
    });
    if (res instanceof TokenBudgetError) throw res;
    expect(res.messages).toEqual([sys, notes[2], notes[3]]);
    expect(res.droppedMessages).toBe(1);
  });

  it("reject refuses with input_budget_exceeded and the cap", async () => {
    const res = await applyInputPolicy({
      messages: history,
      maxInputTokens: 700,
      onExceed: "reject",
      tokenizer: tok,
    });
    expect(res).toBeInstanceOf(TokenBudgetError);
    expect((res as TokenBudgetError).limit).toBe(700);
  });

  it("truncate fills the room left with the start of the next older message", async () => {
    const res = await applyInputPolicy({
      messages: history,
      maxInputTokens: 400,
      onExceed: "truncate",
      tokenizer: tok,
    });
    if (res instanceof TokenBudgetError) throw res;
    expect(res.truncatedMessages).toBe(1);
    expect(res.droppedMessages).toBe(2);
    expect(res.messages).toHaveLength(4);
    expect(res.messages[1]?.role).toBe("user");
    const original = history[3]?.content as string;
    expect(original.startsWith(res.messages[1]?.content as string)).toBe(true);
    expect(res.inputTokens).toBeGreaterThanOrEqual(395);
    expect(res.inputTokens).toBeLessThanOrEqual(400);
  });

  it("truncate shortens a newest user message that alone is over the cap", async () => {
    const res = await applyInputPolicy({
      messages: [sys, { role: "user", content: long(10_000) }],
      maxInputTokens: 1000,
      onExceed: "truncate",
      tokenizer: tok,
    });
    if (res instanceof TokenBudgetError) throw res;
    expect(res.inputTokens).toBeLessThanOrEqual(1000);
    expect(res.inputTokens).toBeGreaterThan(950);
  });

  it("trim rejects when the system message and newest user message cannot fit", async () => {
    const res = await applyInputPolicy({
      messages: [sys, { role: "user", content: long(2000) }],
      maxInputTokens: 1000,
      onExceed: "trim",
      tokenizer: tok,
    });
    expect(res).toBeInstanceOf(TokenBudgetError);
  });

  it("summarize replaces the dropped turns with one summary message", async () => {
    const seen: ChatMessage[][] = [];
    const res = await applyInputPolicy({
      messages: history,
      maxInputTokens: 400,
      onExceed: "summarize",
      tokenizer: tok,
      summarizer: async (dropped) => {
        seen.push(dropped);
        return "The user asked twice about words.";
      },
    });
    if (res instanceof TokenBudgetError) throw res;
    expect(res.summarized).toBe(true);
    // A quarter of the cap (100 of 400) is kept for the summary, so the 300-token assistant turn goes too.
    expect(seen[0]).toEqual(history.slice(1, 5));
    expect(res.messages.map((m) => m.role)).toEqual(["system", "system", "user"]);
    expect(res.inputTokens).toBeLessThanOrEqual(400);
  });

  it("summarize falls back to trim when the summarizer fails or the summary does not fit", async () => {
    for (const summarizer of [async () => Promise.reject(new Error("boom")), async () => long(5000)]) {
      const res = await applyInputPolicy({
        messages: history,
        maxInputTokens: 400,
        onExceed: "summarize",
        tokenizer: tok,
        summarizer,
      });
      if (res instanceof TokenBudgetError) throw res;
      expect(res.summarized).toBe(false);
      expect(res.summaryFallback).toBeDefined();
      expect(res.droppedMessages).toBe(4);
    }
  });

  it("decides on a 1 MiB message of any content without counting all of it", async () => {
    const blobs = ["a".repeat(1 << 20), " ".repeat(1 << 20), "的".repeat(349_525), "🙂".repeat(262_144)];
    for (const blob of blobs) {
      for (const onExceed of ["reject", "trim", "truncate"] as const) {
        const res = await applyInputPolicy({
          messages: [sys, { role: "user", content: blob }],
          maxInputTokens: 4000,
          onExceed,
          tokenizer: tok,
        });
        if (onExceed === "truncate") {
          if (res instanceof TokenBudgetError) throw res;
          expect(res.inputTokens).toBeLessThanOrEqual(4000);
          expect(tok.countChat(res.messages)).toBe(res.inputTokens);
        } else {
          expect(res).toBeInstanceOf(TokenBudgetError);
        }
      }
    }
  });
});

describe("measureInput (the usage log's count of an input over the cap)", () => {
  it("equals the whole count and the part trimming must keep, when under the bound", () => {
    fc.assert(
      fc.property(conversation, (messages) => {
        const m = measureInput({ messages, tokenizer: tok }, 1_000_000);
        expect(m).toEqual({
          tokens: tok.countChat(messages),
          capped: false,
          floor: requiredTokens(messages),
        });
      }),
      { numRuns: 150 },
    );
  });

  it("stops at the bound: the count is then the bound + 1, flagged as capped", () => {
    fc.assert(
      fc.property(conversation, fc.integer({ min: 1, max: 400 }), (messages, limit) => {
        const m = measureInput({ messages, tokenizer: tok }, limit);
        const full = tok.countChat(messages);
        const floor = requiredTokens(messages);
        if (full <= limit) expect(m).toEqual({ tokens: full, capped: false, floor });
        else {
          expect(m.tokens).toBe(limit + 1);
          expect(m.capped).toBe(true);
          expect(m.floor).toBe(floor <= limit ? floor : limit + 1);
        }
      }),
      { numRuns: 300 },
    );
  });

  it("stops after maxLookups messages it has no count for; the policy's own counts are free", () => {
    fc.assert(
      fc.property(conversation, fc.integer({ min: 0, max: 12 }), (messages, k) => {
        const full = tok.countChat(messages);
        const m = measureInput({ messages, tokenizer: tok }, 1_000_000, k);
        expect(m.capped).toBe(messages.length > k);
        if (m.capped) expect(m.tokens).toBeLessThan(full);
        else expect(m.tokens).toBe(full);
        const counts = messages.map((x) => tok.countMessage(x));
        expect(measureInput({ messages, tokenizer: tok, counts }, 1_000_000, 0)).toEqual({
          tokens: full,
          capped: false,
          floor: requiredTokens(messages),
        });
      }),
      { numRuns: 200 },
    );
  });

  it("counts tools in both the total and the floor", () => {
    const tools = [{ type: "function", function: { name: "lookup", parameters: { type: "object" } } }];
    const messages: ChatMessage[] = [
      { role: "system", content: "Be brief." },
      { role: "user", content: "hello there" },
    ];
    const m = measureInput({ messages, tools, tokenizer: tok }, 10_000);
    expect(m.tokens).toBe(tok.countChat(messages, tools));
    expect(m.floor).toBe(m.tokens);
  });
});
