/**
 * The mock's incremental bodies: the SSE stream of a streaming completion, and the cut JSON body of a
 * non-streaming one under a mid-stream fault. Each generator records in the ledger only what it has
 * handed to the transport, and ends the ledger line with how it ended.
 */

import { waitForAbort } from "./abortable-wait.js";
import type { MockLedgerEntry, MockRequestStatus } from "./mock-ledger.js";
import { MockStreamResetError } from "./mock-response.js";
import { mockTextSlice } from "./mock-text.js";
import { type ChunkWriter, type MockFinishReason, type MockUsage, SSE_DONE } from "./mock-wire.js";

/** A fault that fires after some output. */
export type MidStreamFault = "reset-mid-stream" | "stall-mid-stream";

/** What one streamed response contains. */
export interface MockStreamPlan {
  writer: ChunkWriter;
  /** Number of choices (`n`). */
  choices: number;
  /** Completion tokens of each choice. */
  tokensPerChoice: number;
  finishReason: MockFinishReason;
  /** Tokens per content chunk (≥ 1). */
  chunkTokens: number;
  /** The usage chunk's usage; undefined sends no usage chunk. */
  usage: MockUsage | undefined;
  fault: MidStreamFault | undefined;
  /** Content chunks (over all choices) sent before the fault fires. */
  faultAfterChunks: number;
}

/** How a stream runs. */
export interface MockStreamContext {
  entry: MockLedgerEntry;
  signal: AbortSignal;
  /** Delay before every chunk but the first, in milliseconds. */
  chunkDelayMs: number;
  sleep(ms: number, signal: AbortSignal): Promise<void>;
  /** Ends the ledger line (and whatever else the upstream tracks for the request). */
  finish(status: Exclude<MockRequestStatus, "open" | "error">): void;
}

/** Content chunks per choice for `tokens` tokens in chunks of `chunkTokens`. */
export function contentChunkCount(tokens: number, chunkTokens: number): number {
  return Math.ceil(tokens / chunkTokens);
}

function fire(fault: MidStreamFault, signal: AbortSignal): Promise<never> {
  if (fault === "reset-mid-stream") return Promise.reject(new MockStreamResetError());
  return waitForAbort(signal);
}

/**
 * The SSE stream: a role chunk per choice, content chunks round-robin over the choices, a finish
 * chunk per choice, the usage chunk when planned, then `data: [DONE]`.
 */
export async function* mockSseStream(plan: MockStreamPlan, ctx: MockStreamContext): AsyncGenerator<string> {
  const { writer, choices, tokensPerChoice, chunkTokens } = plan;
  const { entry, signal, chunkDelayMs, sleep } = ctx;
  const rounds = contentChunkCount(tokensPerChoice, chunkTokens);
  let started = false;
  let contentSent = 0;
  let status: "completed" | "aborted" | "reset" = "aborted";

  // Waits the per-chunk delay, then checks the signal. Why check right before each yield: the
  // consumer writes a yielded chunk in the same microtask run, so a chunk is counted in the ledger
  // if and only if it was handed over while the request was still alive.
  const ready = async (): Promise<void> => {
    if (started && chunkDelayMs > 0) await sleep(chunkDelayMs, signal);
    started = true;
    signal.throwIfAborted();
  };

  try {
    for (let i = 0; i < choices; i++) {
      await ready();
      yield writer.role(i);
    }
    for (let r = 0; r < rounds; r++) {
      const from = r * chunkTokens;
      const to = Math.min(from + chunkTokens, tokensPerChoice);
      for (let i = 0; i < choices; i++) {
        if (plan.fault && contentSent === plan.faultAfterChunks) await fire(plan.fault, signal);
        await ready();
        entry.addCompletion(to - from);
        contentSent++;
        yield writer.content(i, mockTextSlice(i, from, to));
      }
    }
    if (plan.fault) await fire(plan.fault, signal);
    for (let i = 0; i < choices; i++) {
      await ready();
      yield writer.finish(i, plan.finishReason);
    }
    if (plan.usage) {
      await ready();
      yield writer.usage(plan.usage);
    }
    await ready();
    yield SSE_DONE;
    status = "completed";
  } catch (error) {
    if (error instanceof MockStreamResetError) status = "reset";
    throw error;
  } finally {
    // Reached on completion, on a fault, on abort, and when the consumer stops iterating early.
    ctx.finish(status);
  }
}

/**
 * A non-streaming body cut by a mid-stream fault: the first half of the JSON, then a reset or a
 * stall until the signal aborts.
 */
export async function* cutBodyStream(
  body: string,
  fault: MidStreamFault,
  ctx: Pick<MockStreamContext, "signal" | "finish">,
): AsyncGenerator<string> {
  let status: "aborted" | "reset" = "aborted";
  try {
    ctx.signal.throwIfAborted();
    yield body.slice(0, Math.floor(body.length / 2));
    await fire(fault, ctx.signal);
  } catch (error) {
    if (error instanceof MockStreamResetError) status = "reset";
    throw error;
  } finally {
    ctx.finish(status);
  }
}
