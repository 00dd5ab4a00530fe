/**
 * tokenfuse as Vercel AI SDK language-model middleware (SPEC §9): `wrapLanguageModel({ model,
 * middleware: tokenfuseMiddleware(tf, …) })` admits every call the model makes (trimming its prompt
 * and capping its output as the feature says), and settles it from the usage the provider reports.
 *
 * Written against the AI SDK's middleware specification v4 (`ai` 7, `@ai-sdk/provider` 4). The
 * types below are structural copies of the parts this module reads, so tokenfuse has no runtime
 * dependency on the AI SDK.
 *
 * How a call flows (ai's wrapLanguageModel): `transformParams` runs first and its result is handed,
 * as the same object, to `wrapGenerate`/`wrapStream` as `params` and to the model. So the admission
 * happens in transformParams (which may change the prompt and the output cap) and is found again by
 * that object in wrap*, which settles it. Nothing can fail between the two, so no reservation is
 * left behind; a `params` object without an admission is refused rather than called unbudgeted.
 */
import type { Admission } from "../core/engine.js";
import { TokenBudgetError } from "../core/errors.js";
import type { Logger } from "../core/logger.js";
import type { ChatMessage, ContentPart, OpenAIUsage, ToolDefinition } from "../core/types.js";
import type { Tokenfuse } from "../tokenfuse.js";
import { fullCapEstimate, passedOutputEstimate, providerAnswered, wrapperSettlement } from "./settlement.js";

// ---- The AI SDK's types, as far as this module reads them (LanguageModelV4*). ----

type ProviderOptions = Record<string, Record<string, unknown>>;

interface TextLikePart {
  type: "text" | "reasoning";
  text: string;
  providerOptions?: ProviderOptions;
}
interface FilePart {
  type: "file" | "reasoning-file";
  mediaType: string;
  /** SharedV4FileData: `{type: "data" | "url" | "reference" | "text", …}`. */
  data?: { type?: string; text?: unknown } | unknown;
  providerOptions?: ProviderOptions;
}
interface ToolCallPart {
  type: "tool-call";
  toolCallId: string;
  toolName: string;
  input: unknown;
}
interface ToolResultPart {
  type: "tool-result";
  toolCallId: string;
  toolName: string;
  output: ToolResultOutput;
}
type ToolResultOutput =
  | { type: "text" | "error-text"; value: string }
  | { type: "json" | "error-json"; value: unknown }
  | { type: "execution-denied"; reason?: string }
  | { type: "content"; value: Array<{ type: string; text?: string; mediaType?: string }> };
type PromptPart =
  | TextLikePart
  | FilePart
  | ToolCallPart
  | ToolResultPart
  | { type: "custom" | "tool-approval-response" };

/** A message of the AI SDK's prompt (LanguageModelV4Message). */
export interface AiSdkMessage {
  role: "system" | "user" | "assistant" | "tool";
  content: string | PromptPart[];
  providerOptions?: ProviderOptions;
}

/** The options of one model call, as far as tokenfuse reads them (LanguageModelV4CallOptions). */
export interface AiSdkCallOptions {
  prompt: AiSdkMessage[];
  maxOutputTokens?: number | undefined;
  tools?: Array<{
    type: string;
    name: string;
    description?: string;
    inputSchema?: unknown;
  }>;
  responseFormat?: { type: "text" } | { type: "json"; schema?: unknown; name?: string; description?: string };
  providerOptions?: ProviderOptions;
  headers?: Record<string, string | undefined>;
  abortSignal?: AbortSignal;
  [key: string]: unknown;
}

/** The AI SDK's usage (LanguageModelV4Usage). */
interface AiSdkUsage {
  inputTokens?: { total?: number | undefined; cacheRead?: number | undefined };
  outputTokens?: { total?: number | undefined; reasoning?: number | undefined };
}

