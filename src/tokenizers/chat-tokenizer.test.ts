import { describe, expect, it } from "vitest";
import type { ChatMessage, ToolDefinition } from "../core/types.js";
import { CL100K_CHAT_FORMAT, isCookbookToolShape, O200K_CHAT_FORMAT } from "./chat-format.js";
import { createChatTokenizer } from "./chat-tokenizer.js";
import { getChatTokenizer, getTextTokenizer, tokenizerForModel } from "./model-tokenizers.js";
import { createTokenCountCache } from "./token-count-cache.js";
import type { TextTokenizer } from "./types.js";

/**
 * The example conversation of OpenAI's cookbook "How to count tokens with tiktoken" (section 6),
 * whose published output is the API's `usage.prompt_tokens`: 129 for gpt-3.5-turbo, gpt-4-0613 and
 * gpt-4; 124 for gpt-4o and gpt-4o-mini. Four of its messages have a `name`.
 */
const COOKBOOK_MESSAGES: ChatMessage[] = [
  {
    role: "system",
    content:
      "You are a helpful, pattern-following assistant that translates corporate jargon into plain English.",
  },
  { role: "system", name: "example_user", content: "New synergies will help drive top-line growth." },
  {
    role: "system",
    name: "example_assistant",
    content: "Things working well together will increase revenue.",
  },
  {
    role: "system",
    name: "example_user",
    content:
      "Let's circle back when we have more bandwidth to touch base on opportunities for increased leverage.",
  },
  {
    role: "system",
    name: "example_assistant",
    content: "Let's talk later when we're less busy about how to do better.",
  },
  {
    role: "user",
    content: "This late pivot means we don't have time to boil the ocean for the client deliverable.",
  },
];

/** Section 7 (tool calls): published prompt_tokens 105 (gpt-3.5-turbo, gpt-4), 101 (gpt-4o, gpt-4o-mini). */
const COOKBOOK_TOOLS: ToolDefinition[] = [
  {
    type: "function",
    function: {
      name: "get_current_weather",
      description: "Get the current weather in a given location",
      parameters: {
        type: "object",
        properties: {
          location: { type: "string", description: "The city and state, e.g. San Francisco, CA" },
          unit: {
            type: "string",
            description: "The unit of temperature to return",
            enum: ["celsius", "fahrenheit"],
          },
        },
        required: ["location"],
      },
    },
  },
];
const COOKBOOK_TOOL_MESSAGES: ChatMessage[] = [
  { role: "system", content: "You are a helpful assistant that can answer to questions about the weather." },
  { role: "user", content: "What's the weather like in San Francisco?" },
];

describe("cookbook vectors (published prompt_tokens)", () => {
  it.each([
    ["gpt-3.5-turbo", 129],
    ["gpt-4-0613", 129],
    ["gpt-4", 129],
    ["gpt-4o", 124],
    ["gpt-4o-mini", 124],
  ])("example conversation on %s counts %i", (model, expected) => {
    const detailed = tokenizerForModel(model).countChatDetailed(COOKBOOK_MESSAGES);
    expect(detailed.tokens).toBe(expected);
    expect(detailed.exact).toBe(true);
    expect(tokenizerForModel(model).countChat(COOKBOOK_MESSAGES)).toBe(expected);
  });

  it("counts the name field and its extra token (a named message costs more than the same unnamed)", () => {
    const tok = getChatTokenizer("o200k_base");
    const named = COOKBOOK_MESSAGES[1] as ChatMessage;
    const unnamed = { role: named.role, content: named.content };
    const nameTokens = tok.countText(named.name as string);
    expect(tok.countMessage(named)).toBe(tok.countMessage(unnamed) + nameTokens + 1);
  });

  it.each([
    ["gpt-3.5-turbo", 105],
    ["gpt-4", 105],
    ["gpt-4o", 101],
    ["gpt-4o-mini", 101],
  ])("tools example on %s counts %i", (model, expected) => {
    const detailed = tokenizerForModel(model).countChatDetailed(COOKBOOK_TOOL_MESSAGES, COOKBOOK_TOOLS);
    expect(detailed.tokens).toBe(expected);
    expect(detailed.exact).toBe(true);
  });
});

