/**
 * The built-in `mock` upstream (SPEC §6): a deterministic OpenAI chat-completions responder with
 * exact usage, configurable output length, latency and chunking, test faults chosen per request by
 * header, and a ledger of what it really produced. It knows no transport: mock-server.ts serves it
 * over HTTP, and a gateway can call `handle()` in process.
 */

import { DEFAULT_MOCK } from "../../config/defaults.js";
import { type Clock, systemClock } from "../../core/types.js";
import { tokenizerForModel } from "../../tokenizers/index.js";
import { abortableSleep, waitForAbort } from "./abortable-wait.js";
import {
  createMockLedger,
  DEFAULT_LEDGER_MAX_RECORDS,
  type MockLedger,
  type MockRequestStatus,
} from "./mock-ledger.js";
import {
  type MockChatRequest,
  type MockDirectives,
  parseMockChatRequest,
  parseMockDirectives,
} from "./mock-request.js";
import {
  invalidRequestResponse,
  jsonResponse,
  type MockResponse,
  openAIErrorResponse,
} from "./mock-response.js";
import { contentChunkCount, cutBodyStream, type MidStreamFault, mockSseStream } from "./mock-stream.js";
import { mockCompletionText } from "./mock-text.js";
import {
  type CompletionIdentity,
  completionBody,
  createChunkWriter,
  type MockChoice,
  type MockFinishReason,
  mockUsage,
} from "./mock-wire.js";

/** Options of {@link createMockUpstream}; a resolved `mock` UpstreamConfig can be passed as is. */
export interface MockUpstreamOptions {
  /** Completion tokens per choice (before the request's cap); default 50. */
  completionTokens?: number;
  /** Delay before the first byte of every answer, in milliseconds; default 0. */
  latencyMs?: number;
  /** Tokens per SSE content chunk; default 5. */
  chunkTokens?: number;
  /** Delay between consecutive SSE chunks, in milliseconds (load tests); default 0. */
  chunkDelayMs?: number;
  /** Source of `created`; default the system clock. */
  clock?: Clock;
  /** How delays are waited (tests inject a fake); must reject with `signal.reason` on abort. */
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
  /** `system_fingerprint` of every response; default "fp_mock". */
  systemFingerprint?: string;
  /** Per-request records the ledger keeps (totals cover all requests); default 100 000. */
  ledgerMaxRecords?: number;
}

/** A request as a transport hands it to the mock. */
export interface MockRequest {
  /** The parsed JSON body. */
  body: unknown;
  /** Request headers, names in lower case. */
  headers: Record<string, string | undefined>;
  /** Aborts the request (client gone, timeout): generation stops and the ledger keeps what was sent. */
  signal: AbortSignal;
}

/** The mock upstream. */
export interface MockUpstream {
  /**
   * Answers one chat-completions request. Rejects with `signal.reason` when the signal aborts
   * before the response is ready (latency, `stall`); after that, the response's stream does.
   */
  handle(request: MockRequest): Promise<MockResponse>;
  /** Totals and per-request records of the tokens produced since the last reset. */
  ledger(): MockLedger;
  /** Starts a fresh ledger (requests in flight keep updating the old one). */
  resetLedger(): void;
}

/**
 * Validates a count option. Why at creation: a config with `chunkTokens: 0` would otherwise make every
 * stream loop forever, and a fractional count would make usage disagree with the text.
 */
function checkCount(name: string, value: number, min: number): number {
  if (!Number.isSafeInteger(value) || value < min) {
    throw new RangeError(`mock upstream: ${name} must be an integer >= ${min}, got ${value}`);
  }
  return value;
}