interface GenerateResult {
  content: Array<{ type: string; text?: string; input?: unknown; toolName?: string }>;
  usage?: AiSdkUsage;
  providerMetadata?: Record<string, Record<string, unknown>>;
  [key: string]: unknown;
}

interface StreamPart {
  type: string;
  id?: string;
  delta?: string;
  toolCallId?: string;
  toolName?: string;
  input?: unknown;
  usage?: AiSdkUsage;
  providerMetadata?: Record<string, Record<string, unknown>>;
  [key: string]: unknown;
}

interface StreamResult {
  stream: ReadableStream<StreamPart>;
  [key: string]: unknown;
}

/** A language model, as far as this middleware calls it (LanguageModelV4). */
export interface AiSdkLanguageModel {
  readonly modelId: string;
  readonly provider?: string;
  doGenerate(options: AiSdkCallOptions): PromiseLike<unknown>;
  doStream(options: AiSdkCallOptions): PromiseLike<unknown>;
}

/** The middleware object (LanguageModelV4Middleware). */
export interface TokenfuseLanguageModelMiddleware {
  readonly specificationVersion: "v4";
  // Generic so that the AI SDK's own LanguageModelV4CallOptions goes in and comes out as itself.
  transformParams<P extends AiSdkCallOptions>(options: {
    type: "generate" | "stream";
    params: P;
    model: AiSdkLanguageModel;
  }): Promise<P>;
  // biome-ignore lint/suspicious/noExplicitAny: the AI SDK's own result type, passed through unchanged
  wrapGenerate(options: AiSdkWrapOptions): Promise<any>;
  // biome-ignore lint/suspicious/noExplicitAny: the AI SDK's own result type, passed through unchanged
  wrapStream(options: AiSdkWrapOptions): Promise<any>;
}

/** What the AI SDK hands `wrapGenerate` and `wrapStream`. */
export interface AiSdkWrapOptions {
  doGenerate: () => PromiseLike<unknown>;
  doStream: () => PromiseLike<unknown>;
  params: AiSdkCallOptions;
  model: AiSdkLanguageModel;
}

/** Who a call is for: any field may come from the middleware's options or from the call. */
export interface AiSdkCallContext {
  feature?: string | undefined;
  user?: string | undefined;
  tier?: string | undefined;
  /** Your id for the request (logs, events, `providerMetadata.tokenfuse.requestId`). */
  requestId?: string | undefined;
}

/** Options of {@link tokenfuseMiddleware}. */
export interface TokenfuseMiddlewareOptions extends AiSdkCallContext {
  /**
   * Per call: returns (part of) the context, e.g. the user from your request scope. Its fields win
   * over the middleware's own; `providerOptions.tokenfuse` of the call wins over both.
   */
  context?: (call: { params: AiSdkCallOptions; modelId: string }) => AiSdkCallContext | undefined;
  /**
   * The model to call when the feature assigns another one than the wrapped model (its `model`,
   * unless the wrapped model is in `allowed_models`), e.g. `(id) => openai.chat(id)`. Return an
   * unwrapped model (a wrapped one would admit the call a second time). Without it such a call is
   * refused with `invalid_request` (`param: "model"`) and its reservation released: calling the
   * wrapped model anyway would bypass the assignment and price the call as the wrong model.
   */
  resolveModel?: (modelId: string) => AiSdkLanguageModel;
  /** Where a usage that could not be charged as reported is logged (default: tokenfuse's JSON logger). */
  logger?: Logger;
}

/** What `providerMetadata.tokenfuse` of a result (or of a stream's finish part) holds. */
export interface TokenfuseCallMetadata {
  [key: string]: string | number | boolean;
  requestId: string;
  feature: string;
  model: string;
  decision: "allow" | "trim";
  inputTokens: number;
  trimmedMessages: number;
  truncatedMessages: number;
  summarized: boolean;
  storeStatus: "ok" | "store_unavailable" | "local";
}

// ---- The prompt, both ways. ----

