import { Pool } from "undici";
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

function flatHeaders(h: Record<string, string | string[] | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(h)) {
    if (v !== undefined) out[k.toLowerCase()] = Array.isArray(v) ? v.join(", ") : v;
  }
  return out;
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
    async send({ body, cancel, headers }): Promise<UpstreamResponse> {
      const res = await pool.request({
        path,
        method: "POST",
        headers: headers ? { ...headers, ...baseHeaders } : baseHeaders,
        body: JSON.stringify(body),
        signal: cancel,
      });
      const out = res.body;
      let flat: Record<string, string> | undefined;
      return {
        status: res.statusCode,
        // Gathered only when read: the gateway reads one header of most answers.
        get headers() {
          flat ??= flatHeaders(res.headers);
          return flat;
        },
        body: out,
        text: () => out.text(),
      };
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