/** Creates a mock upstream. */
export function createMockUpstream(options: MockUpstreamOptions = {}): MockUpstream {
  const completionTokens = checkCount(
    "completionTokens",
    options.completionTokens ?? DEFAULT_MOCK.completion_tokens,
    0,
  );
  const latencyMs = checkCount("latencyMs", options.latencyMs ?? DEFAULT_MOCK.latency_ms, 0);
  const chunkTokens = checkCount("chunkTokens", options.chunkTokens ?? DEFAULT_MOCK.chunk_tokens, 1);
  const chunkDelayMs = checkCount("chunkDelayMs", options.chunkDelayMs ?? 0, 0);
  const clock = options.clock ?? systemClock;
  const sleep = options.sleep ?? abortableSleep;
  const systemFingerprint = options.systemFingerprint ?? "fp_mock";
  const ledger = createMockLedger(
    checkCount("ledgerMaxRecords", options.ledgerMaxRecords ?? DEFAULT_LEDGER_MAX_RECORDS, 0),
  );
  let counter = 0;

  async function handle({ body, headers, signal }: MockRequest): Promise<MockResponse> {
    signal.throwIfAborted();
    const directives = parseMockDirectives(headers, completionTokens);
    if (!directives.ok) return directives.response;
    const parsed = parseMockChatRequest(body);
    if (!parsed.ok) return parsed.response;
    const req = parsed.value;
    const { fault } = directives.value;

    let promptTokens: number;
    try {
      promptTokens = tokenizerForModel(req.model).countChat(req.messages, req.tools);
    } catch {
      // The minimal validation let through a shape the tokenizer cannot read: still the caller's fault.
      return invalidRequestResponse(
        "Invalid 'messages' or 'tools': content the mock cannot count.",
        "messages",
      );
    }

    counter++;
    const identity: CompletionIdentity = {
      id: `chatcmpl-mock-${counter}`,
      created: Math.floor(clock.nowMs() / 1000),
      model: req.model,
      systemFingerprint,
    };
    const idHeader = { "x-request-id": identity.id };
    const line = (promptTokens: number) => ({
      id: identity.id,
      model: req.model,
      stream: req.stream,
      n: req.n,
      fault,
      promptTokens,
    });

    if (fault === "500" || fault === "429") {
      // Refused before any work: nothing was produced, so the ledger line carries no tokens.
      ledger.open(line(0)).close("error");
      await sleep(latencyMs, signal);
      return fault === "500"
        ? openAIErrorResponse(
            500,
            {
              message:
                "The server had an error while processing your request. Sorry about that! (mock fault)",
              type: "server_error",
              param: null,
              code: null,
            },
            idHeader,
          )
        : openAIErrorResponse(
            429,
            {
              message: "Rate limit reached for requests (mock fault). Please try again in 1s.",
              type: "requests",
              param: null,
              code: "rate_limit_exceeded",
            },
            { ...idHeader, "retry-after": "1", "retry-after-ms": "1000" },
          );
    }

    const entry = ledger.open(line(promptTokens));
    const onAbort = () => entry.close("aborted");
    signal.addEventListener("abort", onAbort, { once: true });
    const finish = (status: Exclude<MockRequestStatus, "open" | "error">) => {
      signal.removeEventListener("abort", onAbort);
      entry.close(status);
    };

    // Why no try/finally here: a rejection below comes from the signal, whose listener has already
    // closed the ledger line as aborted.
    await sleep(latencyMs, signal);
    if (fault === "stall") await waitForAbort(signal);

    const { tokens, finishReason } = outputLength(req, directives.value);
    const midFault: MidStreamFault | undefined =
      fault === "reset-mid-stream" || fault === "stall-mid-stream" ? fault : undefined;
    const usage = fault === "no-usage" ? undefined : mockUsage(promptTokens, tokens * req.n);

    if (!req.stream) {
      const choices: MockChoice[] = [];
      for (let i = 0; i < req.n; i++) choices.push({ content: mockCompletionText(tokens, i), finishReason });
      // A non-streamed answer is generated whole before its first byte, even if the body is then cut.
      entry.addCompletion(tokens * req.n);
      // The text is a function of (tokens, choice index) only: that, n and the finish reason name the choices.
      const body = completionBody(identity, choices, usage, `${tokens}/${req.n}/${finishReason}`);
      if (!midFault) {
        finish("completed");
        return jsonResponse(200, body, idHeader);
      }
      return {
        status: 200,
        headers: { "content-type": "application/json", ...idHeader },
        stream: cutBodyStream(body, midFault, { signal, finish }),
      };
    }

    const perChoice = contentChunkCount(tokens, chunkTokens);
    const stream = mockSseStream(
      {
        writer: createChunkWriter(identity, req.includeUsage),
        choices: req.n,
        tokensPerChoice: tokens,
        finishReason,
        chunkTokens,
        usage: req.includeUsage ? usage : undefined,
        fault: midFault,
        faultAfterChunks: directives.value.faultAfterChunks ?? Math.ceil((perChoice * req.n) / 2),
      },
      { entry, signal, chunkDelayMs, sleep, finish },
    );
    return {
      status: 200,
      headers: {
        "content-type": "text/event-stream; charset=utf-8",
        "cache-control": "no-cache",
        ...idHeader,
      },
      stream,
    };
  }

  return {
    handle,
    ledger: () => ledger.snapshot(),
    resetLedger: () => ledger.reset(),
  };
}

/** Tokens per choice and the finish reason: the mock's length, cut to the request's output cap. */
function outputLength(
  req: MockChatRequest,
  directives: MockDirectives,
): { tokens: number; finishReason: MockFinishReason } {
  const wanted = directives.completionTokens;
  if (req.outputCap !== undefined && wanted > req.outputCap) {
    return { tokens: req.outputCap, finishReason: "length" };
  }
  return { tokens: wanted, finishReason: "stop" };
}
