import { EventEmitter } from "node:events";

/**
 * The provider contract: no HTTP-framework types, so any transport (undici, in-process mock) fits.
 */

/**
 * Stops an upstream call: `abort(reason)` once, then `aborted` is true, `reason` holds why and an
 * `abort` event has been emitted.
 *
 * Why not an AbortController per request: an AbortSignal is an EventTarget, and making one plus a
 * listener on it cost about 8 µs of the gateway's ~200 µs of CPU per request (profile in
 * docs/bench-gateway.md). The undici transport listens for `abort` (dispatch-response.ts); undici's
 * `request()` also takes an EventEmitter with `aborted` and `reason` as its `signal`, which this is.
 * Transports that need a real AbortSignal read `signal`, made on first use and aborted with this.
 */
export class UpstreamCancel extends EventEmitter {
  /**
   * Set by the transport once the request is on its way to the provider (written to a connected
   * socket, or handed to an in-process upstream); false while it waits for a connection, a TLS
   * handshake or a pooled socket. A client that leaves after this is charged its input: the provider
   * has the prompt. Before, nothing of it left the gateway.
   */
  sent = false;
  #aborted = false;
  #reason: unknown;
  #controller: AbortController | undefined;

  get aborted(): boolean {
    return this.#aborted;
  }

  get reason(): unknown {
    return this.#reason;
  }

  /** An AbortSignal that aborts with this (made on first use). */
  get signal(): AbortSignal {
    if (!this.#controller) {
      this.#controller = new AbortController();
      if (this.#aborted) this.#controller.abort(this.#reason);
    }
    return this.#controller.signal;
  }

  /** Aborts (the first call only). */
  abort(reason: Error): void {
    if (this.#aborted) return;
    this.#aborted = true;
    this.#reason = reason;
    this.#controller?.abort(reason);
    this.emit("abort");
  }

  /** A cancel that aborts by itself after `ms` (its timer does not keep the process alive). */
  static timeout(ms: number): UpstreamCancel {
    const c = new UpstreamCancel();
    setTimeout(() => c.abort(new Error(`upstream timed out after ${ms} ms`)), ms).unref();
    return c;
  }
}

/** What an upstream answered. */
export interface UpstreamResponse {
  status: number;
  /** Response headers, lower-case names (may be gathered on first read). */
  readonly headers: Record<string, string>;
  /** Optional: the Content-Type header, read without gathering all headers (else `headers`). */
  readonly contentType?: string | undefined;
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
    cancel: UpstreamCancel;
    headers?: Record<string, string>;
  }): Promise<UpstreamResponse>;
  close(): Promise<void>;
}
