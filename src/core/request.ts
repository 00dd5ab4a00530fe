import { TokenBudgetError } from "./errors.js";
import type { ChatMessage, ToolDefinition } from "./types.js";

/** What the engine is asked to admit. */
export interface AdmitRequest {
  /** Feature name (SPEC §1). */
  feature: string;
  /** End user the request is made for. */
  user: string;
  /**
   * The user's tier; defaults to the config's `default_tier`. The caller's choice is final: run-time
   * tier overrides (admin API) apply to gateway requests only (docs/admin-api.md, "The library").
   */
  tier?: string | undefined;
  messages: ChatMessage[];
  /** Model the caller asked for; rewritten to the feature's model unless in `allowed_models`. */
  model?: string | undefined;
  /** Caller's `max_tokens`, if any. */
  maxTokens?: number | undefined;
  /** Caller's `max_completion_tokens`, if any. */
  maxCompletionTokens?: number | undefined;
  /** Number of choices; multiplies the output reservation. */
  n?: number | undefined;
  tools?: ToolDefinition[] | undefined;
  /**
   * Your id for this request, carried in logs, events and `Admission.id` (generated when absent).
   * Not a deduplication key: each `admit` is a new reservation, so reusing an id is charged again.
   */
  requestId?: string | undefined;
}

/** The OpenAI API's ceiling on `n`. */
const MAX_N = 128;

function invalid(message: string): TokenBudgetError {
  return new TokenBudgetError({ code: "invalid_request", message, scope: "request" });
}

function positiveInt(name: string, v: unknown): TokenBudgetError | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 1) {
    return invalid(`${name} must be a positive integer, got ${JSON.stringify(v)}`);
  }
  return undefined;
}

/** Roles whose messages must carry content (an assistant's may be null beside its tool calls). */
const CONTENT_REQUIRED: ReadonlySet<string> = new Set(["system", "developer", "user", "tool"]);

/**
 * Checks the parts of a request the engine relies on; everything else passes through untouched.
 * Returns the error, or undefined when the request is usable.
 */
export function validateAdmitRequest(req: AdmitRequest): TokenBudgetError | undefined {
  if (typeof req !== "object" || req === null) return invalid("request must be an object");
  if (typeof req.feature !== "string" || req.feature === "")
    return invalid("feature must be a non-empty string");
  if (typeof req.user !== "string" || req.user === "") return invalid("user must be a non-empty string");
  if (req.tier !== undefined && typeof req.tier !== "string") return invalid("tier must be a string");
  if (req.model !== undefined && req.model !== null && typeof req.model !== "string")
    return invalid("model must be a string");
  if (!Array.isArray(req.messages) || req.messages.length === 0)
    return invalid("messages must be a non-empty array");
  for (let i = 0; i < req.messages.length; i++) {
    const m = req.messages[i];
    if (typeof m !== "object" || m === null || Array.isArray(m))
      return invalid(`messages[${i}] must be an object`);
    if (typeof m.role !== "string" || m.role === "")
      return invalid(`messages[${i}].role must be a non-empty string`);
    const c = m.content;
    // Every provider refuses these without content (an assistant's may be null beside tool calls).
    if ((c === undefined || c === null) && CONTENT_REQUIRED.has(m.role))
      return invalid(`messages[${i}] (${m.role}) has no content`);
    if (c !== undefined && c !== null && typeof c !== "string") {
      if (!Array.isArray(c))
        return invalid(`messages[${i}].content must be a string, an array of parts or null`);
      for (let j = 0; j < c.length; j++) {
        const p = c[j];
        if (typeof p !== "object" || p === null || typeof p.type !== "string") {
          return invalid(`messages[${i}].content[${j}] must be an object with a string type`);
        }
        if (p.type === "text" && typeof p.text !== "string")
          return invalid(`messages[${i}].content[${j}].text must be a string`);
      }
    }
    if (m.name !== undefined && typeof m.name !== "string")
      return invalid(`messages[${i}].name must be a string`);
    if (m.tool_calls !== undefined && m.tool_calls !== null) {
      if (!Array.isArray(m.tool_calls)) return invalid(`messages[${i}].tool_calls must be an array`);
      for (let j = 0; j < m.tool_calls.length; j++) {
        const tc = m.tool_calls[j];
        if (
          typeof tc !== "object" ||
          tc === null ||
          typeof tc.function !== "object" ||
          tc.function === null
        ) {
          return invalid(`messages[${i}].tool_calls[${j}].function must be an object`);
        }
      }
    }
  }
  if (req.tools !== undefined && req.tools !== null) {
    if (!Array.isArray(req.tools)) return invalid("tools must be an array");
    for (let i = 0; i < req.tools.length; i++) {
      const t = req.tools[i];
      if (typeof t !== "object" || t === null || typeof t.function !== "object" || t.function === null) {
        return invalid(`tools[${i}].function must be an object`);
      }
    }
  }
  const capErr =
    positiveInt("max_tokens", req.maxTokens) ??
    positiveInt("max_completion_tokens", req.maxCompletionTokens) ??
    positiveInt("n", req.n);
  if (capErr) return capErr;
  if (req.n !== undefined && req.n !== null && req.n > MAX_N)
    return invalid(`n must be at most ${MAX_N}, got ${req.n}`);
  if (req.requestId !== undefined && (typeof req.requestId !== "string" || req.requestId === "")) {
    return invalid("requestId must be a non-empty string");
  }
  return undefined;
}

/**
 * The output cap to use: the feature's `max_output`, lowered to the caller's smaller value
 * (`max_tokens` or `max_completion_tokens`, whichever is smaller).
 */
export function outputCap(featureMaxOutput: number, req: AdmitRequest): number {
  let cap = featureMaxOutput;
  if (typeof req.maxTokens === "number" && req.maxTokens < cap) cap = req.maxTokens;
  if (typeof req.maxCompletionTokens === "number" && req.maxCompletionTokens < cap)
    cap = req.maxCompletionTokens;
  return cap;
}

/**
 * Every definition in an OpenAI chat-completions body that the provider bills as prompt tokens
 * besides the messages: `tools`, the legacy `functions` (counted exactly like tools), and a
 * `response_format` JSON schema (counted from its JSON text, an estimate). Why: whatever goes
 * upstream uncounted would get past `max_input` and every budget — a large `functions` array did.
 * Returns an `invalid_request` error for a `functions` that is not an array of objects.
 */
export function billedDefinitions(
  body: Record<string, unknown>,
): ToolDefinition[] | undefined | TokenBudgetError {
  const out: ToolDefinition[] = [];
  const tools = body.tools;
  if (tools !== undefined && tools !== null) {
    if (!Array.isArray(tools)) return invalid("tools must be an array");
    out.push(...(tools as ToolDefinition[]));
  }
  const functions = body.functions;
  if (functions !== undefined && functions !== null) {
    if (!Array.isArray(functions)) return invalid("functions must be an array of function definitions");
    for (let i = 0; i < functions.length; i++) {
      const f = functions[i];
      if (typeof f !== "object" || f === null || Array.isArray(f))
        return invalid(`functions[${i}] must be an object`);
      out.push({ type: "function", function: f as ToolDefinition["function"] });
    }
  }
  const rf = body.response_format;
  if (typeof rf === "object" && rf !== null && (rf as { type?: unknown }).type === "json_schema") {
    // Not a function definition: the tokenizer counts the whole object's JSON (flagged as an estimate).
    out.push({
      type: "response_format",
      function: { name: "response_format", parameters: rf as Record<string, unknown> },
    });
  }
  return out.length > 0 ? out : undefined;
}
