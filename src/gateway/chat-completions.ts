import type { IncomingMessage, ServerResponse } from "node:http";
import type { ResolvedConfig } from "../config/types.js";
import type { Admission, Engine } from "../core/engine.js";
import { TokenBudgetError } from "../core/errors.js";
import type { Logger } from "../core/logger.js";
import { billedDefinitions } from "../core/request.js";
import type { ChatMessage, Clock, OpenAIUsage } from "../core/types.js";
import { chargeableUsage } from "../core/usage.js";
import { tokenizerForModel } from "../tokenizers/index.js";
import type { Authenticator } from "./auth.js";
import { gatewayError, notRetryable, sendError } from "./http-errors.js";
import type { GatewayMetrics } from "./metrics.js";
import { parseJsonObject, readBody } from "./read-body.js";
import { createSseTap, generatedParts } from "./sse-tap.js";
import { UpstreamCancel, type UpstreamClient } from "./upstream/types.js";

/**
 * Body fields that would let a client choose where the request goes or with which credentials.
 * Upstream URLs and keys come only from the config (SPEC §6).
 */
export const FORBIDDEN_FIELDS = [
  "api_base",
  "base_url",
  "baseURL",
  "api_key",
  "apiKey",
  "api_type",
  "api_version",
  "azure_endpoint",
  "azure_deployment",
  "custom_llm_provider",
  "extra_headers",
  "organization",
  "user_api_key",
];

/** Reasoning models take `max_completion_tokens` only. */
const COMPLETION_CAP_ONLY = /^(o\d|gpt-5)/;

/** What the handler needs. */
export interface ChatHandlerDeps {
  config: ResolvedConfig;
  engine: Engine;
  auth: Authenticator;
  upstreams: Map<string, UpstreamClient>;
  metrics: GatewayMetrics;
  logger: Logger;
  bodyLimitBytes: number;
  /** The engine's clock: the x-ratelimit-reset-tokens header is read from the same windows. */
  clock: Clock;
}

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function optionalInt(body: Record<string, unknown>, name: string): number | undefined {
  const v = body[name];
  if (v === undefined || v === null) return undefined;
  return v as number; // validated by the engine (positive integer)
}

/** Formats ms as OpenAI's reset durations ("1s", "6m0s", "17h19m5s"). */
export function resetDuration(ms: number): string {
  const s = Math.max(0, Math.ceil(ms / 1000));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  if (h > 0) return `${h}h${m}m${sec}s`;
  if (m > 0) return `${m}m${sec}s`;
  return `${sec}s`;
}

function tokenfuseHeaders(a: Admission, nowMs: number): Record<string, string> {
  return {
    "x-tokenfuse-input-tokens": String(a.inputTokens),
    "x-tokenfuse-decision": a.decision,
    "x-tokenfuse-trimmed-messages": String(a.trimmedMessages),
    "x-ratelimit-limit-tokens": String(a.userDay.limit),
    "x-ratelimit-remaining-tokens": String(a.userDay.remaining),
    "x-ratelimit-reset-tokens": resetDuration(a.userDay.resetAtMs - nowMs),
  };
}

/** The upstream request body: the caller's, with tokenfuse's messages, model, caps and usage option. */
export function upstreamBody(body: Record<string, unknown>, a: Admission): Record<string, unknown> {
  const out: Record<string, unknown> = { ...body, model: a.model, messages: a.messages };
  const hadMaxTokens = body.max_tokens !== undefined && body.max_tokens !== null;
  const hadCompletionCap = body.max_completion_tokens !== undefined && body.max_completion_tokens !== null;
  if (hadMaxTokens) out.max_tokens = a.maxOutputTokens;
  if (hadCompletionCap) out.max_completion_tokens = a.maxOutputTokens;
  if (!hadMaxTokens && !hadCompletionCap) {
    if (COMPLETION_CAP_ONLY.test(a.model)) out.max_completion_tokens = a.maxOutputTokens;
    else out.max_tokens = a.maxOutputTokens;
  }
  if (body.stream === true) {
    // Usage must come back to settle exactly; the tap removes it again if the client did not ask.
    const so =
      typeof body.stream_options === "object" && body.stream_options !== null ? body.stream_options : {};
    out.stream_options = { ...so, include_usage: true };
  }
  return out;
}