/**
 * Where a counted chat message came from: its AI SDK message, its index in the prompt (a message
 * made into several chat messages is sent once, and the same object twice is sent twice), and the
 * chat message made of it.
 */
interface Origin {
  message: AiSdkMessage;
  at: number;
  made: ChatMessage;
}

/**
 * Marks every chat message made from an AI SDK message. A symbol key, because the input policy
 * keeps messages as they are (same object) and a truncated one as a spread copy (`{...m, content}`),
 * which copies symbol keys too: both lead back to the AI SDK message, so everything the chat format
 * does not carry (provider options, file data, reasoning parts) is sent as it was.
 */
const ORIGIN: unique symbol = Symbol("tokenfuse.ai-sdk.origin");

type Marked = ChatMessage & { [ORIGIN]?: Origin };

function invalid(message: string, param?: string): TokenBudgetError {
  return new TokenBudgetError({ code: "invalid_request", message, scope: "request", param });
}

/**
 * A content part standing in for a file: an inline text document as its text (providers that take
 * one bill it as text), an image as the image estimate (`detail: "low"` when the OpenAI provider
 * option says so), anything else as the estimate for other parts; never the file's bytes.
 */
function filePlaceholder(p: FilePart): ContentPart {
  const data = p.data as { type?: unknown; text?: unknown } | undefined;
  if (data?.type === "text" && typeof data.text === "string") return { type: "text", text: data.text };
  if (p.mediaType.startsWith("image/")) {
    const detail = (p.providerOptions?.openai as { imageDetail?: unknown } | undefined)?.imageDetail;
    return { type: "image_url", image_url: { url: "", ...(typeof detail === "string" ? { detail } : {}) } };
  }
  return { type: "file" };
}

/**
 * JSON text as the AI SDK's providers send it (`stringifyWithBigIntAndCycles`): bigints as
 * decimal strings, a cycle as the text "[Circular]"; never throws.
 */
function jsonText(value: unknown): string {
  const seen = new WeakSet<object>();
  try {
    return (
      JSON.stringify(value, (_k, v: unknown) => {
        if (typeof v === "bigint") return v.toString();
        if (typeof v === "object" && v !== null) {
          if (seen.has(v)) return "[Circular]";
          seen.add(v);
        }
        return v;
      }) ?? ""
    );
  } catch {
    return String(value);
  }
}

/**
 * A tool result's content as the AI SDK's OpenAI chat provider sends it: text as is, JSON and
 * `content` outputs as their JSON (a `content` output's base64 file data included: that is what the
 * model receives and bills as text there; other providers sending the file natively are billed less,
 * so the count errs upwards), errors as `{"error": …}`, a denial as its reason.
 */
function toolResultContent(output: ToolResultOutput | undefined): string {
  switch (output?.type) {
    case "text":
      return output.value;
    case "error-text":
    case "error-json":
      return jsonText({ error: output.value });
    case "execution-denied":
      return output.reason ?? "Tool call execution denied.";
    default:
      // json and content: JSON.stringify of the value, a string value quoted.
      return jsonText((output as { value?: unknown } | undefined)?.value ?? output);
  }
}

/** The message's `name` as the OpenAI provider sends it (`providerOptions.openai.name`): counted. */
function withName(m: AiSdkMessage, made: ChatMessage): ChatMessage {
  const name = (m.providerOptions?.openai as { name?: unknown } | undefined)?.name;
  if (typeof name === "string") made.name = name;
  return made;
}

/**
 * The chat messages an AI SDK prompt is counted as (the OpenAI chat format, as the AI SDK's own
 * OpenAI provider sends it): system as is; a user message's text parts (one part: a string), files
 * as estimated parts; an assistant's text, reasoning and provider-run tool results as text (reasoning
 * is counted although some providers do not send it back: a count may only err upwards) and its
 * tool calls as `tool_calls`; each tool result as its own `tool` message.
 */
