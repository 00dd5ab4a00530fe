import type { Admission } from "../core/engine.js";
import { TokenBudgetError } from "../core/errors.js";
import type { Logger } from "../core/logger.js";
import { billedDefinitions } from "../core/request.js";
import type { ChatMessage, OpenAIUsage } from "../core/types.js";
import type { Tokenfuse } from "../tokenfuse.js";
import { fullCapEstimate, passedOutputEstimate, providerAnswered, wrapperSettlement } from "./settlement.js";

/** The part of the official `openai` client this wrapper uses (structural: no runtime import). */
export interface OpenAIChatClient {
  chat: {
    completions: {
      /** The official client returns an APIPromise (with `asResponse()`); any promise will do. */
      create(body: Record<string, unknown>, options?: Record<string, unknown>): Promise<unknown>;
    };
  };
}

/** Who and what a call is for. */
export interface GuardContext {
  feature: string;
  user: string;
  tier?: string;
}

/** A chat completion chunk, as far as the wrapper reads it. */
interface Chunk {
  choices?: unknown[];
  usage?: OpenAIUsage | null;
}

/** A streamed choice's delta, as far as the wrapper reads it (the gateway's SSE tap reads the same). */
interface Delta {
  content?: unknown;
  tool_calls?: unknown;
}

/** Options of {@link guardOpenAI}. */
export interface GuardOpenAIOptions {
  /** Where a usage that could not be charged as reported is logged (default: tokenfuse's JSON logger). */
  logger?: Logger;
}

/** Chat completions through tokenfuse: admit → call → settle, exactly once. */
export interface GuardedOpenAI {
  /** Non-streaming: resolves with the provider's response (its `usage` is what was charged). */
  create(
    ctx: GuardContext,
    body: Record<string, unknown>,
    options?: Record<string, unknown>,
  ): Promise<unknown>;
  /**
   * Streaming: yields the provider's chunks. Usage is requested from the provider and settled when
   * the stream ends; the usage-only chunk is dropped unless the caller asked for it. Stopping early
   * (break) or failing after the stream began settles the usage the stream reported, else the input
   * and an estimate of the output that passed (content and tool calls); a call refused or failed
   * before its stream began releases the reservation.
   */
  stream(
    ctx: GuardContext,
    body: Record<string, unknown>,
    options?: Record<string, unknown>,
  ): AsyncIterable<unknown>;
}

function requestFor(ctx: GuardContext, body: Record<string, unknown>) {
  // Counted: tools, the legacy functions and a response_format schema (all billed as prompt).
  const definitions = billedDefinitions(body);
  if (definitions instanceof TokenBudgetError) throw definitions;
  return {
    feature: ctx.feature,
    user: ctx.user,
    tier: ctx.tier,
    messages: body.messages as ChatMessage[],
    model: typeof body.model === "string" ? body.model : undefined,
    maxTokens: body.max_tokens as number | undefined,
    maxCompletionTokens: body.max_completion_tokens as number | undefined,
    n: body.n as number | undefined,
    tools: definitions,
  };
}

/** The body sent to the provider: tokenfuse's messages, model and output cap. */
function providerBody(body: Record<string, unknown>, a: Admission): Record<string, unknown> {
  const out: Record<string, unknown> = { ...body, model: a.model, messages: a.messages };
  if (body.max_completion_tokens != null || /^(o\d|gpt-5)/.test(a.model)) {
    out.max_completion_tokens = a.maxOutputTokens;
    if (body.max_tokens != null) out.max_tokens = a.maxOutputTokens;
  } else {
    out.max_tokens = a.maxOutputTokens;
  }
  return out;
}

/** Appends a streamed delta's generated parts (content, tool-call names and arguments) to `out`. */
/** Keeps what a chunk's choices generated, per choice index (estimates count each choice apart). */
function keepGenerated(choices: unknown[], byChoice: Map<number, string[]>): void {
  for (const c of choices as Array<{ delta?: Delta; index?: unknown } | null>) {
    const d = c?.delta;
    if (!d) continue;
    const i = typeof c?.index === "number" && Number.isSafeInteger(c.index) ? c.index : 0;
    let out = byChoice.get(i);
    if (!out) {
      out = [];
      byChoice.set(i, out);
    }
    if (typeof d.content === "string") out.push(d.content);
    // Why: a tool call is generated (and billed) output too; a stream that fails after one must be
    // charged an estimate, not released for free.
    if (Array.isArray(d.tool_calls)) {
      for (const tc of d.tool_calls as Array<{ function?: { name?: unknown; arguments?: unknown } } | null>) {
        if (typeof tc?.function?.name === "string") out.push(tc.function.name);
        if (typeof tc?.function?.arguments === "string") out.push(tc.function.arguments);
      }
    }
  }
}

