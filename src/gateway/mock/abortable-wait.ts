/**
 * Waits that end early when a signal aborts, rejecting with the signal's reason (as `fetch` does),
 * so that an aborted mock request stops at once instead of finishing its delay.
 */

/** Sleeps `ms` milliseconds, or rejects with `signal.reason` as soon as `signal` aborts. */
export function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.reject(signal.reason);
  if (ms <= 0) return Promise.resolve();
  return new Promise<void>((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * Never resolves; rejects with `signal.reason` when `signal` aborts. Holds no timer, so a stall
 * nobody aborts does not keep the process alive.
 */
export function waitForAbort(signal: AbortSignal): Promise<never> {
  return new Promise<never>((_, reject) => {
    if (signal.aborted) reject(signal.reason);
    else signal.addEventListener("abort", () => reject(signal.reason), { once: true });
  });
}