/**
 * Output tokens to charge when the upstream reported no usage: what was generated, counted choice
 * by choice (`generated` holds one text per choice: counted as one string, the choices of `n > 1`
 * would merge into tokens never generated).
 */
function estimateUsage(a: Admission, generated: readonly string[]): OpenAIUsage {
  // Never more than the reservation allowed for output (cap × n): what passed cannot exceed it; and
  // counting stops there, so an upstream that sent megabytes cannot make the estimate slow.
  const allowance = a.reservedTokens - a.inputTokens;
  let out = 0;
  for (const text of generated) {
    if (out >= allowance) break;
    if (text !== "") out += tokenizerForModel(a.model).countTextUpTo(text, allowance - out);
  }
  return { prompt_tokens: a.inputTokens, completion_tokens: Math.min(out, allowance) };
}

/** Headers of the mock upstream a test client may set. */
const MOCK_HEADERS = ["x-mock-completion-tokens", "x-mock-fault", "x-mock-fault-after-chunks"];

/** `POST /v1/chat/completions` */
export async function handleChatCompletions(
  req: IncomingMessage,
  res: ServerResponse,
  deps: ChatHandlerDeps,
): Promise<void> {
  const { engine, auth } = deps;
  let admission: Admission | undefined;
  const cancel = createCancel();
  const onClose = () => {
    if (!res.writableFinished) cancel.clientLeft();
  };
  res.on("close", onClose);
  try {
    const principal = auth.authenticate(header(req, "authorization"), header(req, "x-tokenfuse-user"));
    const body = parseJsonObject(await readBody(req, deps.bodyLimitBytes));
    for (const f of FORBIDDEN_FIELDS) {
      if (f in body)
        throw gatewayError(
          "invalid_request",
          `the field "${f}" is not accepted: upstreams and their keys come from the gateway's config`,
        );
    }
    const named = header(req, "x-tokenfuse-feature");
    // Feature names never hold a comma: one means the header was sent twice (Node joins the
    // values with ", ") or lists several features.
    if (named?.includes(","))
      throw gatewayError(
        "invalid_request",
        "the x-tokenfuse-feature header holds several values (sent more than once?): send one feature",
      );
    const feature = named ?? principal.defaultFeature ?? soleFeature(deps.config);
    if (!feature) throw gatewayError("unknown_feature", "name a feature with the x-tokenfuse-feature header");
    if (principal.features && !principal.features.includes(feature)) {
      throw gatewayError("unknown_feature", `this API key may not use the feature "${feature}"`);
    }
    if (body.stream !== undefined && typeof body.stream !== "boolean")
      throw gatewayError("invalid_request", "stream must be a boolean");
    // Priority processing is billed above the standard prices tokenfuse knows: its cost caps,
    // breaker and alerts would under-count it. Refused rather than forwarded under-priced.
    if (body.service_tier === "priority")
      throw gatewayError(
        "invalid_request",
        'service_tier "priority" is not accepted: tokenfuse prices standard processing only, and its cost caps would under-count priority spend',
      );
    const definitions = billedDefinitions(body);
    if (definitions instanceof TokenBudgetError) throw definitions;
    admission = await engine.admit({
      feature,
      user: principal.user,
      tier: principal.tier,
      messages: body.messages as ChatMessage[],
      // Not a string: the engine refuses it (invalid_request), as it does the messages.
      model: body.model as string | undefined,
      maxTokens: optionalInt(body, "max_tokens"),
      maxCompletionTokens: optionalInt(body, "max_completion_tokens"),
      n: optionalInt(body, "n"),
      // Counted: tools, the legacy functions and a response_format schema (all billed as prompt).
      tools: definitions,
    });
    const upstreamName = deps.config.features[feature]?.upstream ?? deps.config.upstreams[0]?.name ?? "";
    const upstream = deps.upstreams.get(upstreamName);
    if (!upstream) throw new Error(`no upstream client for ${upstreamName}`);
    // The upstream's timeout bounds the whole call, first byte to last.
    cancel.startTimer(upstream.timeoutMs);
    await forward(req, res, body, admission, upstream, cancel, deps);
  } catch (e) {
    // Upstream failed before it answered: nothing was generated, release the whole reservation.
    // (A call the upstream answered was settled already; this second settle is then a no-op.)
    // Applied before the error is written, so a retry that follows it finds the tokens free.
    if (admission) await settled(admission.settle(), deps, admission.id, "release failed");
    sendError(res, e);
  } finally {
    cancel.stopTimer();
    res.off("close", onClose);
  }
}

