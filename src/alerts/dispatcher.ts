import type { Logger } from "../core/logger.js";
import type { Alert, AlertSink } from "./types.js";

/** An attempt given up on while the sink's send was still under way (it ignored its signal). */
class GaveUp extends Error {
  constructor() {
    super(
      "the sink did not finish within its timeout nor stop when told to (not retried: it may still deliver)",
    );
  }
}

/** How long a sink whose attempt was aborted has to fail by itself before it is given up on (ms). */
const ABORT_GRACE_MS = 100;

/** Options of {@link createAlertDispatcher}. */
export interface AlertDispatcherOptions {
  sinks: AlertSink[];
  logger: Logger;
  /** Alerts waiting at most; past it the oldest is dropped (and logged). Default 1 000. */
  maxQueue?: number;
  /** Attempts per sink and alert (default 3). */
  attempts?: number;
  /** Wait before the first retry, doubled each time (ms, default 500). */
  backoffMs?: number;
  /** Time allowed for one delivery attempt (ms, default 5 000). */
  timeoutMs?: number;
}

/** Sends alerts to every sink, off the request path. */
export interface AlertDispatcher {
  /** Queues an alert and returns at once (never waits on a sink). */
  dispatch(alert: Alert): void;
  /** Resolves when the queue is empty (tests, shutdown). */
  drain(): Promise<void>;
  /** Alerts dropped because the queue was full, and deliveries that failed every attempt. */
  readonly dropped: number;
  readonly failed: number;
  close(): Promise<void>;
}

/**
 * A bounded queue drained by one background worker. Why off the request path: a slow or hanging
 * webhook must never delay or fail a request; each attempt has its own timeout, failures are retried
 * with backoff, and what is finally lost is counted and logged, never silent.
 */
export function createAlertDispatcher(options: AlertDispatcherOptions): AlertDispatcher {
  const maxQueue = options.maxQueue ?? 1000;
  const attempts = options.attempts ?? 3;
  const backoffMs = options.backoffMs ?? 500;
  const timeoutMs = options.timeoutMs ?? 5000;
  const queue: Alert[] = [];
  let working: Promise<void> | undefined;
  let dropped = 0;
  let failed = 0;
  let closed = false;
  const stop = new AbortController();

  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      const t = setTimeout(resolve, ms);
      t.unref();
      stop.signal.addEventListener("abort", () => {
        clearTimeout(t);
        resolve();
      });
    });

  /**
   * One attempt: the sink's send, given up when its signal aborts (the attempt's timeout, or close)
   * even if the sink ignores the signal. Why enforced here: a sink of the caller's own that never
   * settles would otherwise hold the queue (every later alert, every sink) and close() forever.
   */
  function attempt(sink: AlertSink, alert: Alert): Promise<void> {
    const signal = AbortSignal.any([stop.signal, AbortSignal.timeout(timeoutMs)]);
    const sent = Promise.resolve().then(() => sink.send(alert, signal));
    let onAbort: (() => void) | undefined;
    const aborted = new Promise<never>((_, reject) => {
      // A sink that honours its signal fails on its own a moment later, with its own (more telling)
      // error: it is given ABORT_GRACE_MS for that before the attempt is failed for it.
      onAbort = () => {
        setTimeout(() => reject(new GaveUp()), ABORT_GRACE_MS).unref();
      };
      if (signal.aborted) onAbort();
      else signal.addEventListener("abort", onAbort, { once: true });
    });
    // A send given up on may still settle later: its outcome is no longer anyone's.
    sent.catch(() => {});
    return Promise.race([sent, aborted]).finally(() => {
      if (onAbort) signal.removeEventListener("abort", onAbort);
    });
  }

  async function deliver(sink: AlertSink, alert: Alert): Promise<void> {
    for (let n = 1; n <= attempts; n++) {
      try {
        await attempt(sink, alert);
        return;
      } catch (e) {
        // Given up on while the sink still runs: not tried again, since that send may yet deliver
        // (a second attempt would then send the alert twice).
        if (n === attempts || stop.signal.aborted || e instanceof GaveUp) {
          failed++;
          options.logger.error(
            { sink: sink.name, kind: alert.kind, scope: alert.scope, err: deliveryErrorText(e) },
            "alert could not be delivered",
          );
          return;
        }
        await sleep(backoffMs * 2 ** (n - 1));
      }
    }
  }

  async function work(): Promise<void> {
    while (queue.length > 0 && !stop.signal.aborted) {
      const alert = queue.shift() as Alert;
      await Promise.all(options.sinks.map((s) => deliver(s, alert)));
    }
    working = undefined;
  }

  return {
    dispatch(alert) {
      if (closed) return;
      if (queue.length >= maxQueue) {
        const old = queue.shift();
        dropped++;
        options.logger.error(
          { kind: old?.kind, scope: old?.scope },
          "alert queue full; oldest alert dropped",
        );
      }
      queue.push(alert);
      working ??= work();
    },
    async drain() {
      while (working) await working;
    },
    get dropped() {
      return dropped;
    },
    get failed() {
      return failed;
    },
    async close() {
      closed = true;
      stop.abort();
      await working;
      if (queue.length > 0) {
        // Never silent: what close() leaves undelivered is counted and said.
        dropped += queue.length;
        options.logger.error(
          { alerts: queue.length, kinds: [...new Set(queue.map((a) => a.kind))] },
          "alerts not delivered before close",
        );
        queue.length = 0;
      }
    },
  };
}

/** Longest error text logged for a failed delivery. */
const MAX_ERROR_TEXT = 300;

/** Anything shaped like an absolute URL (`scheme://…`), up to whitespace or a quote. */
const URL_LIKE = /\b[a-z][a-z0-9+.-]*:\/\/[^\s"'<>`]*/gi;

/**
 * `text` with every URL in it cut down to its origin (`https://host:port`). Why: a sink's URL may
 * carry credentials (`user:pass@`) or a token in its path or query, and error messages (Node's
 * `fetch` among them) quote the URL whole; the log must never hold a secret (SPEC §6).
 */
export function redactUrls(text: string): string {
  return text.replace(URL_LIKE, (match) => {
    try {
      const url = new URL(match);
      // `origin` is "null" for schemes without one; the host alone is still safe to show.
      return url.origin !== "null" ? url.origin : `${url.protocol}//${url.host}`;
    } catch {
      return "[url]";
    }
  });
}

/**
 * What is logged about a failed delivery: the error's message and its cause's code or message,
 * URLs redacted to their origin, bounded in length. Never the error object itself (its fields
 * could hold the request, headers included).
 */
export function deliveryErrorText(e: unknown): string {
  const message = e instanceof Error ? e.message : String(e);
  const cause = e instanceof Error ? (e as { cause?: unknown }).cause : undefined;
  let detail = "";
  if (cause instanceof Error) {
    const code = (cause as { code?: unknown }).code;
    detail = typeof code === "string" ? code : cause.message;
  }
  const text = detail ? `${redactUrls(message)} (${redactUrls(detail)})` : redactUrls(message);
  return text.length > MAX_ERROR_TEXT ? `${text.slice(0, MAX_ERROR_TEXT)}…` : text;
}
