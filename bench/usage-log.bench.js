// CPU per admit + settle with the usage log off and on (to a file), in one process, on the memory
// store: the log's own cost, without the HTTP noise of the gateway benches. CPU is process.cpuUsage(),
// so the writes done on libuv's thread pool are counted. The loop yields to the event loop every 16
// requests, as a server does, so the log writes as it would in production.
// Run: npm run build && node bench/usage-log.bench.js   (BENCH_ROUNDS, default 6)
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { silentLogger } from "../dist/core/logger.js";
import { createTokenfuse } from "../dist/tokenfuse.js";
import { table } from "./util.js";

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 6);
const dir = mkdtempSync(join(tmpdir(), "tf-bench-usage-log-"));
const config = {
  features: { chat: { model: "gpt-4o", max_input: 4000, max_output: 1000, on_exceed: "trim" } },
  tiers: { free: { daily_tokens: 1e15 } },
  default_tier: "free",
  global: { tokens_per_minute: 1e15 },
};
const logPath = join(dir, "usage.jsonl");
const targets = {
  "log off": createTokenfuse({ config, logger: silentLogger }),
  "log on (file)": createTokenfuse({
    config: { ...config, usage_log: { path: logPath } },
    logger: silentLogger,
  }),
};

const short = [
  { role: "system", content: "You are a helpful assistant." },
  { role: "user", content: "What is the capital of France? Answer in one word." },
];
// A 200-turn history re-sent with one new message: trimmed to 4 000 tokens every time.
const convo = [{ role: "system", content: "You are a helpful assistant." }];
for (let t = 0; t < 100; t++) {
  convo.push({ role: "user", content: `Question ${t}: ${"please explain the budget ".repeat(8)}` });
  convo.push({ role: "assistant", content: `Answer ${t}: ${"the budget is explained here ".repeat(10)}` });
}
const cases = [
  ["2 short messages (allow)", 40_000, (i) => ({ feature: "chat", user: `u${i % 1000}`, messages: short })],
  [
    "200-turn history + 1 new message (trim)",
    4_000,
    (i) => ({ feature: "chat", user: "hist", messages: [...convo, { role: "user", content: `new ${i}` }] }),
  ],
];
const tick = () => new Promise((resolve) => setImmediate(resolve));
const median = (xs) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const rows = [["case", ...Object.keys(targets), "log's cost"]];
for (const [name, n, request] of cases) {
  const cpu = Object.fromEntries(Object.keys(targets).map((k) => [k, []]));
  for (let round = 0; round <= ROUNDS; round++) {
    for (const [target, tf] of Object.entries(targets)) {
      const c0 = process.cpuUsage();
      for (let i = 0; i < n; i++) {
        const a = await tf.admit(request(i));
        await a.settle({ prompt_tokens: a.inputTokens, completion_tokens: 10 });
        if (i % 16 === 15) await tick();
      }
      const d = process.cpuUsage(c0);
      if (round > 0) cpu[target].push((d.user + d.system) / n); // round 0 warms up
    }
  }
  const m = Object.values(cpu).map(median);
  rows.push([name, ...m.map((x) => `${x.toFixed(1)} µs`), `+${(m[1] - m[0]).toFixed(1)} µs`]);
}
for (const tf of Object.values(targets)) await tf.close();
console.log(
  `CPU per admit + settle, median of ${ROUNDS} rounds; usage log written: ${statSync(logPath).size} bytes\n`,
);
table(rows);
rmSync(dir, { recursive: true, force: true });
