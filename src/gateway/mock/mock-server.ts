/**
 * Serves the mock upstream over node:http on 127.0.0.1: `POST /v1/chat/completions` and
 * `GET /v1/models`. SSE chunks are written as they are produced, with backpressure; a client that
 * goes away aborts the generation; `reset-mid-stream` resets the TCP connection. Used by gateway
 * tests and benchmarks as a real HTTP upstream on loopback.
 */

import { once } from "node:events";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { setTimeout as delay } from "node:timers/promises";
import { readBodyUpTo } from "../read-body.js";
import {
  invalidRequestResponse,
  isStreamResponse,
  jsonResponse,
  type MockBodyResponse,
  type MockResponse,
  MockStreamResetError,
  openAIErrorResponse,
} from "./mock-response.js";
import { createMockUpstream, type MockUpstream, type MockUpstreamOptions } from "./mock-upstream.js";

/** Options of {@link startMockServer}. */
export interface MockServerOptions extends MockUpstreamOptions {
  /** Port on 127.0.0.1; default 0 (a free port). */
  port?: number;
  /** Largest request body accepted, in bytes (larger: 413); default 10 MiB. */
  maxBodyBytes?: number;
}

/** A running mock server. */
export interface MockServer {
  /** Origin, e.g. `http://127.0.0.1:41234` (no path). */
  url: string;
  /** What an OpenAI client or upstream config takes as base URL: `${url}/v1`. */
  baseUrl: string;
  port: number;
  /** The upstream it serves (its ledger is the server's). */
  upstream: MockUpstream;
  /** Aborts requests in flight, drops every connection and stops listening. */
  close(): Promise<void>;
}

/** Models listed by `GET /v1/models` (the mock answers any model name). */
export const MOCK_MODELS: readonly string[] = ["gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4", "gpt-3.5-turbo"];

const DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024;

/** A fixed date, so that the model list is deterministic too. */
const MODEL_CREATED = 1_715_367_049;

const MODELS_BODY = JSON.stringify({
  object: "list",
  data: MOCK_MODELS.map((id) => ({
    id,
    object: "model",
    created: MODEL_CREATED,
    owned_by: "tokenfuse-mock",
  })),
});

class BodyTooLargeError extends Error {}

/** The request body, or {@link BodyTooLargeError} past `maxBytes` (how: read-body.ts). */
async function readBody(req: IncomingMessage, maxBytes: number): Promise<Buffer> {
  const body = await readBodyUpTo(req, maxBytes);
  if (!body) throw new BodyTooLargeError();
  return body;
}

/**
 * Request headers as the mock takes them. node:http already joins repeated headers with ", " except
 * `set-cookie` (an array), so the object is copied only when such an array is present.
 */
function plainHeaders(req: IncomingMessage): Record<string, string | undefined> {
  const headers = req.headers;
  for (const name in headers) {
    if (Array.isArray(headers[name])) {
      const out: Record<string, string | undefined> = {};
      for (const [key, value] of Object.entries(headers)) {
        out[key] = Array.isArray(value) ? value.join(", ") : value;
      }
      return out;
    }
  }
  return headers as Record<string, string | undefined>;
}

/** One `end` with a content-length: headers and body leave in a single write, never chunked. */
function sendBody(res: ServerResponse, response: MockBodyResponse): void {
  res.writeHead(response.status, {
    ...response.headers,
    "content-length": Buffer.byteLength(response.body),
  });
  res.end(response.body);
}

/** Longest wait for written bytes to leave before a reset; a client that stops reading gets the reset anyway. */
const RESET_FLUSH_MS = 1_000;

/** Pause before the reset, and between checks that the written bytes have left. */
const RESET_GRACE_MS = 10;

/**
 * Resets the connection (TCP RST, not a clean close: the client sees ECONNRESET, as after a proxy
 * crash) once the bytes already written have left. Why wait: node:http corks the socket until the
 * next tick and a reset discards unsent bytes, so the client would miss chunks the ledger counts;
 * and a RST that reaches a client before it has read the queued bytes can surface as a plain EOF
 * (still a broken response, but not a reset), so the client gets a moment to read them.
 */
