// Test fixtures: usage log records as the engine writes them (docs/usage-log.md), for the simulate
// tests. A plain allowed "chat" request of user alice (10 input tokens, 600 output allowed); `over`
// replaces fields.

/** A decision record (`time` is clamped to the Date range, so out-of-range `time_ms` can be tested). */
export function loggedDecision(
  id: string,
  timeMs: number,
  over: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    v: 1,
    type: "decision",
    time: new Date(Math.min(timeMs, 8.64e15)).toISOString(),
    time_ms: timeMs,
    id,
    feature: "chat",
    user: "alice",
    tier: "free",
    model: "gpt-4o",
    decision: "allow",
    code: null,
    store: "ok",
    messages: 1,
    input_tokens_before: 10,
    input_tokens: 10,
    max_input: 1000,
    trimmed_messages: 0,
    truncated_messages: 0,
    summarized: false,
    max_output: 600,
    n: 1,
    reserved_tokens: 610,
    ...over,
  };
}

/** The settlement record of {@link loggedDecision}'s request (590 output tokens). */
export function loggedSettlement(
  id: string,
  timeMs: number,
  inputTokens = 10,
  over: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    v: 1,
    type: "settle",
    time: new Date(timeMs).toISOString(),
    time_ms: timeMs,
    id,
    feature: "chat",
    user: "alice",
    tier: "free",
    model: "gpt-4o",
    status: "settled",
    usage_source: "provider",
    input_tokens: inputTokens,
    output_tokens: 590,
    cached_input_tokens: 0,
    reasoning_tokens: 0,
    charged_tokens: 600,
    cost_nano_usd: 5925000,
    ...over,
  };
}
