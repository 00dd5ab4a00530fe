import { TokenBudgetError } from "../core/errors.js";
import { billedDefinitions, validateAdmitRequest } from "../core/request.js";
import type { ChatMessage, ToolDefinition } from "../core/types.js";
import { tokenizerForModel } from "../tokenizers/index.js";
import { CliError, type CliIo, parseCliArgs, readInput } from "./io.js";

/** What `count` decided the input is. */
export type CountInput =
  | {
      kind: "chat";
      messages: ChatMessage[];
      /**
       * Every definition the provider bills besides the messages, as the gateway counts them
       * (`billedDefinitions`): `tools`, legacy `functions`, a `response_format` JSON schema.
       */
      tools?: ToolDefinition[];
      /** Why the body's billed definitions are unusable (e.g. a malformed `functions`). */
      invalid?: string;
      /** The request body's own `model`, when it names one. */
      model?: string;
    }
  | {
      kind: "text";
      text: string;
      /** Why input that looks like JSON was counted as text (said on stderr; stdout is the count). */
      note?: string;
    };

function isMessageArray(v: unknown): v is ChatMessage[] {
  return (
    Array.isArray(v) &&
    v.length > 0 &&
    v.every(
      (m) =>
        typeof m === "object" &&
        m !== null &&
        !Array.isArray(m) &&
        typeof (m as { role?: unknown }).role === "string",
    )
  );
}

/**
 * SPEC §8: a JSON object with a `messages` array, or a JSON array whose items all have a `role`, is a
 * chat request; anything else (or `--text`) is plain text.
 */
export function classifyCountInput(raw: string, forceText: boolean): CountInput {
  if (forceText) return { kind: "text", text: raw };
  const trimmed = raw.trimStart();
  if (!trimmed.startsWith("{") && !trimmed.startsWith("[")) return { kind: "text", text: raw };
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    return { kind: "text", text: raw, note: "the input starts like JSON but does not parse as JSON" };
  }
  if (isMessageArray(parsed)) return { kind: "chat", messages: parsed };
  if (typeof parsed === "object" && parsed !== null && !Array.isArray(parsed)) {
    const o = parsed as Record<string, unknown>;
    if (Array.isArray(o.messages)) {
      // The gateway's one definition of what is billed, so that count prints its input count.
      const tools = billedDefinitions(o);
      const messages = o.messages as ChatMessage[];
      const model = typeof o.model === "string" && o.model !== "" ? { model: o.model } : {};
      if (tools instanceof TokenBudgetError)
        return { kind: "chat", messages, invalid: tools.message, ...model };
      return { kind: "chat", messages, ...(tools ? { tools } : {}), ...model };
    }
  }
  return {
    kind: "text",
    text: raw,
    note: "the JSON is not a chat request (an object with a messages array, or an array of messages)",
  };
}

/** The model `count` counts for when neither `--model` nor the request names one. */
const DEFAULT_COUNT_MODEL = "gpt-4o";

/** `tokenfuse count [--model M] [--text] [--json] [FILE|-]` */
export async function runCount(args: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseCliArgs(
    args,
    { model: { type: "string" }, text: { type: "boolean" }, json: { type: "boolean" } },
    true,
  );
  if (positionals.length > 1) throw new CliError("count takes at most one FILE (or - for standard input)");
  if (values.model === "") throw new CliError("--model needs a model name, got an empty value");
  const raw = await readInput(positionals[0], io);
  const input = classifyCountInput(raw, values.text === true);
  // --model, else the request's own `model` (what the provider will count with), else gpt-4o.
  const model =
    (values.model as string | undefined) ??
    (input.kind === "chat" ? input.model : undefined) ??
    DEFAULT_COUNT_MODEL;
  const tokenizer = tokenizerForModel(model);
  let tokens: number;
  let exact = tokenizer.exact;
  if (input.kind === "chat") {
    if (input.invalid !== undefined) throw new CliError(`not a valid chat request: ${input.invalid}`);
    const err = validateAdmitRequest({
      feature: "count",
      user: "cli",
      messages: input.messages,
      tools: input.tools,
    });
    if (err) throw new CliError(`not a valid chat request: ${err.message}`);
    const counted = tokenizer.countChatDetailed(input.messages, input.tools);
    tokens = counted.tokens;
    exact = counted.exact;
  } else {
    tokens = tokenizer.countText(input.text);
    // SPEC §8: such input is counted as text; said on stderr so a typo in a request file is seen.
    if (input.note !== undefined) io.err(`note: counted as plain text: ${input.note} (--text to mean it)\n`);
  }
  if (values.json) {
    const details = {
      model,
      encoding: tokenizer.encoding,
      exact,
      kind: input.kind,
      tokens,
      ...(input.kind === "chat"
        ? { messages: input.messages.length, tools: input.tools?.length ?? 0 }
        : { characters: input.text.length, bytes: Buffer.byteLength(input.text, "utf8") }),
    };
    io.out(`${JSON.stringify(details, null, 2)}\n`);
  } else {
    io.out(`${tokens}\n`);
  }
  return 0;
}
