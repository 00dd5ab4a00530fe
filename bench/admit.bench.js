// Benchmark of admit() on the memory store: the engine's own cost per request, and the time to decide
// on a 1 MiB message of pathological content against a 4 000-token feature, for every on_exceed.
// Run: npm run build && node bench/admit.bench.js

import { silentLogger } from "../dist/core/logger.js";
import { createMemoryStore } from "../dist/stores/memory-store.js";
import { createTokenfuse } from "../dist/tokenfuse.js";
import { measure, table, us } from "./util.js";

const config = {
  features: {
    chat: { model: "gpt-4o", max_input: 4000, max_output: 1000, on_exceed: "trim" },
    rej: { model: "gpt-4o", max_input: 4000, max_output: 1000, on_exceed: "reject" },
    trunc: { model: "gpt-4o", max_input: 4000, max_output: 1000, on_exceed: "truncate" },
  },
  tiers: { free: { daily_tokens: 1e15 } },
  default_tier: "free",
  global: { tokens_per_minute: 1e15 },
};
const tf = createTokenfuse({ config, logger: silentLogger, store: createMemoryStore() });

const rows = [["case", "runs", "p50", "p99", "max"]];
async function bench(name, fn, opts) {
  const r = await measure(fn, opts);
  rows.push([name, String(r.runs), us(r.p50Us), us(r.p99Us), us(r.maxUs)]);
}

// 1. A short chat request, admit + settle (the per-request overhead of the engine).
const short = [
  { role: "system", content: "You are a helpful assistant." },
  { role: "user", content: "What is the capital of France? Answer in one word." },
];
let i = 0;
await bench("admit+settle, 2 short messages", async () => {
  const a = await tf.admit({ feature: "chat", user: `u${i++ % 1000}`, messages: short });
  await a.settle({ prompt_tokens: a.inputTokens, completion_tokens: 10 });
});

// 2. A 200-turn conversation re-sent with one new message each time (cache warm for earlier turns).
const convo = [{ role: "system", content: "You are a helpful assistant." }];
for (let t = 0; t < 100; t++) {
  convo.push({ role: "user", content: `Question ${t}: ${"please explain the budget ".repeat(8)}` });
  convo.push({ role: "assistant", content: `Answer ${t}: ${"the budget is explained here ".repeat(10)}` });
}
let turn = 0;
await bench("admit+settle, 200-turn history + 1 new message (trim)", async () => {
  const msgs = [...convo, { role: "user", content: `new question ${turn++}` }];
  const a = await tf.admit({ feature: "chat", user: "hist", messages: msgs });
  await a.settle({ prompt_tokens: a.inputTokens, completion_tokens: 10 });
});

// 3. 1 MiB messages of pathological content against a 4 000-token feature.
const MiB = 1 << 20;
// A different string every run (unique prefix), so no count cache can help.
const fresh = (blob, n) => `${n}${blob.slice(String(n).length)}`;
const b64 = Buffer.alloc(786_432, 0)
  .map((_, k) => (k * 2654435761) & 0xff)
  .toString("base64");
const blobs = {
  "repeated 'a'": "a".repeat(MiB),
  spaces: " ".repeat(MiB),
  base64: b64.slice(0, MiB),
  CJK: "的一是在不了有和人这".repeat(MiB / 30),
  emoji: "🙂👍🏽🇫🇷".repeat(MiB / 16),
  "mixed prose": "The quick brown fox jumps over the lazy dog. ".repeat(MiB / 45),
};
for (const [name, blob] of Object.entries(blobs)) {
  for (const feature of ["rej", "chat", "trunc"]) {
    let n = 0;
    await bench(
      `1 MiB ${name}, on_exceed=${config.features[feature].on_exceed}`,
      async () => {
        try {
          const a = await tf.admit({
            feature,
            user: "big",
            messages: [{ role: "user", content: fresh(blob, n++) }],
          });
          await a.settle();
        } catch (e) {
          if (e.code !== "input_budget_exceeded") throw e;
        }
      },
      { warmup: 3, minMs: 300, minRuns: 10 },
    );
  }
}

table(rows);
await tf.close();
