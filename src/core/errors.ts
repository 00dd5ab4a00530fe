/**
 * The one table of error codes (SPEC §5) with their HTTP status. Only the gateway's error module turns
 * these into HTTP responses; the library throws {@link TokenBudgetError}.
 */
export const ERROR_CODES = {
  input_budget_exceeded: { status: 400, type: "invalid_request_error" },
  user_budget_exceeded: { status: 429, type: "rate_limit_error" },
  feature_budget_exceeded: { status: 429, type: "rate_limit_error" },
  global_rate_limited: { status: 429, type: "rate_limit_error" },
  feature_disabled: { status: 503, type: "service_unavailable_error" },
  unknown_feature: { status: 400, type: "invalid_request_error" },
  invalid_request: { status: 400, type: "invalid_request_error" },
  unauthorized: { status: 401, type: "authentication_error" },
  price_unknown: { status: 400, type: "invalid_request_error" },
  budget_store_unavailable: { status: 503, type: "service_unavailable_error" },
  upstream_error: { status: 502, type: "upstream_error" },
} as const;

/** A SPEC §5 error code. */
export type ErrorCode = keyof typeof ERROR_CODES;

/** The budget scope an error is about. */
export type ErrorScope = "request" | "user" | "feature" | "global" | "store" | "upstream";

/** Fields of a {@link TokenBudgetError}. */
export interface TokenBudgetErrorInit {
  code: ErrorCode;
  message: string;
  scope?: ErrorScope;
  /** The limit that would be exceeded (tokens). */
  limit?: number;
  /** What the request asked for (tokens). */
  requested?: number;
  /** Milliseconds until the scope's window resets (429s). */
  retryAfterMs?: number;
  /** The HTTP status, when it differs from the code's default (413, 504). */
  status?: number;
  /** The request field the error is about (the OpenAI envelope's `param`), when there is one. */
  param?: string | undefined;
}

/**
 * The error every refusal is reported with (SPEC §5). Expected denials travel as values inside the
 * engine and become this error at the library boundary.
 */
export class TokenBudgetError extends Error {
  override readonly name = "TokenBudgetError";
  readonly code: ErrorCode;
  readonly scope: ErrorScope | undefined;
  readonly limit: number | undefined;
  readonly requested: number | undefined;
  readonly retryAfterMs: number | undefined;
  readonly status: number;
  readonly param: string | undefined;

  constructor(init: TokenBudgetErrorInit) {
    super(init.message);
    this.code = init.code;
    this.scope = init.scope;
    this.limit = init.limit;
    this.requested = init.requested;
    this.retryAfterMs = init.retryAfterMs;
    this.status = init.status ?? ERROR_CODES[init.code].status;
    this.param = init.param;
  }

  /** SPEC §5 spells the field `retry_after_ms`; the same value as {@link retryAfterMs}. */
  get retry_after_ms(): number | undefined {
    return this.retryAfterMs;
  }

  /** A plain object for logs and JSON bodies (no stack). */
  toJSON(): Record<string, unknown> {
    return {
      code: this.code,
      message: this.message,
      scope: this.scope,
      limit: this.limit,
      requested: this.requested,
      retryAfterMs: this.retryAfterMs,
    };
  }
}

/** True when `e` is a {@link TokenBudgetError} (also across module copies). */
export function isTokenBudgetError(e: unknown): e is TokenBudgetError {
  return (
    e instanceof TokenBudgetError || (e instanceof Error && e.name === "TokenBudgetError" && "code" in e)
  );
}