function soleFeature(config: ResolvedConfig): string | undefined {
  const names = Object.keys(config.features);
  return names.length === 1 ? names[0] : undefined;
}

/** Headers of a provider's 4xx answer passed on to the client with it. */
const PROVIDER_HEADERS = ["retry-after", "retry-after-ms", "x-request-id"] as const;

async function forward(
  req: IncomingMessage,
  res: ServerResponse,
  body: Record<string, unknown>,
  a: Admission,
  upstream: UpstreamClient,
  cancel: Cancel,
  deps: ChatHandlerDeps,
): Promise<void> {
  const { metrics, logger } = deps;
  const started = performance.now();
  // Of the client's headers only the mock's control headers (x-mock-*) are passed on, to whatever
  // upstream (a real provider ignores them); nothing else the client sends reaches a provider.
  let extra: Record<string, string> | undefined;
  for (const h of MOCK_HEADERS) {
    const v = header(req, h);
    if (v !== undefined) {
      extra ??= {};
      extra[h] = v;
    }
  }
  const observe = (status: string) =>
    metrics.upstreamLatency.observe(
      { upstream: upstream.name, status },
      (performance.now() - started) / 1000,
    );
  let upstreamRes: Awaited<ReturnType<UpstreamClient["send"]>>;
  try {
    upstreamRes = await upstream.send({
      body: upstreamBody(body, a),
      cancel: cancel.upstream,
      headers: extra,
    });
  } catch (e) {
    if (cancel.upstream.sent && cancel.clientGone) {
      // The client left while the provider had its prompt (the transport marks the request sent
      // once it is written to a connected socket; not while connecting or queued) (a whole answer is generated before its
      // first byte, a reasoning model thinks before its first token): the provider bills that input,
      // so it is charged, estimated and flagged. A release would let a client that always leaves
      // just before the answer spend the operator's money without touching its budget.
      observe("error");
      await settled(
        settleWith(a, undefined, () => [], "client disconnected", deps),
        deps,
        a.id,
        "settlement failed",
      );
    }
    throw upstreamFailure(e, cancel.timedOut, cancel.clientGone);
  }
  const nowMs = deps.clock.nowMs();
  const ours = tokenfuseHeaders(a, nowMs);

  if (upstreamRes.status >= 400) {
    const text = await upstreamRes.text().catch(() => "");
    observe(`${Math.floor(upstreamRes.status / 100)}xx`);
    // The provider generated nothing: the reservation is released (by the caller's catch when this
    // throws, else below, before the answer is written).
    if (upstreamRes.status >= 500) {
      logger.warn({ upstream: upstream.name, status: upstreamRes.status }, "upstream error");
      throw gatewayError("upstream_error", `upstream "${upstream.name}" answered ${upstreamRes.status}`, 502);
    }
    if (upstreamRes.status === 401 || upstreamRes.status === 403 || upstreamRes.status === 407) {
      // The provider refused the gateway's own credentials (its api_key from the config): nothing
      // the client can fix, and the provider's text may quote part of that key ("Incorrect API key
      // provided: sk-…"). A 502 that names the upstream, and a log line without the provider's text.
      logger.error(
        { upstream: upstream.name, status: upstreamRes.status },
        "the upstream refused the gateway's credentials: check the upstream's api_key in the config",
      );
      throw notRetryable(
        gatewayError(
          "upstream_error",
          `upstream "${upstream.name}" refused the gateway's credentials (${upstreamRes.status})`,
          502,
        ),
      );
    }
    // Any other 4xx is about the request itself (a bad parameter, an unknown model, the provider's
    // own rate limit): pass the provider's answer through.
    await settled(a.settle(), deps, a.id, "release failed");
    const head: Record<string, string> = {
      "content-type": upstreamRes.contentType ?? upstreamRes.headers["content-type"] ?? "application/json",
    };
    // The provider's own retry advice and request id go with its answer (a client backs off from a
    // provider 429 as the provider asked); tokenfuse's headers win where names overlap.
    for (const h of PROVIDER_HEADERS) {
      const v = upstreamRes.headers[h];
      if (v !== undefined) head[h] = v;
    }
    res.writeHead(upstreamRes.status, { ...head, ...ours });
    res.end(text);
    return;
  }

  if (body.stream === true) {
    await streamThrough(res, body, a, upstreamRes, ours, {
      cancel,
      deps,
      observe,
      upstreamName: upstream.name,
    });
    return;
  }

  let text: string;
  try {
    text = await upstreamRes.text();
  } catch (e) {
    // The upstream answered (2xx headers) and its body was cut: a non-streamed answer is generated
    // whole before its first byte, so it is charged (the output cap × n: its size is unknown),
    // estimated and flagged, never released.
    const failure = cancel.clientGone
      ? "client disconnected"
      : cancel.timedOut
        ? "upstream timed out"
        : "upstream body cut";
    observe("error");
    await settled(
      settleWith(a, undefined, () => [], failure, deps, true),
      deps,
      a.id,
      "settlement failed",
    );
    throw upstreamFailure(e, cancel.timedOut, cancel.clientGone);
  }
  observe("2xx");
  let usage: unknown;
  let choices: unknown[] = [];
  try {
    const parsed = JSON.parse(text) as { usage?: unknown; choices?: unknown };
    usage = parsed?.usage;
    if (Array.isArray(parsed?.choices)) choices = parsed.choices;
  } catch {
    // Not JSON: forwarded as is, charged from the estimate below.
  }
  // One text per choice (estimateUsage counts them apart), gathered only when an estimate is needed.
  const generated = () =>
    choices.map((c) => {
      const parts: string[] = [];
      generatedParts((c as { message?: unknown } | null)?.message, (t) => parts.push(t));
      return parts.join("");
    });
  await settled(settleWith(a, usage, generated, undefined, deps), deps, a.id, "settlement failed");
  // Added to our headers object rather than spread into a new one (spreads are slow in V8).
  ours["content-type"] = upstreamRes.contentType ?? upstreamRes.headers["content-type"] ?? "application/json";
  ours["content-length"] = String(Buffer.byteLength(text));
  res.writeHead(200, ours);
  res.end(text);
}

