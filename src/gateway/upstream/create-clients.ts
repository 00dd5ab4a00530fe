import type { ResolvedConfig, UpstreamConfig } from "../../config/types.js";
import { createMockUpstream } from "../mock/mock-upstream.js";
import { createOpenAIClient } from "./openai-client.js";
import { collectText, type UpstreamClient, type UpstreamResponse } from "./types.js";

async function* once(s: string): AsyncIterable<string> {
  yield s;
}

/** The built-in mock, called in-process (no network hop): deterministic answers with exact usage. */
function createMockClient(u: Extract<UpstreamConfig, { type: "mock" }>): UpstreamClient {
  const mock = createMockUpstream({
    completionTokens: u.completionTokens,
    latencyMs: u.latencyMs,
    chunkTokens: u.chunkTokens,
  });
  return {
    name: u.name,
    type: "mock",
    timeoutMs: u.timeoutMs,
    async send({ body, cancel, headers }): Promise<UpstreamResponse> {
      const r = await mock.handle({ body, headers: headers ?? {}, signal: cancel.signal });
      if ("stream" in r) {
        const stream = r.stream;
        return { status: r.status, headers: r.headers, body: stream, text: () => collectText(stream) };
      }
      const whole = r.body;
      return { status: r.status, headers: r.headers, body: once(whole), text: async () => whole };
    },
    async close() {},
  };
}

/** One client per configured upstream, by name. */
export function createUpstreamClients(config: ResolvedConfig): Map<string, UpstreamClient> {
  const out = new Map<string, UpstreamClient>();
  for (const u of config.upstreams) {
    if (u.type === "mock") out.set(u.name, createMockClient(u));
    else if (u.type === "openai")
      out.set(
        u.name,
        createOpenAIClient({ name: u.name, baseUrl: u.baseUrl, apiKey: u.apiKey, timeoutMs: u.timeoutMs }),
      );
    else throw new Error(`upstream "${u.name}": type ${u.type} is not supported by the gateway yet`);
  }
  return out;
}