async function resetAfterFlush(socket: Socket): Promise<void> {
  const deadline = Date.now() + RESET_FLUSH_MS;
  do {
    await delay(RESET_GRACE_MS);
  } while (socket.writableLength > 0 && !socket.destroyed && Date.now() < deadline);
  if (!socket.destroyed) socket.resetAndDestroy();
}

async function sendStream(
  req: IncomingMessage,
  res: ServerResponse,
  response: MockResponse & { stream: AsyncIterable<string> },
  signal: AbortSignal,
): Promise<void> {
  res.writeHead(response.status, response.headers);
  // Headers go out now, as OpenAI's do, not with the first chunk.
  res.flushHeaders();
  try {
    for await (const chunk of response.stream) {
      if (!res.write(chunk)) await once(res, "drain", { signal });
    }
    res.end();
  } catch (error) {
    if (error instanceof MockStreamResetError) {
      await resetAfterFlush(req.socket);
    } else {
      res.destroy();
    }
  }
}

/** Starts a mock server on 127.0.0.1 (a free port unless `port` is given). */
export async function startMockServer(options: MockServerOptions = {}): Promise<MockServer> {
  const upstream = createMockUpstream(options);
  const maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const inFlight = new Set<AbortController>();

  async function chat(req: IncomingMessage, res: ServerResponse, signal: AbortSignal): Promise<void> {
    let raw: Buffer;
    try {
      raw = await readBody(req, maxBodyBytes);
    } catch (error) {
      if (error instanceof BodyTooLargeError) {
        sendBody(
          res,
          openAIErrorResponse(413, {
            message: `Request body larger than ${maxBodyBytes} bytes.`,
            type: "invalid_request_error",
            param: null,
            code: "request_too_large",
          }),
        );
      } else {
        res.destroy();
      }
      return;
    }
    let body: unknown;
    try {
      body = JSON.parse(raw.toString("utf8"));
    } catch {
      sendBody(
        res,
        invalidRequestResponse(
          "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly.)",
          null,
        ),
      );
      return;
    }
    let response: MockResponse;
    try {
      response = await upstream.handle({ body, headers: plainHeaders(req), signal });
    } catch {
      // Aborted (client gone, server closing): there is nobody to answer.
      res.destroy();
      return;
    }
    if (isStreamResponse(response)) await sendStream(req, res, response, signal);
    else sendBody(res, response);
  }

  const server = createServer({ noDelay: true }, (req, res) => {
    const controller = new AbortController();
    inFlight.add(controller);
    res.once("close", () => {
      inFlight.delete(controller);
      // Why: a response closed before it finished means the client went away; stop generating.
      if (!res.writableFinished) controller.abort(new Error("mock server: client disconnected"));
    });
    const url = req.url ?? "/";
    const query = url.indexOf("?");
    const path = query === -1 ? url : url.slice(0, query);
    if (req.method === "POST" && path === "/v1/chat/completions") {
      chat(req, res, controller.signal).catch(() => res.destroy());
    } else if (req.method === "GET" && path === "/v1/models") {
      sendBody(res, jsonResponse(200, MODELS_BODY));
    } else {
      req.resume();
      sendBody(
        res,
        openAIErrorResponse(404, {
          message: `Invalid URL (${req.method ?? "?"} ${path})`,
          type: "invalid_request_error",
          param: null,
          code: null,
        }),
      );
    }
  });

  server.listen(options.port ?? 0, "127.0.0.1");
  await once(server, "listening");
  const port = (server.address() as AddressInfo).port;
  const url = `http://127.0.0.1:${port}`;

  return {
    url,
    baseUrl: `${url}/v1`,
    port,
    upstream,
    async close() {
      for (const controller of inFlight) controller.abort(new Error("mock server: closing"));
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
    },
  };
}