export function chatMessagesOf(prompt: readonly AiSdkMessage[]): ChatMessage[] {
  if (!Array.isArray(prompt)) throw invalid("the prompt must be an array of messages", "prompt");
  const out: ChatMessage[] = [];
  const push = (message: AiSdkMessage, at: number, made: ChatMessage) => {
    (made as Marked)[ORIGIN] = { message, at, made };
    out.push(made);
  };
  for (let i = 0; i < prompt.length; i++) {
    const m = prompt[i] as AiSdkMessage;
    if (typeof m !== "object" || m === null) throw invalid(`prompt[${i}] must be a message object`, "prompt");
    if (m.role === "system") {
      if (typeof m.content !== "string")
        throw invalid(`prompt[${i}]: a system message's content must be a string`);
      push(m, i, withName(m, { role: "system", content: m.content }));
      continue;
    }
    if (!Array.isArray(m.content)) throw invalid(`prompt[${i}]: content must be an array of parts`, "prompt");
    if (m.role === "user") {
      const parts: ContentPart[] = [];
      for (const p of m.content) {
        if (p.type === "text") parts.push({ type: "text", text: (p as TextLikePart).text });
        else if (p.type === "file") parts.push(filePlaceholder(p as FilePart));
      }
      const only = parts.length === 1 && parts[0]?.type === "text" ? parts[0].text : undefined;
      push(m, i, withName(m, { role: "user", content: only ?? parts }));
    } else if (m.role === "assistant") {
      const text: string[] = [];
      // Reasoning is counted (some providers send it back, billed as input) as parts of its own: a
      // message with them is never shortened by `truncate`, which would turn the model's reasoning
      // into visible text and drop its provider data (signatures).
      const extra: ContentPart[] = [];
      const calls: NonNullable<ChatMessage["tool_calls"]> = [];
      for (const p of m.content) {
        if (p.type === "text") text.push((p as TextLikePart).text);
        else if (p.type === "reasoning") extra.push({ type: "text", text: (p as TextLikePart).text });
        else if (p.type === "file" || p.type === "reasoning-file") extra.push(filePlaceholder(p as FilePart));
        else if (p.type === "tool-call") {
          const c = p as ToolCallPart;
          calls.push({
            id: c.toolCallId,
            type: "function",
            // As the provider sends them: a string input as is (it is JSON already), else its JSON.
            function: {
              name: c.toolName,
              arguments: typeof c.input === "string" ? c.input : jsonText(c.input),
            },
          });
        } else if (p.type === "tool-result") {
          // A provider-executed tool's result, sent back inside the assistant message.
          extra.push({ type: "text", text: toolResultContent((p as ToolResultPart).output) });
        }
      }
      const made: ChatMessage = {
        role: "assistant",
        content: extra.length === 0 ? text.join("") : [{ type: "text", text: text.join("") }, ...extra],
      };
      if (calls.length > 0) made.tool_calls = calls;
      push(m, i, withName(m, made));
    } else if (m.role === "tool") {
      for (const p of m.content) {
        if (p.type === "tool-result") {
          const r = p as ToolResultPart;
          push(m, i, { role: "tool", tool_call_id: r.toolCallId, content: toolResultContent(r.output) });
        } else if (p.type === "tool-approval-response") {
          // Not sent by every provider, but the message must survive trimming with its tool calls:
          // counted as a short tool message (an over-count of a few tokens at most).
          const r = p as { approvalId?: unknown; approved?: unknown; reason?: unknown };
          const reason = typeof r.reason === "string" ? `: ${r.reason}` : "";
          push(m, i, {
            role: "tool",
            tool_call_id: String(r.approvalId ?? ""),
            content: `${r.approved === true ? "approved" : "denied"}${reason}`,
          });
        }
      }
    } else {
      throw invalid(`prompt[${i}]: unknown role ${JSON.stringify((m as { role?: unknown }).role)}`, "prompt");
    }
  }
  return out;
}

