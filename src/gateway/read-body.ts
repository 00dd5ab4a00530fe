import type { IncomingMessage } from "node:http";
import { gatewayError } from "./http-errors.js";

/**
 * The whole request body, or `undefined` when it is over `maxBytes` (what is past the limit is read
 * and dropped, never kept). Why read to the end even then: the refusal can only be delivered, and
 * the connection kept, once the client has finished sending (the server's request timeout bounds a
 * client that never finishes). Why plain `data`/`end` listeners rather than `for await`: the async
 * iterator costs an end-of-stream watcher, a promise per chunk and several ticks per request, a
 * visible share of CPU under load (bench/gateway.bench.js).
 */
export function readBodyUpTo(req: IncomingMessage, maxBytes: number): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    let first: Buffer | undefined;
    let chunks: Buffer[] | undefined;
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > maxBytes) {
        first = undefined;
        chunks = undefined;
        return;
      }
      if (first === undefined) {
        first = chunk;
      } else {
        chunks ??= [first];
        chunks.push(chunk);
      }
    };
    const onEnd = () => {
      cleanup();
      if (size > maxBytes) resolve(undefined);
      else resolve(chunks ? Buffer.concat(chunks, size) : (first ?? Buffer.alloc(0)));
    };
    const onError = (error: Error) => {
      cleanup();
      reject(error);
    };
    // A request whose connection goes away before its body ends (no `end` will come).
    const onClose = () => {
      cleanup();
      reject(new Error("the request closed before its body ended"));
    };
    const cleanup = () => {
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("error", onError);
      req.off("close", onClose);
    };
    req.on("data", onData);
    req.on("end", onEnd);
    req.on("error", onError);
    req.on("close", onClose);
  });
}

/**
 * Reads a request body up to `limitBytes`; a larger one is refused with 413 `invalid_request`
 * (checked against Content-Length first, then while reading, so a lying client gains nothing).
 */
export async function readBody(req: IncomingMessage, limitBytes: number): Promise<Buffer> {
  const declared = Number(req.headers["content-length"]);
  const body =
    Number.isFinite(declared) && declared > limitBytes ? undefined : await readBodyUpTo(req, limitBytes);
  if (!body) throw gatewayError("invalid_request", `request body is over the ${limitBytes}-byte limit`, 413);
  return body;
}

/** Deepest nesting of objects and arrays a request body may have. */
export const MAX_JSON_DEPTH = 128;

/**
 * True when the JSON text nests objects/arrays deeper than `max` (brackets inside strings do not
 * count). Why: V8 parses any depth, but counting, copying and serialising the body recurse, and a
 * body nested 100 000 deep (well within the size limit) overflowed the stack — a 500, or a 502
 * blamed on the upstream. One pass over the characters, cheap next to the parse itself.
 */
export function nestedDeeperThan(text: string, max: number): boolean {
  // Fast path: a text with at most `max` opening brackets in all (strings included) cannot nest
  // deeper than that. Counted with indexOf (native), so a usual body (a few dozen brackets) is not
  // walked character by character; past `max` brackets the exact walk below decides.
  let brackets = 0;
  for (let i = text.indexOf("{"); i !== -1 && brackets <= max; i = text.indexOf("{", i + 1)) brackets++;
  for (let i = text.indexOf("["); i !== -1 && brackets <= max; i = text.indexOf("[", i + 1)) brackets++;
  if (brackets <= max) return false;
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 92 /* \ */) i++;
      else if (c === 34 /* " */) inString = false;
    } else if (c === 34) {
      inString = true;
    } else if (c === 123 /* { */ || c === 91 /* [ */) {
      if (++depth > max) return true;
    } else if (c === 125 /* } */ || c === 93 /* ] */) {
      depth--;
    }
  }
  return false;
}

/** Parses a JSON object body, or throws `invalid_request`. */
export function parseJsonObject(buf: Buffer): Record<string, unknown> {
  let v: unknown;
  const text = buf.toString("utf8");
  if (nestedDeeperThan(text, MAX_JSON_DEPTH))
    throw gatewayError("invalid_request", `request body is nested more than ${MAX_JSON_DEPTH} levels deep`);
  try {
    v = JSON.parse(text);
  } catch {
    // The parser's message can quote the body (which may hold secrets): say only what is wrong.
    throw gatewayError("invalid_request", "request body is not valid JSON");
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) {
    throw gatewayError("invalid_request", "request body must be a JSON object");
  }
  return v as Record<string, unknown>;
}