async function streamThrough(
  res: ServerResponse,
  body: Record<string, unknown>,
  a: Admission,
  upstreamRes: Awaited<ReturnType<UpstreamClient["send"]>>,
  ours: Record<string, string>,
  ctx: { cancel: Cancel; deps: ChatHandlerDeps; observe: (s: string) => void; upstreamName: string },
): Promise<void> {
  const so = body.stream_options as { include_usage?: unknown } | undefined;
  const tap = createSseTap({ stripUsage: so?.include_usage !== true });
  // The 200 goes out with the first bytes of the stream, not before: a stream that fails before
  // any output is answered with the error (504/502 in the OpenAI envelope) instead of a 200 that
  // breaks, which clients took for a connection error and retried.
  let started = false;
  const write = (s: string): boolean => {
    if (!started) {
      started = true;
      res.writeHead(200, {
        "content-type": "text/event-stream; charset=utf-8",
        "cache-control": "no-cache",
        connection: "keep-alive",
        ...ours,
      });
    }
    return res.write(s);
  };
  // Why the stream stopped early, if it did (a fixed phrase: it is also a metric label).
  let failure: "client disconnected" | "upstream timed out" | "upstream stream failed" | undefined;
  const { cancel } = ctx;
  try {
    for await (const chunk of upstreamRes.body) {
      const out = tap.push(chunk);
      if (out !== "" && !write(out)) {
        // Back-pressure: wait until the client drains, leaves, or the upstream's time is up (a
        // client that stops reading must not hold its reservation, or this handler, forever).
        await new Promise<void>((resolve) => {
          // Already stopped (the timer fired or the client left while the chunk was on its way):
          // that event has been emitted, so waiting for it would never end.
          if (cancel.upstream.aborted || res.destroyed) {
            resolve();
            return;
          }
          const done = () => {
            res.off("drain", done);
            res.off("close", done);
            cancel.upstream.off("abort", done);
            resolve();
          };
          res.on("drain", done);
          res.on("close", done);
          cancel.upstream.on("abort", done);
        });
      }
      if (cancel.upstream.aborted) break;
    }
    const rest = tap.end();
    if (rest !== "" && !cancel.upstream.aborted) write(rest);
  } catch (e) {
    if (!cancel.clientGone && !cancel.timedOut) {
      failure = "upstream stream failed";
      ctx.deps.logger.warn(
        { upstream: ctx.upstreamName, err: (e as Error)?.message },
        "upstream stream failed",
      );
    }
  }
  if (cancel.clientGone) failure = "client disconnected";
  else if (cancel.timedOut) failure = "upstream timed out";
  ctx.observe(failure ? "error" : "2xx");
  // Charged for what was generated: the reported usage (authoritative once seen, even if the stream
  // failed after it), else an estimate from the text that passed. Before the stream's end (or
  // error) is written: see `settled`.
  await settled(
    settleWith(a, tap.usage, tap.generatedTexts, failure, ctx.deps),
    ctx.deps,
    a.id,
    "settlement failed",
  );
  if (failure && !cancel.clientGone && !started) {
    // Nothing was sent yet: a proper error the client can read.
    sendError(
      res,
      failure === "upstream timed out"
        ? notRetryable(gatewayError("upstream_error", "upstream timed out before any output", 504))
        : gatewayError("upstream_error", "upstream stream failed before any output", 502),
    );
    return;
  }
  if (failure && !cancel.clientGone) {
    // The client has the headers already: end the stream abruptly so it sees a failure, not a short
    // answer. Why on the next turn: node:http hands this tick's writes to the socket at the end of
    // the tick; destroying now would drop them, headers included.
    const err = new Error(failure);
    setImmediate(() => res.destroy(err));
    return;
  }
  if (!started) write("");
  res.end();
}