/** The text of a chat message the input policy made or shortened (string or text parts). */
function textOf(m: ChatMessage): string {
  if (typeof m.content === "string") return m.content;
  if (Array.isArray(m.content))
    return m.content.map((p) => (typeof p.text === "string" ? p.text : "")).join("");
  return "";
}

/**
 * The AI SDK prompt for the messages tokenfuse admitted: every message kept as it was sent (the
 * same object), a shortened one (`truncate`) as its own message with the cut text, and a summary
 * (`summarize`) as a system message.
 */
export function promptOf(admitted: readonly ChatMessage[]): AiSdkMessage[] {
  const out: AiSdkMessage[] = [];
  let last = -1;
  for (const m of admitted) {
    const origin = (m as Marked)[ORIGIN];
    if (origin && origin.made === m) {
      // A message made of several chat messages (tool results) is sent once.
      if (origin.at !== last) out.push(origin.message);
      last = origin.at;
      continue;
    }
    last = -1;
    if (origin && (origin.message.role === "user" || origin.message.role === "assistant")) {
      // Shortened by `truncate` (only a text message without tool calls is): its first text part
      // keeps its provider options, with the cut text.
      const first = (origin.message.content as PromptPart[]).find((p) => p.type === "text") as
        | TextLikePart
        | undefined;
      out.push({
        ...origin.message,
        content: [{ ...(first ?? { type: "text" }), type: "text", text: textOf(m) }],
      });
    } else if (m.role === "system") {
      out.push({ role: "system", content: textOf(m) });
    } else {
      out.push({
        role: m.role === "assistant" ? "assistant" : "user",
        content: [{ type: "text", text: textOf(m) }],
      });
    }
  }
  return out;
}

/** The definitions billed as prompt: function tools, and a JSON response format's schema. */
function billedOf(params: AiSdkCallOptions): ToolDefinition[] | undefined {
  const out: ToolDefinition[] = [];
  for (const t of params.tools ?? []) {
    // Provider-defined tools (web search…) are priced by the provider, not counted as prompt here.
    if (t?.type !== "function") continue;
    out.push({
      type: "function",
      function: {
        name: t.name,
        ...(t.description !== undefined ? { description: t.description } : {}),
        ...(t.inputSchema !== undefined ? { parameters: t.inputSchema as Record<string, unknown> } : {}),
      },
    });
  }
  const rf = params.responseFormat;
  if (rf?.type === "json" && rf.schema !== undefined) {
    // As the OpenAI wrapper counts a json_schema response format (an estimate: the whole object's JSON).
    out.push({
      type: "response_format",
      function: { name: "response_format", parameters: { type: "json_schema", json_schema: rf } },
    });
  }
  return out.length > 0 ? out : undefined;
}

/** The AI SDK's usage in OpenAI's shape, or undefined when it does not say both totals. */
export function openAIUsageOf(usage: unknown): OpenAIUsage | undefined {
  const u = usage as AiSdkUsage | undefined;
  const input = u?.inputTokens?.total;
  const output = u?.outputTokens?.total;
  if (input === undefined || output === undefined) return undefined;
  const out: OpenAIUsage = { prompt_tokens: input, completion_tokens: output };
  const cached = u?.inputTokens?.cacheRead;
  if (cached !== undefined) out.prompt_tokens_details = { cached_tokens: cached };
  const reasoning = u?.outputTokens?.reasoning;
  if (reasoning !== undefined) out.completion_tokens_details = { reasoning_tokens: reasoning };
  return out;
}

function metadataOf(a: Admission): TokenfuseCallMetadata {
  return {
    requestId: a.id,
    feature: a.feature,
    model: a.model,
    decision: a.decision,
    inputTokens: a.inputTokens,
    trimmedMessages: a.trimmedMessages,
    truncatedMessages: a.truncatedMessages,
    summarized: a.summarized,
    storeStatus: a.storeStatus,
  };
}