describe("message shapes", () => {
  const tok = getChatTokenizer("o200k_base");

  it("counts one text part like string content, several as a sum marked inexact", () => {
    const text = "Summarize the following document in three bullet points.";
    const asString = tok.countMessageDetailed({ role: "user", content: text });
    const asPart = tok.countMessageDetailed({ role: "user", content: [{ type: "text", text }] });
    expect(asPart).toEqual(asString);
    const two = tok.countMessageDetailed({
      role: "user",
      content: [
        { type: "text", text: "first part" },
        { type: "text", text: " second part" },
      ],
    });
    expect(two.exact).toBe(false);
    expect(two.tokens).toBe(
      3 + tok.countText("user") + tok.countText("first part") + tok.countText(" second part"),
    );
  });

  it("estimates images conservatively and marks the count inexact", () => {
    const image = (detail?: string) =>
      ({
        role: "user",
        content: [
          {
            type: "image_url",
            image_url: { url: "data:image/png;base64,AAAA", ...(detail ? { detail } : {}) },
          },
        ],
      }) as ChatMessage;
    const base = 3 + tok.countText("user");
    expect(tok.countMessageDetailed(image())).toEqual({ tokens: base + 1536, exact: false });
    expect(tok.countMessageDetailed(image("low"))).toEqual({ tokens: base + 85, exact: false });
    expect(tokenizerForModel("gpt-4o-mini").countMessage(image())).toBe(base + 48_169);
    expect(tokenizerForModel("openai/gpt-4.1-nano").countMessage(image())).toBe(base + 3_779);
  });

  it("counts assistant tool calls and tool results as estimates that include every string", () => {
    const call: ChatMessage = {
      role: "assistant",
      content: null,
      tool_calls: [
        {
          id: "call_1",
          type: "function",
          function: { name: "get_current_weather", arguments: '{"location":"Paris"}' },
        },
      ],
    };
    const detailed = tok.countMessageDetailed(call);
    expect(detailed.exact).toBe(false);
    expect(detailed.tokens).toBe(
      3 +
        tok.countText("assistant") +
        O200K_CHAT_FORMAT.toolCallOverhead +
        tok.countText("get_current_weather") +
        tok.countText('{"location":"Paris"}'),
    );
    const result: ChatMessage = { role: "tool", tool_call_id: "call_1", content: '{"temperature": 21}' };
    expect(tok.countMessageDetailed(result)).toEqual({
      tokens: 3 + tok.countText("tool") + tok.countText('{"temperature": 21}') + tok.countText("call_1"),
      exact: false,
    });
  });

  it("marks tool schemas beyond the cookbook's shape inexact and counts their extra keywords", () => {
    expect(isCookbookToolShape(COOKBOOK_TOOLS[0] as ToolDefinition)).toBe(true);
    const nested: ToolDefinition = {
      type: "function",
      function: {
        name: "search",
        description: "Search.",
        parameters: {
          type: "object",
          properties: { filters: { type: "array", items: { type: "string" }, description: "Filters." } },
        },
      },
    };
    expect(isCookbookToolShape(nested)).toBe(false);
    const detailed = tok.countToolsDetailed([nested]);
    expect(detailed.exact).toBe(false);
    const t = O200K_CHAT_FORMAT.tools;
    expect(detailed.tokens).toBe(
      t.functionStart +
        tok.countText("search:Search") +
        t.propertiesStart +
        t.propertyKey +
        tok.countText("filters:array:Filters") +
        tok.countText('{"items":{"type":"string"}}') +
        t.functionsEnd,
    );
    expect(CL100K_CHAT_FORMAT.tools.functionStart).toBe(10);
  });

  it("counts a whole chat as messages + priming + tools", () => {
    const detailed = tok.countChatDetailed(COOKBOOK_TOOL_MESSAGES, COOKBOOK_TOOLS);
    const sum = detailed.messages.reduce((a, b) => a + b, 0);
    expect(detailed.tokens).toBe(sum + detailed.replyPriming + detailed.tools);
    expect(detailed.replyPriming).toBe(3);
    expect(tok.countChat([])).toBe(3);
  });

  it("marks every estimator count inexact", () => {
    const claude = tokenizerForModel("claude-sonnet-4-5");
    expect(claude.encoding).toBe("estimate");
    expect(claude.exact).toBe(false);
    const detailed = claude.countChatDetailed(COOKBOOK_MESSAGES);
    expect(detailed.exact).toBe(false);
    expect(detailed.tokens).toBeGreaterThanOrEqual(tokenizerForModel("gpt-4").countChat(COOKBOOK_MESSAGES));
  });
});

/** A text tokenizer that records every text it is asked to tokenize. */
function spyTokenizer(inner: TextTokenizer): TextTokenizer & { calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    encoding: inner.encoding,
    exact: inner.exact,
    countText(t) {
      calls.push(t);
      return inner.countText(t);
    },
    countTextUpTo(t, limit) {
      calls.push(t);
      return inner.countTextUpTo(t, limit);
    },
    truncateText: (t, n) => inner.truncateText(t, n),
  };
}

function conversation(turns: number): ChatMessage[] {
  const messages: ChatMessage[] = [{ role: "system", content: "You are terse." }];
  for (let i = 0; i < turns; i++) {
    messages.push({
      role: i % 2 === 0 ? "user" : "assistant",
      content: `Turn ${i}: ${"lorem ipsum ".repeat(i % 7)}`,
    });
  }
  return messages;
}

