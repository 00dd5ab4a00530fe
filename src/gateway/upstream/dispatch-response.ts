import type { Dispatcher } from "undici";
import type { UpstreamCancel, UpstreamResponse } from "./types.js";

/**
 * Bytes of an answer held before the upstream is paused, while nobody reads (or reads slower than it
 * arrives). The same order as a Node stream's high-water mark.
 */
const HIGH_WATER_BYTES = 64 * 1024;

function flatHeaders(h: Record<string, string | string[] | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(h)) {
    if (v !== undefined) out[k.toLowerCase()] = Array.isArray(v) ? v.join(", ") : v;
  }
  return out;
}

/**
 * One upstream call over undici's low-level `dispatch` (DispatchHandler, undici ≥ 7): the answer is
 * handed to the gateway as chunks, a whole text, or an async iterator over its chunks, without a
 * Node Readable in between.
 *
 * Why not undici's `request()`: it wraps every answer in a Readable stream (and `.text()` reads that
 * stream through its consumer machinery). At one request in flight that cost about 40 µs of added
 * p50 and 60–75 µs of gateway CPU per call against this handler, same Pool, same upstream
 * (bench/gateway.bench.js and a sequential one-connection run: docs/BENCHMARKS.md). Everything
 * else — connections, keep-alive, parsing, header and body timeouts, errors — is still undici's.
 *
 * Back-pressure: chunks not yet read are held up to HIGH_WATER_BYTES, then the socket is paused
 * until the reader catches up — except for an answer whose end is the connection's end
 * (`connection: close`, or neither a length nor chunked encoding): undici 7 fails an internal
 * assertion, uncatchable, when such a connection ends while its parser is paused (nodejs/undici
 * #5360, fixed in undici 8, which needs Node 22). Such an answer is held whole instead, as an upstream
 * that closes its connections is rare and its answers are bounded by the upstream's timeout. Cancelling (`cancel`) aborts the call wherever it is; a reader that
 * stops iterating early aborts it too, as undici does when its body stream is destroyed.
 */
export class DispatchCall implements Dispatcher.DispatchHandler, UpstreamResponse {
  status = 0;
  #raw: Record<string, string | string[] | undefined> = {};
  #flat: Record<string, string> | undefined;
  #controller: Dispatcher.DispatchController | undefined;
  #chunks: Buffer[] = [];
  #held = 0;
  #ended = false;
  #error: Error | undefined;
  #mode: "none" | "text" | "iterate" = "none";
  /** The iterating reader stopped early (`return()`): whatever comes after is dropped. */
  #stopped = false;
  /** Whether the socket may be paused for back-pressure (see the class comment). */
  #pausable = true;
  /** The pending `send()` promise, until the headers arrive or the call fails first. */
  #started: { resolve: (r: UpstreamResponse) => void; reject: (e: unknown) => void } | undefined;
  /** A reader waiting for the next chunk, the end or the failure. */
  #wake: (() => void) | undefined;
  readonly #cancel: UpstreamCancel;
  readonly #onCancel = () => {
    if (this.#controller) return this.#controller.abort(this.#cancel.reason as Error);
    // Still waiting for a pooled connection: the caller hears at once; undici drops the call when
    // it reaches a socket (onRequestStart sees the cancel).
    this.#fail(this.#cancel.reason as Error);
  };

