/**
 * OpenAI's chat-completions wire format, as the mock writes it: the JSON completion and the SSE
 * chunks, with OpenAI's field order (chunks: id, object, created, model, system_fingerprint, choices,
 * usage), so that the mock's streams have the structure of the recorded fixtures in test/fixtures/sse.
 * Chunks are assembled from pre-serialised parts; only the varying values are serialised per chunk.
 */

/** What every chunk and the completion of one response share. */
export interface CompletionIdentity {
  id: string;
  /** Unix seconds. */
  created: number;
  model: string;
  systemFingerprint: string;
}

/** Why a choice ended. */
export type MockFinishReason = "stop" | "length";

/** OpenAI's usage object with every detail field OpenAI sends (the mock never caches or reasons). */
export interface MockUsage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  prompt_tokens_details: { cached_tokens: number; audio_tokens: number };
  completion_tokens_details: {
    reasoning_tokens: number;
    audio_tokens: number;
    accepted_prediction_tokens: number;
    rejected_prediction_tokens: number;
  };
}

/** The SSE line that ends an OpenAI stream. */
export const SSE_DONE = "data: [DONE]\n\n";

/** The usage object for `promptTokens` and `completionTokens` (total over choices). */
export function mockUsage(promptTokens: number, completionTokens: number): MockUsage {
  return {
    prompt_tokens: promptTokens,
    completion_tokens: completionTokens,
    total_tokens: promptTokens + completionTokens,
    prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
    completion_tokens_details: {
      reasoning_tokens: 0,
      audio_tokens: 0,
      accepted_prediction_tokens: 0,
      rejected_prediction_tokens: 0,
    },
  };
}

/** One choice of a non-streaming completion. */
export interface MockChoice {
  content: string;
  finishReason: MockFinishReason;
}

/** Serialised `choices` arrays by the caller's key, for {@link completionBody} (bounded). */
const choicesJson = new Map<string, string>();
const CHOICES_CACHE_MAX = 256;

/**
 * A non-streaming completion body, in OpenAI's field order (id, object, created, model, choices,
 * usage, system_fingerprint); `usage` undefined leaves the field out (the `no-usage` fault).
 * `choicesKey`, when given, names the choices (the caller promises: same key, same choices) so
 * their serialised form is reused. Why: the mock's answers repeat (the same deterministic text for
 * a length), and serialising the whole object was the largest cost of a mock answer under load.
 * The bytes are exactly `JSON.stringify` of the whole object (tested).
 */
export function completionBody(
  identity: CompletionIdentity,
  choices: readonly MockChoice[],
  usage: MockUsage | undefined,
  choicesKey?: string,
): string {
  let part = choicesKey === undefined ? undefined : choicesJson.get(choicesKey);
  if (part === undefined) {
    part = JSON.stringify(
      choices.map((c, index) => ({
        index,
        message: { role: "assistant", content: c.content, refusal: null, annotations: [] },
        logprobs: null,
        finish_reason: c.finishReason,
      })),
    );
    if (choicesKey !== undefined) {
      if (choicesJson.size >= CHOICES_CACHE_MAX) choicesJson.clear();
      choicesJson.set(choicesKey, part);
    }
  }
  const u = usage === undefined ? "" : `,"usage":${JSON.stringify(usage)}`;
  return `{"id":${JSON.stringify(identity.id)},"object":"chat.completion","created":${JSON.stringify(identity.created)},"model":${JSON.stringify(identity.model)},"choices":${part}${u},"system_fingerprint":${JSON.stringify(identity.systemFingerprint)}}`;
}

/** Builds the SSE events (`data: <json>\n\n`) of one streamed response. */
export interface ChunkWriter {
  /** The first chunk of a choice: `delta: {role: "assistant", content: "", refusal: null}`. */
  role(index: number): string;
  /** A content chunk. */
  content(index: number, text: string): string;
  /** The chunk that ends a choice: empty delta and its `finish_reason`. */
  finish(index: number, reason: MockFinishReason): string;
  /** The usage chunk: `choices: []` and `usage`. */
  usage(usage: MockUsage): string;
}

/**
 * A chunk writer for one response. With `usageField` every chunk carries `"usage":null` (OpenAI does
 * so when `stream_options.include_usage` is set) and the usage chunk is available; without it chunks
 * have no `usage` field at all.
 */
export function createChunkWriter(identity: CompletionIdentity, usageField: boolean): ChunkWriter {
  const head =
    `data: {"id":${JSON.stringify(identity.id)},"object":"chat.completion.chunk",` +
    `"created":${identity.created},"model":${JSON.stringify(identity.model)},` +
    `"system_fingerprint":${JSON.stringify(identity.systemFingerprint)},"choices":[`;
  const tail = usageField ? `],"usage":null}\n\n` : "]}\n\n";
  return {
    role: (index) =>
      `${head}{"index":${index},"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}${tail}`,
    content: (index, text) =>
      `${head}{"index":${index},"delta":{"content":${JSON.stringify(text)}},"logprobs":null,"finish_reason":null}${tail}`,
    finish: (index, reason) =>
      `${head}{"index":${index},"delta":{},"logprobs":null,"finish_reason":"${reason}"}${tail}`,
    usage: (usage) => `${head}],"usage":${JSON.stringify(usage)}}\n\n`,
  };
}