describe("per-message cache", () => {
  it("counting N+1 messages after N tokenizes only the new message", () => {
    const spy = spyTokenizer(getTextTokenizer("o200k_base"));
    const tok = createChatTokenizer({ text: spy, format: O200K_CHAT_FORMAT, cache: createTokenCountCache() });
    const history = conversation(40);
    const first = tok.countChat(history);
    const callsAfterFirst = spy.calls.length;
    const added: ChatMessage = { role: "user", content: "And one more question about budgets?" };
    const second = tok.countChat([...history, added]);
    expect(spy.calls.slice(callsAfterFirst)).toEqual(["user", "And one more question about budgets?"]);
    expect(second).toBe(first + tok.countMessage(added));
    // Equal content in a fresh object (a new request body) hits the cache too.
    const reparsed = JSON.parse(JSON.stringify([...history, added])) as ChatMessage[];
    const before = spy.calls.length;
    expect(tok.countChat(reparsed)).toBe(second);
    expect(spy.calls.length).toBe(before);
  });

  it("gives the same counts with and without the cache", () => {
    const cached = createChatTokenizer({
      text: getTextTokenizer("cl100k_base"),
      format: CL100K_CHAT_FORMAT,
      cache: createTokenCountCache(),
    });
    const uncached = createChatTokenizer({
      text: getTextTokenizer("cl100k_base"),
      format: CL100K_CHAT_FORMAT,
      cache: undefined,
    });
    const messages = conversation(30);
    expect(cached.countChat(messages)).toBe(uncached.countChat(messages));
    expect(cached.countChat(messages)).toBe(uncached.countChat(messages));
  });

  it("distinguishes messages that differ only in name, role, tool call or tool_call_id", () => {
    const tok = createChatTokenizer({
      text: getTextTokenizer("o200k_base"),
      format: O200K_CHAT_FORMAT,
      cache: createTokenCountCache(),
    });
    const base: ChatMessage = { role: "user", content: "hello" };
    const variants: ChatMessage[] = [
      base,
      { ...base, name: "alice" },
      { ...base, role: "assistant" },
      {
        ...base,
        content: [
          { type: "text", text: "hello" },
          { type: "text", text: "" },
        ],
      },
      { ...base, tool_call_id: "call_123456789" },
      {
        ...base,
        role: "assistant",
        tool_calls: [{ id: "c", type: "function", function: { name: "f", arguments: "{}" } }],
      },
    ];
    const fresh = createChatTokenizer({
      text: getTextTokenizer("o200k_base"),
      format: O200K_CHAT_FORMAT,
      cache: undefined,
    });
    for (const v of variants) tok.countMessage(v);
    for (const v of variants) expect(tok.countMessageDetailed(v)).toEqual(fresh.countMessageDetailed(v));
  });

  it("does not cache a bounded count that stopped early", () => {
    const spy = spyTokenizer(getTextTokenizer("o200k_base"));
    const tok = createChatTokenizer({ text: spy, format: O200K_CHAT_FORMAT, cache: createTokenCountCache() });
    const message: ChatMessage = { role: "user", content: "word ".repeat(500) };
    expect(tok.countMessageUpTo(message, 10)).toBe(11);
    const exact = tok.countMessage(message);
    expect(exact).toBe(3 + 1 + 501); // "word" + 499 × " word" + the trailing " "
    expect(tok.countMessageUpTo(message, 10_000)).toBe(exact);
    expect(tok.countMessageUpTo(message, 20)).toBe(21);
  });

  it("evicts least recently used entries beyond its character bound", () => {
    const cache = createTokenCountCache({ maxChars: 1_000 });
    const tok = createChatTokenizer({
      text: getTextTokenizer("o200k_base"),
      format: O200K_CHAT_FORMAT,
      cache,
    });
    for (let i = 0; i < 50; i++) tok.countMessage({ role: "user", content: `${i} ${"x".repeat(100)}` });
    const stats = cache.stats();
    expect(stats.chars).toBeLessThanOrEqual(1_000);
    expect(stats.evictions).toBeGreaterThan(0);
    tok.countMessage({ role: "user", content: "y".repeat(5_000) });
    expect(cache.stats().chars).toBeLessThanOrEqual(1_000);
  });
});

describe("assistant refusals", () => {
  it("an assistant message's refusal is counted (and cached apart from the same message without it)", () => {
    const tok = getChatTokenizer("o200k_base");
    const plain = { role: "assistant", content: null };
    const refused = { role: "assistant", content: null, refusal: "I can't help with that request, sorry." };
    const base = tok.countMessage(plain);
    expect(tok.countMessage(refused)).toBe(base + tok.countText(refused.refusal));
    expect(tok.countMessage(plain)).toBe(base);
    expect(tok.countMessage({ ...plain, refusal: null } as never)).toBe(base);
  });
});
