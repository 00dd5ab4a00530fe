/**
 * The provider contract: no HTTP-framework types, so any transport (undici, in-process mock) fits.
 */

/** What an upstream answered. */
export interface UpstreamResponse {
  status: number;
  /** Response headers, lower-case names. */
  headers: Record<string, string>;
  /** The body, chunk by chunk as it arrives. */
  body: AsyncIterable<Buffer | string>;
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
