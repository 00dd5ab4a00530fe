/**
 * What the mock upstream answers, independent of any transport: a status, headers, and either a
 * whole body or the wire chunks of a body sent incrementally (SSE, or a body cut by a fault).
 */

/** A response whose body is complete (JSON: completions, errors). */
export interface MockBodyResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/**
 * A response whose body is sent as it is produced, each string exactly as it goes on the wire.
 * The iterator throws {@link MockStreamResetError} for the `reset-mid-stream` fault (the transport
 * resets the connection) and the request signal's reason when the request was aborted.
 */
export interface MockStreamResponse {
  status: number;
  headers: Record<string, string>;
  stream: AsyncIterable<string>;
}

/** A mock upstream response. */
export type MockResponse = MockBodyResponse | MockStreamResponse;

/** The body of an OpenAI error: `{"error":{"message","type","param","code"}}`. */
export interface OpenAIErrorFields {
  message: string;
  type: string;
  param: string | null;
  code: string | null;
}

/**
 * Thrown by a mock stream for the `reset-mid-stream` fault: the transport must drop the connection
 * abruptly (TCP reset) rather than end the response.
 */
export class MockStreamResetError extends Error {
  override readonly name = "MockStreamResetError";

  constructor() {
    super("mock upstream: connection reset mid-stream (x-mock-fault: reset-mid-stream)");
  }
}

/** True when `response` is sent incrementally. */
export function isStreamResponse(response: MockResponse): response is MockStreamResponse {
  return "stream" in response;
}

/** A complete JSON response. */
export function jsonResponse(
  status: number,
  body: string,
  headers: Record<string, string> = {},
): MockBodyResponse {
  return { status, headers: { "content-type": "application/json", ...headers }, body };
}

/** An OpenAI error response with the error envelope (field order as OpenAI sends it). */
export function openAIErrorResponse(
  status: number,
  error: OpenAIErrorFields,
  headers: Record<string, string> = {},
): MockBodyResponse {
  const body = JSON.stringify({
    error: { message: error.message, type: error.type, param: error.param, code: error.code },
  });
  return jsonResponse(status, body, headers);
}

/** A 400 `invalid_request_error`, as OpenAI answers a malformed request. */
export function invalidRequestResponse(
  message: string,
  param: string | null,
  code: string | null = null,
): MockBodyResponse {
  return openAIErrorResponse(400, { message, type: "invalid_request_error", param, code });
}
