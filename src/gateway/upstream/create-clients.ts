import { ConfigError } from "../../config/config-error.js";
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
      if (!cancel.aborted) cancel.sent = true; // in-process: handed over at once
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

/** Upstream types the gateway can proxy to. */
const GATEWAY_UPSTREAM_TYPES: ReadonlySet<string> = new Set(["openai", "mock"]);

/**
 * What the gateway would refuse at start in the upstreams (`tokenfuse check` says it too): a type it
 * cannot proxy to yet. Throws a ConfigError naming the upstream.
 */
export function checkGatewayUpstreams(config: ResolvedConfig): void {
  const bad = config.upstreams.filter((u) => !GATEWAY_UPSTREAM_TYPES.has(u.type));
  if (bad.length > 0)
    throw new ConfigError(
      bad.map((u) => ({
        path: `upstreams.${u.name}.type`,
        message: `type ${u.type} is not supported by the gateway yet (it proxies openai-compatible and mock upstreams)`,
      })),
    );
}

/** One client per configured upstream, by name. */
export function createUpstreamClients(config: ResolvedConfig): Map<string, UpstreamClient> {
  checkGatewayUpstreams(config);
  const out = new Map<string, UpstreamClient>();
  for (const u of config.upstreams) {
    if (u.type === "mock") out.set(u.name, createMockClient(u));
    else if (u.type === "openai")
      out.set(
        u.name,
        createOpenAIClient({ name: u.name, baseUrl: u.baseUrl, apiKey: u.apiKey, timeoutMs: u.timeoutMs }),
      );
    else throw new Error(`upstream "${u.name}": type ${u.type} is not supported by the gateway yet`); // unreachable: checked above
  }
  return out;
}
