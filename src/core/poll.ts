/**
 * Calls `read` every `everyMs` (0: never) in the background, never two at once: a slow store
 * (command timeout longer than the interval) must not pile up reads. The timer does not keep the
 * process alive. Returns the stop function. `read` must not reject (callers log their failures).
 */
export function pollEvery(everyMs: number, read: () => Promise<void>): () => void {
  if (everyMs <= 0) return () => {};
  let polling = false;
  const timer = setInterval(() => {
    if (polling) return;
    polling = true;
    void read().finally(() => {
      polling = false;
    });
  }, everyMs);
  timer.unref();
  return () => clearInterval(timer);
}
