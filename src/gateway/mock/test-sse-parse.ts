/**
 * Test helper: a small SSE parser (the subset of the EventSource format OpenAI streams use), fed
 * text in arbitrary pieces, plus a reader for a `fetch` response body. Not the gateway's SSE tap:
 * tests use it to check what went over the wire independently of production code.
 */

/** One server-sent event. */
export interface SseEvent {
  /** The `event:` field, when present. */
  event: string | undefined;
  /** The `data:` lines joined with "\n". */
  data: string;
}

/** An incremental SSE parser. */
export interface SseParser {
  /** Feeds text; returns the events it completed. */
  push(text: string): SseEvent[];
  /** True when text after the last complete event is buffered (a cut stream leaves some). */
  readonly incomplete: boolean;
}

/** Creates an incremental SSE parser. */
export function createSseParser(): SseParser {
  let buffer = "";
  let data: string[] = [];
  let event: string | undefined;

  function line(text: string, out: SseEvent[]): void {
    if (text === "") {
      if (data.length > 0) out.push({ event, data: data.join("\n") });
      data = [];
      event = undefined;
      return;
    }
    if (text.startsWith(":")) return;
    const colon = text.indexOf(":");
    const field = colon < 0 ? text : text.slice(0, colon);
    let value = colon < 0 ? "" : text.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "data") data.push(value);
    else if (field === "event") event = value;
  }

  return {
    push(text) {
      const out: SseEvent[] = [];
      buffer += text;
      let start = 0;
      for (;;) {
        const nl = buffer.indexOf("\n", start);
        if (nl < 0) break;
        const end = nl > start && buffer[nl - 1] === "\r" ? nl - 1 : nl;
        line(buffer.slice(start, end), out);
        start = nl + 1;
      }
      buffer = buffer.slice(start);
      return out;
    },
    get incomplete() {
      return data.length > 0 || event !== undefined || buffer.length > 0;
    },
  };
}

/** Every complete event of `text`. */
export function parseSse(text: string): SseEvent[] {
  return createSseParser().push(text);
}

/** What {@link readSseResponse} collected. */
export interface SseRead {
  events: SseEvent[];
  /** The raw text received, exactly. */
  text: string;
  /** The error that ended the body early (a reset connection), if any. */
  error: unknown;
}

/**
 * Reads a `fetch` response body to its end (or until it fails) as SSE. `onEvent` sees each event as
 * it arrives, so a test can act mid-stream (abort the request after a few chunks).
 */
export async function readSseResponse(
  response: Response,
  onEvent?: (event: SseEvent) => void,
): Promise<SseRead> {
  const parser = createSseParser();
  const decoder = new TextDecoder();
  const events: SseEvent[] = [];
  let text = "";
  let error: unknown;
  if (!response.body) return { events, text, error };
  try {
    for await (const bytes of response.body) {
      const piece = decoder.decode(bytes, { stream: true });
      text += piece;
      for (const event of parser.push(piece)) {
        events.push(event);
        onEvent?.(event);
      }
    }
  } catch (caught) {
    error = caught;
  }
  return { events, text, error };
}
