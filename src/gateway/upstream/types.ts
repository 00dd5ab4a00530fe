/**
 * The provider contract: no HTTP-framework types, so any transport (undici, in-process mock) fits.
 */

/** What an upstream answered. */
export interface UpstreamResponse {
  status: number;
  /** Response headers, lower-case names. */
  headers: Record<string, string>;
  /** The body, chunk by chunk as it arrives (streamed answers). */
  body: AsyncIterable<Buffer | string>;
  /**
   * The whole body as UTF-8 text (non-streamed answers). Read the body one way only: `body` or
   * `text()`. Why both: for a whole answer the transport can gather it without a stream iterator per
   * request (measured in the gateway's profile: docs/bench-gateway.md).
   */
  text(): Promise<string>;
}

/** Gathers a body read chunk by chunk into one string (for transports without a faster way). */
export async function collectText(body: AsyncIterable<Buffer | string>): Promise<string> {
  const parts: string[] = [];
  for await (const c of body) parts.push(typeof c === "string" ? c : c.toString("utf8"));
  return parts.join("");
}

/** Sends chat-completions requests to one configured upstream. */
export interface UpstreamClient {
  readonly name: string;
  readonly type: string;
  /** Upper bound for one request, first byte to last (ms). */
  readonly timeoutMs: number;
  send(req: {
    body: Record<string, unknown>;
    signal: AbortSignal;
    headers?: Record<string, string>;
  }): Promise<UpstreamResponse>;
  close(): Promise<void>;
}