/**
 * Waits for a settlement (or release) before the answer is written.
 * Why before, although on Redis it costs a round trip per request (measured: 0.16–0.28 ms at one
 * connection, docs/BENCHMARKS.md): what follows the answer must find it applied and recorded: a
 * client's next request is decided after its usage-log settlement line, so a replay of the log
 * decides as the store did, and after the hourly cost checks it triggers, so a cost cap or breaker
 * stops a sequential client at once; a budget read or retry sent to another gateway process sees it.
 * A failure cannot change the answer, which the provider generated (and bills): it is logged, and
 * the answer is sent. A store outage never ends here: the guarded store queues the settlement and
 * applies it when the store is back.
 */
async function settled(
  settling: Promise<unknown>,
  deps: ChatHandlerDeps,
  id: string | undefined,
  message: string,
): Promise<void> {
  try {
    await settling;
  } catch (err) {
    deps.logger.error({ id, err: String(err) }, message);
  }
}

/**
 * Settles a call the upstream answered: with its usage when it is chargeable, else with an estimate
 * of what was generated (counted, flagged in `tokenfuse_estimated_settlements_total` and logged).
 * Never by releasing the reservation: the provider generated that output and bills it.
 */
async function settleWith(
  a: Admission,
  reported: unknown,
  /** What was generated, one text per choice (called only when an estimate is needed). */
  generated: () => readonly string[],
  failure: string | undefined,
  deps: ChatHandlerDeps,
  /** The answer was generated whole but not read (a non-streamed body cut after its headers). */
  unreadAnswer = false,
): Promise<void> {
  const c = chargeableUsage(reported);
  if (c.usage) {
    await a.settle(c.usage);
    return;
  }
  const reason = failure ?? c.problem;
  // The whole output allowance (cap × n) for an answer whose size the text does not tell: one
  // generated whole but not read, or a reasoning model's completed answer (its hidden reasoning is
  // billed as output). Otherwise what passed, counted.
  const est =
    unreadAnswer || (failure === undefined && COMPLETION_CAP_ONLY.test(a.model))
      ? { prompt_tokens: a.inputTokens, completion_tokens: a.reservedTokens - a.inputTokens }
      : estimateUsage(a, generated());
  deps.metrics.estimatedSettlements.inc({ feature: a.feature, reason });
  deps.logger.warn(
    {
      id: a.id,
      feature: a.feature,
      reason,
      ...(c.detail ? { usageProblem: c.detail } : {}),
      estimatedCompletionTokens: est.completion_tokens,
    },
    "settled from an estimate",
  );
  await a.settle(est, { estimated: reason });
}

