import type { Admission } from "../core/engine.js";
import type { ChatMessage, OpenAIUsage, ToolDefinition } from "../core/types.js";
import type { Tokenfuse } from "../tokenfuse.js";
import { tokenizerForModel } from "../tokenizers/index.js";

/** The part of the official `openai` client this wrapper uses (structural: no runtime import). */
export interface OpenAIChatClient {
  chat: {
    completions: {
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
   * (break) settles what the stream reported so far, or releases the reservation.
   */
  stream(
    ctx: GuardContext,
    body: Record<string, unknown>,
    options?: Record<string, unknown>,
  ): AsyncIterable<unknown>;
}

function requestFor(ctx: GuardContext, body: Record<string, unknown>) {
  return {
    feature: ctx.feature,
    user: ctx.user,
    tier: ctx.tier,
    messages: body.messages as ChatMessage[],
    model: typeof body.model === "string" ? body.model : undefined,
    maxTokens: body.max_tokens as number | undefined,
    maxCompletionTokens: body.max_completion_tokens as number | undefined,
    n: body.n as number | undefined,
    tools: body.tools as ToolDefinition[] | undefined,
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

/**
 * Wraps the official `openai` client so every chat completion is admitted and settled by tokenfuse
 * (SPEC §9). Refusals throw `TokenBudgetError` before anything is sent.
 */
export function guardOpenAI(client: OpenAIChatClient, tf: Tokenfuse): GuardedOpenAI {
  return {
    async create(ctx, body, options) {
      const a = await tf.admit(requestFor(ctx, body));
      let res: { usage?: OpenAIUsage | null };
      try {
        res = (await client.chat.completions.create(
          { ...providerBody(body, a), stream: false },
          options,
        )) as typeof res;
      } catch (e) {
        await a.settle(); // failed before any output: release everything
        throw e;
      }
      await a.settle(
        res.usage ?? {
          prompt_tokens: a.inputTokens,
          completion_tokens: a.maxOutputTokens * ((body.n as number) ?? 1),
        },
      );
      return res;
    },
    async *stream(ctx, body, options) {
      const a = await tf.admit(requestFor(ctx, body));
      const so = (body.stream_options ?? {}) as Record<string, unknown>;
      const clientWantsUsage = so.include_usage === true;
      let usage: OpenAIUsage | undefined;
      let settled = false;
      const generated: string[] = [];
      try {
        const stream = (await client.chat.completions.create(
          { ...providerBody(body, a), stream: true, stream_options: { ...so, include_usage: true } },
          options,
        )) as AsyncIterable<Chunk>;
        for await (const chunk of stream) {
          for (const c of (chunk.choices ?? []) as Array<{ delta?: { content?: unknown } }>) {
            if (typeof c.delta?.content === "string") generated.push(c.delta.content);
          }
          if (chunk.usage) {
            usage = chunk.usage;
            if (!clientWantsUsage && Array.isArray(chunk.choices) && chunk.choices.length === 0) continue;
          }
          yield chunk;
        }
        await a.settle(
          usage ?? {
            prompt_tokens: a.inputTokens,
            completion_tokens: a.maxOutputTokens * ((body.n as number) ?? 1),
          },
        );
        settled = true;
      } finally {
        if (!settled) {
          // Stopped early or failed: charge what was reported, else what passed (estimated), else nothing.
          const text = generated.join("");
          const estimate =
            text === ""
              ? null
              : {
                  prompt_tokens: a.inputTokens,
                  completion_tokens: tokenizerForModel(a.model).countText(text),
                };
          await a.settle(usage ?? estimate);
        }
      }
    },
  };
}
