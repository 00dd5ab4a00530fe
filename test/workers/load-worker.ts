/**
 * A worker process for the multi-process tests: runs the tokenfuse library against a shared Redis,
 * sends a bounded number of requests with bounded concurrency, settles each with a random actual
 * usage below its cap, and prints its own ledger as one JSON line on stdout.
 * Input: one JSON object in the TF_WORKER env var (see WorkerInput).
 * A settlement that does not charge exactly what the worker reported (tokens, input, output) counts
 * as an error (`refused["error:…"]`), which the tests reject.
 */
import { silentLogger } from "../../src/core/logger.js";
import { createRedisStore } from "../../src/stores/redis/redis-store.js";
import { createTokenfuse } from "../../src/tokenfuse.js";

interface WorkerInput {
  redisUrl: string;
  keyPrefix: string;
  nowMs: number;
  requests: number;
  concurrency: number;
  users: string[];
  /** user → tier, for users not of the default tier. */
  userTiers?: Record<string, string>;
  features: string[];
  seed: number;
  config: Record<string, unknown>;
}

const input = JSON.parse(process.env.TF_WORKER ?? "{}") as WorkerInput;
let x = input.seed >>> 0 || 1;
const rand = () => {
  x ^= x << 13;
  x >>>= 0;
  x ^= x >>> 17;
  x ^= x << 5;
  x >>>= 0;
  return x / 0x1_0000_0000;
};

const store = createRedisStore({ url: input.redisUrl, keyPrefix: input.keyPrefix, commandTimeoutMs: 5000 });
const tf = createTokenfuse({
  config: input.config,
  store,
  logger: silentLogger,
  clock: { nowMs: () => input.nowMs },
});

const charged: Record<string, number> = {}; // "user|feature" → tokens settled
const spend: Record<
  string,
  { tokens: number; input: number; output: number; cost: number; requests: number }
> = {};
const refused: Record<string, number> = {};
let admitted = 0;
let next = 0;

async function one(i: number): Promise<void> {
  const user = input.users[Math.floor(rand() * input.users.length)] as string;
  const feature = input.features[Math.floor(rand() * input.features.length)] as string;
  const words = 20 + Math.floor(rand() * 200);
  const messages = [
    { role: "system", content: "You are terse." },
    { role: "user", content: `req ${process.pid}-${i} ${"token budget ".repeat(words)}` },
  ];
  try {
    const tier = input.userTiers?.[user];
    const a = await tf.admit({ feature, user, tier, messages, requestId: `${process.pid}-${i}` });
    admitted++;
    // Hold the reservation briefly so many are in flight at once across processes.
    await new Promise((r) => setTimeout(r, Math.floor(rand() * 5)));
    const out = Math.floor(rand() * (a.maxOutputTokens + 1));
    const s = await a.settle({ prompt_tokens: a.inputTokens, completion_tokens: out });
    if (s.status !== "settled") throw new Error(`unexpected settle status ${s.status}`);
    const tokens = a.inputTokens + out;
    if (s.chargedTokens !== tokens || s.usage?.inputTokens !== a.inputTokens || s.usage?.outputTokens !== out)
      throw new Error(`settlement charged ${JSON.stringify(s)}, not ${a.inputTokens} + ${out}`);
    const k = `${user}|${feature}`;
    charged[k] = (charged[k] ?? 0) + tokens;
    const sp = spend[k] ?? { tokens: 0, input: 0, output: 0, cost: 0, requests: 0 };
    spend[k] = sp;
    sp.tokens += tokens;
    sp.input += a.inputTokens;
    sp.output += out;
    sp.cost += s.costNanoUsd ?? 0;
    sp.requests++;
  } catch (e) {
    const code = (e as { code?: string }).code ?? `error:${(e as Error).message}`;
    refused[code] = (refused[code] ?? 0) + 1;
  }
}

async function lane(): Promise<void> {
  while (next < input.requests) await one(next++);
}

await Promise.all(Array.from({ length: input.concurrency }, lane));
await tf.close();
process.stdout.write(`${JSON.stringify({ admitted, refused, charged, spend })}\n`);
