import type { IncomingMessage } from "node:http";
import { gatewayError } from "./http-errors.js";

/**
 * Reads a request body up to `limitBytes`; a larger one is refused with 413 `invalid_request`
 * (checked against Content-Length first, then while reading, so a lying client gains nothing).
 */
export async function readBody(req: IncomingMessage, limitBytes: number): Promise<Buffer> {
  const declared = Number(req.headers["content-length"]);
  if (Number.isFinite(declared) && declared > limitBytes) {
    throw gatewayError("invalid_request", `request body is over the ${limitBytes}-byte limit`, 413);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    const b = c as Buffer;
    size += b.length;
    if (size > limitBytes)
      throw gatewayError("invalid_request", `request body is over the ${limitBytes}-byte limit`, 413);
    chunks.push(b);
  }
  return chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, size);
}

/** Parses a JSON object body, or throws `invalid_request`. */
export function parseJsonObject(buf: Buffer): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(buf.toString("utf8"));
  } catch {
    // The parser's message can quote the body (which may hold secrets): say only what is wrong.
    throw gatewayError("invalid_request", "request body is not valid JSON");
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) {
    throw gatewayError("invalid_request", "request body must be a JSON object");
  }
  return v as Record<string, unknown>;
}