  constructor(
    cancel: UpstreamCancel,
    started: { resolve: (r: UpstreamResponse) => void; reject: (e: unknown) => void },
  ) {
    this.#cancel = cancel;
    this.#started = started;
    cancel.on("abort", this.#onCancel);
  }

  get headers(): Record<string, string> {
    this.#flat ??= flatHeaders(this.#raw);
    return this.#flat;
  }

  get contentType(): string | undefined {
    // undici hands header names in lower case (onResponseStart relies on it too).
    const v = this.#raw["content-type"];
    return Array.isArray(v) ? v.join(", ") : v;
  }

  // --- undici's side (DispatchHandler) ---

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.#controller = controller;
    if (this.#cancel.aborted) controller.abort(this.#cancel.reason as Error);
    // undici calls this on a connected socket, right before it writes the request there.
    else this.#cancel.sent = true;
  }

  onResponseStart(
    _controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: Record<string, string | string[] | undefined>,
  ): void {
    if (statusCode < 200) return; // 1xx informational: the answer's own headers follow
    this.status = statusCode;
    this.#raw = headers;
    const connection = headers.connection;
    const te = headers["transfer-encoding"];
    this.#pausable =
      (connection === undefined || !/close/i.test(String(connection))) &&
      (headers["content-length"] !== undefined || (te !== undefined && /chunked/i.test(String(te))));
    const s = this.#started;
    this.#started = undefined;
    s?.resolve(this);
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.#chunks.push(chunk);
    if (this.#mode !== "text") {
      this.#held += chunk.length;
      if (this.#held > HIGH_WATER_BYTES && this.#pausable && !controller.paused) controller.pause();
    }
    this.#wakeReader();
  }

  onResponseEnd(): void {
    this.#ended = true;
    this.#done();
    this.#wakeReader();
  }

  onResponseError(_controller: Dispatcher.DispatchController, error: Error): void {
    this.#fail(error);
  }

  #fail(error: Error): void {
    this.#error ??= error;
    this.#done();
    const s = this.#started;
    this.#started = undefined;
    if (s) s.reject(this.#error);
    else this.#wakeReader();
  }

  // --- the gateway's side (UpstreamResponse) ---

  /** The whole answer as UTF-8 text, once it has ended. */
  text(): Promise<string> {
    try {
      this.#claim("text");
    } catch (e) {
      return Promise.reject(e);
    }
    if (this.#controller?.paused) this.#controller.resume();
    return new Promise<string>((resolve, reject) => {
      const settle = (): boolean => {
        if (this.#error) reject(this.#error);
        else if (this.#ended) {
          const c = this.#chunks;
          this.#chunks = [];
          resolve(c.length === 1 ? (c[0] as Buffer).toString("utf8") : Buffer.concat(c).toString("utf8"));
        } else return false;
        return true;
      };
      if (!settle()) this.#wake = () => void settle();
    });
  }

  /** The answer chunk by chunk, as it arrives. */
  get body(): AsyncIterable<Buffer> {
    return { [Symbol.asyncIterator]: () => this.#iterate() };
  }

  #iterate(): AsyncIterator<Buffer> {
    this.#claim("iterate");
    return {
      next: () => {
        // One waiting reader at a time (for await never overlaps its calls).
        if (this.#wake)
          return Promise.reject(new Error("an upstream answer is read by one next() at a time"));
        const ready = this.#take();
        if (ready) return ready;
        return new Promise<IteratorResult<Buffer>>((resolve, reject) => {
          this.#wake = () => {
            const r = this.#take();
            if (!r) return; // still nothing (cannot happen: woken by data, end or failure)
            this.#wake = undefined;
            r.then(resolve, reject);
          };
        });
      },
      return: () => {
        // The reader stopped early: the rest of the answer is not wanted (stopped first, so that a
        // next() still waiting ends as done, not with the abort's error).
        this.#stopped = true;
        if (!this.#ended && !this.#error)
          this.#controller?.abort(new Error("upstream answer no longer read"));
        this.#chunks = [];
        this.#done();
        this.#wakeReader();
        return Promise.resolve({ done: true, value: undefined });
      },
    };
  }

  /** The next result for an iterating reader, or undefined when it must wait. */
  #take(): Promise<IteratorResult<Buffer>> | undefined {
    if (this.#stopped) return Promise.resolve({ done: true, value: undefined });
    const c = this.#chunks.shift();
    if (c !== undefined) {
      this.#held -= c.length;
      if (this.#held <= HIGH_WATER_BYTES && this.#controller?.paused && !this.#ended)
        this.#controller.resume();
      return Promise.resolve({ done: false, value: c });
    }
    if (this.#error) return Promise.reject(this.#error);
    if (this.#ended) return Promise.resolve({ done: true, value: undefined });
    return undefined;
  }

  #claim(mode: "text" | "iterate"): void {
    if (this.#mode !== "none") throw new Error("an upstream answer can be read only once");
    this.#mode = mode;
  }

  #wakeReader(): void {
    const w = this.#wake;
    if (w === undefined) return;
    if (this.#mode === "text") {
      if (!this.#ended && !this.#error) return;
      this.#wake = undefined;
    }
    w();
  }

  /** The call is over (ended, failed or no longer read): the cancel has nothing left to stop. */
  #done(): void {
    this.#cancel.off("abort", this.#onCancel);
  }
}