function withMetadata<T extends { providerMetadata?: Record<string, Record<string, unknown>> }>(
  x: T,
  a: Admission,
): T {
  return { ...x, providerMetadata: { ...x.providerMetadata, tokenfuse: metadataOf(a) } };
}

/** `providerOptions` without tokenfuse's own entry (the provider has no use for it). */
function withoutOurs(po: ProviderOptions | undefined): ProviderOptions | undefined {
  if (!po || !("tokenfuse" in po)) return po;
  const { tokenfuse: _ours, ...rest } = po;
  return rest;
}

function stringField(source: string, o: Record<string, unknown> | undefined, k: string): string | undefined {
  const v = o?.[k];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "string" || v === "") throw invalid(`${source}.${k} must be a non-empty string`);
  return v;
}

/**
 * Vercel AI SDK middleware that puts tokenfuse in front of a language model (SPEC §9):
 *
 *     const model = wrapLanguageModel({
 *       model: openai.chat("gpt-4o-mini"),
 *       middleware: tokenfuseMiddleware(tf, { feature: "chat" }),
 *     });
 *     await generateText({ model, prompt, providerOptions: { tokenfuse: { user: "u1" } } });
 *
 * Every model call (each step of a multi-step call too) is admitted before it is sent: refusals
 * throw `TokenBudgetError` and nothing is sent; the prompt is trimmed as the feature's `on_exceed`
 * says and `maxOutputTokens` capped. The call is settled from the usage the provider reports; a
 * call that fails releases its reservation; a stream stopped early is charged the output that
 * passed. `providerMetadata.tokenfuse` of the result (of the finish part, when streaming) says what
 * tokenfuse decided.
 */