/**
 * Wraps the official `openai` client so every chat completion is admitted and settled by tokenfuse
 * (SPEC §9). Refusals throw `TokenBudgetError` before anything is sent.
 */
export function guardOpenAI(
  client: OpenAIChatClient,
  tf: Tokenfuse,
  opts: GuardOpenAIOptions = {},
): GuardedOpenAI {
  const settlement = wrapperSettlement(opts.logger);
  return {
    async create(ctx, body, options) {
      const a = await tf.admit(requestFor(ctx, body));
      let res: { usage?: OpenAIUsage | null };
      /** The provider answered (2xx headers): from then on the call is charged, never released. */
      let answered = false;
      try {
        const call = client.chat.completions.create({ ...providerBody(body, a), stream: false }, options);
        // The official client's APIPromise says when the response arrived, before its body is read:
        // a body cut after that throws a plain TypeError (no status), yet the answer was generated.
        // `asResponse()` shares the same request (nothing is sent twice).
        (call as { asResponse?: () => Promise<{ ok?: boolean }> }).asResponse?.().then(
          (r) => {
            if (r?.ok !== false) answered = true;
          },
          () => {},
        );
        res = (await call) as typeof res;
      } catch (e) {
        // Refused or unanswered: release everything; answered (a 2xx whose body failed): the cap.
        // A settlement failing here is logged: the provider's error is the one the caller gets.
        if (answered || providerAnswered(e)) {
          await a
            .settle(fullCapEstimate(a, (body.n as number) ?? 1), {
              estimated: "response failed after the provider answered",
            })
            .catch(settlement.failed(a));
        } else await a.settle().catch(settlement.failed(a));
        throw e;
      }
      const reported = settlement.usable(res?.usage, a, true);
      // A settlement that fails once the provider answered is logged, and the paid answer returned:
      // an error instead would lose it (and a retry would pay for it again), as in the gateway.
      // (An unavailable store does not fail it: the guarded store queues it.)
      await a
        .settle(
          reported ?? fullCapEstimate(a, (body.n as number) ?? 1),
          reported ? undefined : { estimated: "no chargeable usage reported" },
        )
        .catch(settlement.failed(a));
      return res;
    },
    async *stream(ctx, body, options) {
      const a = await tf.admit(requestFor(ctx, body));
      const so = (body.stream_options ?? {}) as Record<string, unknown>;
      const clientWantsUsage = so.include_usage === true;
      let usage: unknown; // as reported: checked by settlement.usable before it is settled
      let settled = false;
      /** The provider answered (the stream began): from then on the call is charged, never released. */
      let answered = false;
      const generated = new Map<number, string[]>();
      try {
        const stream = (await client.chat.completions.create(
          { ...providerBody(body, a), stream: true, stream_options: { ...so, include_usage: true } },
          options,
        )) as AsyncIterable<Chunk>;
        answered = true;
        for await (const chunk of stream) {
          if (Array.isArray(chunk.choices)) keepGenerated(chunk.choices, generated);
          if (chunk.usage) {
            usage = chunk.usage;
            if (!clientWantsUsage && Array.isArray(chunk.choices) && chunk.choices.length === 0) continue;
          }
          yield chunk;
        }
        const reported = settlement.usable(usage, a, true);
        usage = reported; // a refused usage is not retried below: it would be refused again
        // Logged if it fails, not thrown after the whole answer was read (see create).
        await a
          .settle(
            reported ?? fullCapEstimate(a, (body.n as number) ?? 1),
            reported ? undefined : { estimated: "no chargeable usage reported" },
          )
          .catch(settlement.failed(a));
        settled = true;
      } finally {
        // Logged if it fails: whatever ended the stream (the provider's error, the caller's break)
        // is what the caller sees.
        if (!settled && !answered) {
          // refused or unreachable before any answer: release everything
          await a.settle().catch(settlement.failed(a));
        } else if (!settled) {
          // Stopped early or failed after the provider answered: charge what was reported, else the
          // input and the output that passed (estimated).
          const reported = settlement.usable(usage, a, false);
          await a
            .settle(
              reported ??
                passedOutputEstimate(
                  a,
                  [...generated.entries()].sort((x, y) => x[0] - y[0]).map(([, pieces]) => pieces),
                ),
              reported ? undefined : { estimated: "stream stopped early" },
            )
            .catch(settlement.failed(a));
        }
      }
    },
  };
}
