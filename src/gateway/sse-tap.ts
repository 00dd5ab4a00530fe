import { StringDecoder } from "node:string_decoder";
import type { OpenAIUsage } from "../core/types.js";

/** Options of {@link createSseTap}. */
export interface SseTapOptions {
  /** Drop the usage-only chunk (the client did not ask for it; tokenfuse did). */
  stripUsage: boolean;
  /** At most this many characters of content deltas are kept for estimating usage (default 4 MiB). */
  maxKeptChars?: number;
}

/**
 * Reads an OpenAI chat-completions SSE stream as it passes through: forwards every event unchanged
 * as soon as it is complete (never the whole response), picks up `usage`, optionally drops the
 * usage-only chunk, and keeps the generated text so usage can be estimated if the upstream never
 * reports it. The one SSE parser of the gateway.
 */
export interface SseTap {
  /** Feeds upstream bytes; returns what to forward to the client now ("" when nothing is complete). */
  push(chunk: Buffer | string): string;
  /** End of the upstream stream: returns the rest to forward (an incomplete last event as is). */
  end(): string;
  /** The usage the upstream reported, if any. */
  readonly usage: OpenAIUsage | undefined;
  /** True once `data: [DONE]` was seen. */
  readonly done: boolean;
  /** Content (and tool-call argument) text generated so far, all choices together. */
  generatedText(): string;
  /**
   * The same text per choice (by its `index`, in index order), for estimating output tokens: the
   * choices of `n > 1` stream interleaved, and counted as one string their pieces would merge
   * across choices into tokens the provider never generated.
   */
  generatedTexts(): string[];
}

const EVENT_END = /\r?\n\r?\n/;

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/**
 * Hands `keep` every generated part of a streamed delta or a whole message — content, refusal,
 * tool-call and legacy function-call names and arguments — so output can be estimated when the
 * upstream reports no usable usage (all of it is generated, and billed). Any shape is tolerated.
 */
export function generatedParts(m: unknown, keep: (s: string) => void): void {
  if (!isObject(m)) return;
  if (typeof m.content === "string") keep(m.content);
  if (typeof m.refusal === "string") keep(m.refusal);
  // Reasoning that OpenAI-compatible servers return as text (DeepSeek, vLLM, OpenRouter): billed output.
  if (typeof m.reasoning_content === "string") keep(m.reasoning_content);
  if (typeof m.reasoning === "string") keep(m.reasoning);
  const calls = Array.isArray(m.tool_calls) ? m.tool_calls : [];
  const legacy = isObject(m.function_call) ? [{ function: m.function_call }] : [];
  for (const tc of [...calls, ...legacy]) {
    const fn = isObject(tc) && isObject(tc.function) ? tc.function : undefined;
    if (!fn) continue;
    if (typeof fn.name === "string") keep(fn.name);
    if (typeof fn.arguments === "string") keep(fn.arguments);
  }
}

/** Creates an SSE tap. */
export function createSseTap(options: SseTapOptions): SseTap {
  const decoder = new StringDecoder("utf8");
  const maxKept = options.maxKeptChars ?? 4 * 1024 * 1024;
  let buffer = "";
  let usage: OpenAIUsage | undefined;
  let done = false;
  /** Generated pieces per choice index (a Map: indexes come from the upstream's JSON). */
  const generated = new Map<number, string[]>();
  let choice: string[] = [];
  let keptChars = 0;

  function keep(s: string): void {
    if (keptChars >= maxKept) return;
    choice.push(s);
    keptChars += s.length;
  }

  function choiceAt(index: unknown): string[] {
    const i = typeof index === "number" && Number.isSafeInteger(index) ? index : 0;
    let parts = generated.get(i);
    if (!parts) {
      parts = [];
      generated.set(i, parts);
    }
    return parts;
  }

  function texts(): string[] {
    return [...generated.entries()].sort((x, y) => x[0] - y[0]).map(([, parts]) => parts.join(""));
  }

  /**
   * Returns true to forward the event as it came, false to drop it, or a string to forward instead.
   * Any JSON shape is tolerated: an event tokenfuse does not understand is passed on untouched (an
   * odd vendor event must never cut the stream, or its later output would go uncharged).
   */
  function inspect(event: string): boolean | string {
    let data = "";
    for (const line of event.split(/\r?\n/)) {
      if (line.startsWith("data:")) data += line.slice(line[5] === " " ? 6 : 5);
    }
    if (data === "") return true;
    if (data === "[DONE]") {
      done = true;
      return true;
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(data);
    } catch {
      return true; // not ours to judge: pass it through untouched
    }
    if (!isObject(parsed)) return true;
    const choices = Array.isArray(parsed.choices) ? parsed.choices : undefined;
    for (const c of choices ?? []) {
      if (!isObject(c)) continue;
      choice = choiceAt(c.index);
      generatedParts(c.delta, keep);
    }
    if (isObject(parsed.usage)) {
      usage = parsed.usage as OpenAIUsage;
      if (options.stripUsage) {
        // The client did not ask for usage (SPEC §6): drop the usage-only chunk, and take usage off a
        // chunk that also carries choices (some OpenAI-compatible servers put it on the last one).
        if (choices === undefined || choices.length === 0) return false;
        const { usage: _dropped, ...rest } = parsed;
        const others = event.split(/\r?\n/).filter((line) => !line.startsWith("data:") && line !== "");
        return [...others, `data: ${JSON.stringify(rest)}`].join("\n");
      }
    }
    return true;
  }

  function drain(): string {
    let out = "";
    for (;;) {
      const m = EVENT_END.exec(buffer);
      if (!m) break;
      const end = m.index + m[0].length;
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end);
      const verdict = inspect(event.slice(0, m.index));
      if (verdict === true) out += event;
      else if (verdict !== false) out += `${verdict}\n\n`;
    }
    return out;
  }

  return {
    push(chunk) {
      buffer += typeof chunk === "string" ? chunk : decoder.write(chunk);
      return drain();
    },
    end() {
      buffer += decoder.end();
      const out = drain();
      const rest = buffer;
      buffer = "";
      if (rest.trim() === "") return out + rest;
      const verdict = inspect(rest);
      if (verdict === false) return out;
      return out + (verdict === true ? rest : verdict);
    },
    get usage() {
      return usage;
    },
    get done() {
      return done;
    },
    generatedText: () => texts().join(""),
    generatedTexts: texts,
  };
}
