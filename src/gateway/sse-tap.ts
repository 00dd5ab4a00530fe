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
  /** Content (and tool-call argument) text generated so far, for estimating output tokens. */
  generatedText(): string;
}

const EVENT_END = /\r?\n\r?\n/;

/** Creates an SSE tap. */
export function createSseTap(options: SseTapOptions): SseTap {
  const decoder = new StringDecoder("utf8");
  const maxKept = options.maxKeptChars ?? 4 * 1024 * 1024;
  let buffer = "";
  let usage: OpenAIUsage | undefined;
  let done = false;
  const generated: string[] = [];
  let keptChars = 0;

  function keep(s: string): void {
    if (keptChars >= maxKept) return;
    generated.push(s);
    keptChars += s.length;
  }

  /** Returns false when the event must not be forwarded. */
  function inspect(event: string): boolean {
    let data = "";
    for (const line of event.split(/\r?\n/)) {
      if (line.startsWith("data:")) data += line.slice(line[5] === " " ? 6 : 5);
    }
    if (data === "") return true;
    if (data === "[DONE]") {
      done = true;
      return true;
    }
    let parsed: {
      choices?: Array<{ delta?: { content?: unknown; tool_calls?: unknown } }>;
      usage?: OpenAIUsage | null;
    };
    try {
      parsed = JSON.parse(data);
    } catch {
      return true; // not ours to judge: pass it through untouched
    }
    for (const c of parsed.choices ?? []) {
      const d = c.delta;
      if (!d) continue;
      if (typeof d.content === "string") keep(d.content);
      if (Array.isArray(d.tool_calls)) {
        for (const tc of d.tool_calls as Array<{ function?: { name?: unknown; arguments?: unknown } }>) {
          if (typeof tc.function?.name === "string") keep(tc.function.name);
          if (typeof tc.function?.arguments === "string") keep(tc.function.arguments);
        }
      }
    }
    if (parsed.usage && typeof parsed.usage === "object") {
      usage = parsed.usage;
      if (options.stripUsage && Array.isArray(parsed.choices) && parsed.choices.length === 0) return false;
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
      if (inspect(event.slice(0, m.index))) out += event;
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
      if (rest.trim() !== "" && !inspect(rest)) return out;
      return out + rest;
    },
    get usage() {
      return usage;
    },
    get done() {
      return done;
    },
    generatedText: () => generated.join(""),
  };
}
