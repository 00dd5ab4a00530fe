import type { ServerResponse } from "node:http";
import { ERROR_CODES, type ErrorCode, TokenBudgetError } from "../core/errors.js";

/** The OpenAI error envelope (SPEC §5). */
export interface ErrorEnvelope {
  error: { message: string; type: string; code: ErrorCode; param: string | null };
}

/** Builds the OpenAI error envelope for a {@link TokenBudgetError}. */
export function errorEnvelope(e: TokenBudgetError, param: string | null = e.param ?? null): ErrorEnvelope {
  return { error: { message: e.message, type: ERROR_CODES[e.code].type, code: e.code, param } };
}

/** A gateway error with no budget meaning (bad JSON, auth, upstream); `param` names the field at fault. */
export function gatewayError(
  code: ErrorCode,
  message: string,
  status?: number,
  param?: string | null,
): TokenBudgetError {
  return new TokenBudgetError({
    code,
    message,
    ...(status !== undefined ? { status } : {}),
    ...(param ? { param } : {}),
  });
}

/**
 * The longest wait after which a client's own retry can still help. Longer (a daily budget, the
 * hour's cost cap) and refusals that no wait clears (a kill switch) say `x-should-retry: false`.
 * Why: the official `openai` client retries a 429 or 503 by itself (twice by default), sleeping as
 * long as `Retry-After` says, unbounded: a user out of daily budget made its call hang until
 * midnight instead of failing. It obeys `x-should-retry` (as OpenAI's API sends it); the AI SDK
 * already ignores a `Retry-After` above 60 s.
 */
export const CLIENT_RETRY_MAX_MS = 60_000;

/** Errors a client's own retry cannot fix (marked where they are made): `x-should-retry: false`. */
const NOT_RETRYABLE = new WeakSet<object>();

/**
 * Marks an error as one a client must not retry by itself: the upstream timed out (the gateway has
 * already waited its whole timeout; a retry waits as long again), or refused the gateway's own
 * credentials (a config fault).
 */
export function notRetryable<E extends object>(e: E): E {
  NOT_RETRYABLE.add(e);
  return e;
}

/**
 * The one place that turns an error into an HTTP response: the OpenAI envelope, the status from
 * the code table, and `Retry-After` (whole seconds, rounded up) on refusals that carry a reset time,
 * with `x-should-retry: false` when a client's own retry cannot succeed (CLIENT_RETRY_MAX_MS).
 * Anything that is not a TokenBudgetError is an internal fault: 500 with a fixed message, so no
 * internal detail (or secret) reaches the client.
 */
export function sendError(res: ServerResponse, e: unknown, extraHeaders: Record<string, string> = {}): void {
  const err =
    e instanceof TokenBudgetError
      ? e
      : new TokenBudgetError({
          code: "upstream_error",
          message: "internal error in the gateway",
          status: 500,
        });
  const body = JSON.stringify(errorEnvelope(err));
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const headers: Record<string, string | number> = {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(body),
    ...extraHeaders,
  };
  if (err.status === 429 || err.status === 503) {
    if (err.retryAfterMs !== undefined) {
      headers["retry-after"] = String(Math.max(1, Math.ceil(err.retryAfterMs / 1000)));
    }
    if (
      err.code === "feature_disabled" ||
      (err.retryAfterMs ?? 0) > CLIENT_RETRY_MAX_MS ||
      // A budget refusal with no wait at all: the request alone exceeds the limit.
      (err.status === 429 && err.retryAfterMs === undefined)
    ) {
      headers["x-should-retry"] = "false";
    }
  }
  if (NOT_RETRYABLE.has(err)) headers["x-should-retry"] = "false";
  res.writeHead(err.status, headers);
  res.end(body);
}

/** Sends a JSON body. */
export function sendJson(
  res: ServerResponse,
  status: number,
  value: unknown,
  headers: Record<string, string> = {},
): void {
  const body = JSON.stringify(value);
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(body),
    ...headers,
  });
  res.end(body);
}
