/**
 * A fixed "now" for tests whose engines write Redis counters: ten minutes ahead of the real clock.
 *
 * Why fixed: the windows a request is charged to (minute, hour, day) cannot roll over while the test
 * runs, however slow the machine, so the keys a test computes afterwards are the ones written.
 * Why ahead: Redis expires counters by its own clock (the engine sends absolute PEXPIREAT instants
 * computed from its clock), so a minute counter written at this instant lives at least ten minutes of
 * real time — longer than any bounded test — instead of the 60–120 s it would get at the real "now".
 * Every test is bounded far below ten minutes (vitest's timeouts), so nothing here can expire early.
 */
export function fixedTestNow(aheadMs = 10 * 60_000): number {
  return Date.now() + aheadMs;
}