export function tokenfuseMiddleware(
  tf: Tokenfuse,
  options: TokenfuseMiddlewareOptions = {},
): TokenfuseLanguageModelMiddleware {
  const admissions = new WeakMap<object, Admission>();
  const settlement = wrapperSettlement(options.logger);
  const settleFailed = settlement.failed;
  /**
   * A failed provider call: charged when the provider answered (a 2xx whose body then failed:
   * `charge`), else released (refused, or no answer at all). Never throws: the provider's error is
   * what the caller sees.
   */
  const settleFailure = async (a: Admission, e: unknown, charge: OpenAIUsage) => {
    const answered = providerAnswered(e);
    await a
      .settle(
        answered ? charge : null,
        answered ? { estimated: "response failed after the provider answered" } : undefined,
      )
      .catch(settleFailed(a));
  };

  const contextOf = (params: AiSdkCallOptions, modelId: string) => {
    const ours = params.providerOptions?.tokenfuse;
    const fromCall = options.context?.({ params, modelId }) ?? {};
    const pick = (k: keyof AiSdkCallContext) =>
      stringField("providerOptions.tokenfuse", ours, k) ??
      stringField("context()", fromCall as Record<string, unknown>, k) ??
      stringField("tokenfuseMiddleware options", options as Record<string, unknown>, k);
    const ctx = {
      feature: pick("feature"),
      user: pick("user"),
      tier: pick("tier"),
      requestId: pick("requestId"),
    };
    for (const k of ["feature", "user"] as const) {
      if (ctx[k] === undefined) {
        throw invalid(
          `no ${k} for this call: set it in the call's providerOptions.tokenfuse.${k}, the middleware's context(), or its ${k} option`,
        );
      }
    }
    return ctx as { feature: string; user: string; tier?: string; requestId?: string };
  };

  /** The admission of a call's params; refuses a call whose params were not admitted. */
  const admissionOf = (params: AiSdkCallOptions): Admission => {
    const a = admissions.get(params);
    if (!a) {
      throw new Error(
        "tokenfuse middleware: this call's parameters were not admitted by its transformParams (was the middleware object used partly, or its params replaced?); refusing to call the model unbudgeted",
      );
    }
    admissions.delete(params);
    return a;
  };

  /** The model to call: the wrapped one, or the one the feature assigns. */
  const modelFor = (a: Admission, wrapped: AiSdkLanguageModel): AiSdkLanguageModel | undefined =>
    a.model === wrapped.modelId ? undefined : options.resolveModel?.(a.model);

  return {
    specificationVersion: "v4",

    async transformParams({ params, model }) {
      const ctx = contextOf(params, model.modelId);
      const messages = chatMessagesOf(params.prompt);
      const a = await tf.admit({
        feature: ctx.feature,
        user: ctx.user,
        tier: ctx.tier,
        requestId: ctx.requestId,
        messages,
        model: model.modelId,
        maxTokens: params.maxOutputTokens,
        tools: billedOf(params),
      });
      if (a.model !== model.modelId && !options.resolveModel) {
        await a.settle(); // nothing was sent
        throw invalid(
          `feature "${a.feature}" assigns model "${a.model}", and the wrapped model is "${model.modelId}": pass resolveModel to tokenfuseMiddleware, wrap "${a.model}", or list "${model.modelId}" in the feature's allowed_models`,
          "model",
        );
      }
      // promptOf makes messages of the AI SDK's prompt format (the same object where kept).
      const out: typeof params = {
        ...params,
        prompt: a.decision === "allow" ? params.prompt : (promptOf(a.messages) as typeof params.prompt),
        maxOutputTokens: a.maxOutputTokens,
      };
      const po = withoutOurs(params.providerOptions);
      if (po === undefined) delete out.providerOptions;
      else out.providerOptions = po;
      admissions.set(out, a);
      return out;
    },

    async wrapGenerate({ doGenerate, params, model }) {
      const a = admissionOf(params);
      let res: GenerateResult;
      try {
        const other = modelFor(a, model);
        res = (await (other ? other.doGenerate(params) : doGenerate())) as GenerateResult;
      } catch (e) {
        // An answer cut mid-body was generated (and billed) whole, size unknown: the cap.
        await settleFailure(a, e, fullCapEstimate(a));
        throw e;
      }
      const reported = settlement.usable(openAIUsageOf(res?.usage), a, true);
      // Logged if it fails, and the paid answer returned (as in the gateway and guardOpenAI).
      await a
        .settle(
          reported ?? fullCapEstimate(a),
          reported ? undefined : { estimated: "no chargeable usage reported" },
        )
        .catch(settleFailed(a));
      return withMetadata(res, a);
    },

    async wrapStream({ doStream, params, model }) {
      const a = admissionOf(params);
      let res: StreamResult;
      try {
        const other = modelFor(a, model);
        res = (await (other ? other.doStream(params) : doStream())) as StreamResult;
      } catch (e) {
        // Providers read ahead to the first output chunk inside doStream: a stream cut before it
        // fails here with the 2xx status (answered: the input is charged). An abort by the caller
        // fails here too, without a status, whether or not the provider had answered (a reasoning
        // model thinking before its first output): charged the input, flagged, since the provider
        // may well have processed it; a release would let a caller who always aborts before the
        // first output spend input for free.
        if (params.abortSignal?.aborted === true) {
          await a
            .settle(passedOutputEstimate(a, []), { estimated: "aborted before any output" })
            .catch(settleFailed(a));
        } else await settleFailure(a, e, passedOutputEstimate(a, []));
        throw e;
      }
      const reader = res.stream.getReader();
      const generated: string[] = [];
      /** Tool calls whose input arrived as deltas (their final tool-call part is not counted again). */
      const streamedInputs = new Set<string>();
      /** A finish part arrived that says the generation completed (not an error or interruption). */
      let finished = false;
      let failed = false;
      let usage: OpenAIUsage | undefined;
      let settled: Promise<unknown> | undefined;
      /**
       * Settles once: at a clean end from the finish part's usage (else the cap); after an error,
       * an interruption or a cancel from that usage, else the input and the output that passed.
       * The provider answered (its stream began), so it is never a release.
       */
      const settle = (early: boolean): Promise<unknown> => {
        settled ??= (async () => {
          if (!early && finished && !failed) {
            const reported = settlement.usable(usage, a, true);
            return a.settle(
              reported ?? fullCapEstimate(a),
              reported ? undefined : { estimated: "no chargeable usage reported" },
            );
          }
          const reported = settlement.usable(usage, a, false);
          return a.settle(
            reported ?? passedOutputEstimate(a, [generated]),
            reported ? undefined : { estimated: "stream stopped early" },
          );
        })();
        return settled;
      };
      /** Reads a part for settlement (what was generated, the finish and its usage); returns it to pass on. */
      const observe = (part: StreamPart): StreamPart => {
        switch (part.type) {
          case "text-delta":
          case "reasoning-delta":
            if (typeof part.delta === "string") generated.push(part.delta);
            break;
          case "tool-input-start":
            if (typeof part.toolName === "string") generated.push(part.toolName);
            if (typeof part.id === "string") streamedInputs.add(part.id);
            break;
          case "tool-input-delta":
            if (typeof part.delta === "string") generated.push(part.delta);
            break;
          case "tool-call":
            if (typeof part.toolCallId !== "string" || !streamedInputs.has(part.toolCallId)) {
              if (typeof part.toolName === "string") generated.push(part.toolName);
              generated.push(typeof part.input === "string" ? part.input : jsonText(part.input));
            }
            break;
          case "error":
            failed = true;
            break;
          case "finish": {
            finished = true;
            const reason = (part.finishReason as { unified?: unknown } | undefined)?.unified;
            if (reason === "error" || reason === "interrupted") failed = true;
            usage = openAIUsageOf(part.usage);
            return withMetadata(part, a);
          }
        }
        return part;
      };
      /** Set when the caller cancelled the stream: nothing more is handed on. */
      let cancelled = false;
      /**
       * The provider's stream is read to its end by this loop, not by the caller's reads, and is
       * settled there. Why: the AI SDK's streamText splits the model's stream in two; a caller that
       * stops reading its textStream (a break, a throw) cancels only its half, and the other half is
       * never read: a stream read on demand then neither ends nor is cancelled, its reservation held
       * until it expires and then released with nothing charged for what the provider generated.
       * Read ahead, the parts wait in this stream's queue until read; that queue is bounded by the
       * answer's size, which the output cap bounds. A caller's cancel still stops the provider.
       * At the end the settlement is applied before the stream closes (or errors), so a caller that
       * finished reading sees it in the budget.
       */
      const pump = async (controller: ReadableStreamDefaultController<StreamPart>) => {
        for (;;) {
          let next: Awaited<ReturnType<typeof reader.read>>;
          try {
            next = await reader.read();
          } catch (e) {
            await settle(true).catch(settleFailed(a));
            if (!cancelled) controller.error(e);
            return;
          }
          if (next.done) {
            // A stream that ends without its finish part stopped early (no usage to trust).
            await settle(!finished).catch(settleFailed(a));
            if (!cancelled) controller.close();
            return;
          }
          const part = observe(next.value);
          if (!cancelled) controller.enqueue(part);
        }
      };
      const stream = new ReadableStream<StreamPart>({
        start(controller) {
          void pump(controller).catch((e: unknown) => {
            // Not expected (the loop catches the provider's failures): settle, and say it.
            void settle(true).catch(settleFailed(a));
            if (!cancelled) controller.error(e);
          });
        },
        async cancel(reason) {
          cancelled = true;
          // The provider's stream first: it must stop generating whatever the store does.
          try {
            await reader.cancel(reason);
          } finally {
            await settle(true).catch(settleFailed(a));
          }
        },
      });
      return { ...res, stream };
    },
  };
}
