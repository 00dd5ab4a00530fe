import { Pool } from "undici";
import { DispatchCall } from "./dispatch-response.js";
import type { UpstreamClient, UpstreamResponse } from "./types.js";

/** Options of {@link createOpenAIClient}. */
export interface OpenAIClientOptions {
  name: string;
  /** e.g. https://api.openai.com/v1 (no trailing slash). */
  baseUrl: string;
  apiKey?: string | undefined;
  timeoutMs: number;
  /** Keep-alive connections per upstream origin. */
  connections?: number;
}

/**
 * An OpenAI-compatible upstream over undici's connection pool. The URL and key come only from the
 * config (SPEC §6: client-sent upstream URLs or keys are refused before this point).
 */
export function createOpenAIClient(options: OpenAIClientOptions): UpstreamClient {
  const url = new URL(options.baseUrl);
  const path = `${url.pathname.replace(/\/$/, "")}/chat/completions`;
  const pool = new Pool(url.origin, {
    connections: options.connections ?? 256,
    pipelining: 1,
    keepAliveTimeout: 30_000,
    headersTimeout: options.timeoutMs,
    bodyTimeout: options.timeoutMs,
  });
  const baseHeaders: Record<string, string> = {
    "content-type": "application/json",
    accept: "application/json, text/event-stream",
  };
  if (options.apiKey) baseHeaders.authorization = `Bearer ${options.apiKey}`;
  return {
    name: options.name,
    type: "openai",
    timeoutMs: options.timeoutMs,
    send({ body, cancel, headers }): Promise<UpstreamResponse> {
      // Already cancelled (the client left during admission): not sent at all. Why here: undici
      // would take a pooled connection for it and destroy that connection when aborting.
      if (cancel.aborted) return Promise.reject(cancel.reason);
      return new Promise<UpstreamResponse>((resolve, reject) => {
        // Answer, chunks and errors reach the gateway through this handler (why not request():
        // dispatch-response.ts).
        const call = new DispatchCall(cancel, { resolve, reject });
        pool.dispatch(
          {
            path,
            method: "POST",
            headers: headers ? { ...headers, ...baseHeaders } : baseHeaders,
            body: JSON.stringify(body),
          },
          call,
        );
      });
    },
    async close() {
      // Graceful first; requests still in flight after a grace period are cut (a stalled upstream
      // must not keep a stopping gateway alive).
      const grace = new Promise<"timeout">((resolve) => setTimeout(() => resolve("timeout"), 2000).unref());
      if ((await Promise.race([pool.close().then(() => "closed" as const), grace])) === "timeout")
        await pool.destroy();
    },
  };
}