function upstreamFailure(e: unknown, timedOut: boolean, clientGone: boolean) {
  if (clientGone) return gatewayError("upstream_error", "client disconnected", 499);
  // undici's own header/body timeouts (UND_ERR_HEADERS_TIMEOUT, …) can fire just before our signal.
  const code = (e as { code?: unknown } | undefined)?.code;
  if (timedOut || (typeof code === "string" && code.includes("TIMEOUT"))) {
    // The gateway waited the upstream's whole timeout: a client retry would wait as long again.
    return notRetryable(gatewayError("upstream_error", "upstream timed out", 504));
  }
  return gatewayError(
    "upstream_error",
    `upstream request failed: ${(e as Error)?.message ?? String(e)}`,
    502,
  );
}

/**
 * One cancel per request for both reasons to stop the upstream call — the client left, or the
 * upstream's timeout passed — and which one it was. Why not AbortSignal.timeout + AbortSignal.any:
 * they cost a timer object and signal bookkeeping per request on the hot path; one cancel and one
 * cleared timer do the same (and why not an AbortController at all: upstream/types.ts).
 */
interface Cancel {
  readonly upstream: UpstreamCancel;
  readonly clientGone: boolean;
  readonly timedOut: boolean;
  clientLeft(): void;
  startTimer(ms: number): void;
  stopTimer(): void;
}

function createCancel(): Cancel {
  const upstream = new UpstreamCancel();
  let clientGone = false;
  let timedOut = false;
  let timer: NodeJS.Timeout | undefined;
  return {
    upstream,
    get clientGone() {
      return clientGone;
    },
    get timedOut() {
      return timedOut;
    },
    clientLeft() {
      clientGone = true;
      upstream.abort(new Error("client disconnected"));
    },
    startTimer(ms) {
      timer = setTimeout(() => {
        timedOut = true;
        upstream.abort(new Error("upstream timed out"));
      }, ms);
    },
    stopTimer() {
      if (timer) clearTimeout(timer);
    },
  };
}
