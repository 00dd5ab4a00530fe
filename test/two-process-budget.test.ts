import { spawn } from "node:child_process";
import { join } from "node:path";
import { expect, inject, it } from "vitest";
import { silentLogger } from "../src/core/logger.js";
import { createTokenfuse } from "../src/tokenfuse.js";
import { testKeyPrefix } from "./helpers/redis-keys.js";

// Issue 3's acceptance: two processes using the library against one Redis see one budget. A user with
// 10 000 tokens a day spends 10 000 in total across both, not 10 000 in each.

const messages = [{ role: "user", content: "hi" }];

function configFor(keyPrefix: string, maxOutput: number) {
  return {
    store: { url: inject("redisUrl"), key_prefix: keyPrefix },
    features: { chat: { model: "gpt-4o", max_input: 1000, max_output: maxOutput, on_exceed: "reject" } },
    tiers: { free: { daily_tokens: 10_000 } },
    default_tier: "free",
  };
}

it("two library processes on one Redis share one daily budget: 10 000 in total, exactly", async () => {
  // Each call reserves and is charged exactly 1 000 tokens (its input + an output of the whole cap).
  const probe = createTokenfuse({
    config: { ...configFor("unused", 10), store: "memory" },
    logger: silentLogger,
  });
  const input = (await probe.admit({ feature: "chat", user: "probe", messages })).inputTokens;
  await probe.close();
  const prefix = testKeyPrefix("two-proc");
  const config = configFor(prefix, 1000 - input);
  const child = `
import { createTokenfuse } from ${JSON.stringify(join(process.cwd(), "dist/index.js"))};
const tf = createTokenfuse({ config: ${JSON.stringify(config)}, logger: { info() {}, warn() {}, error() {} } });
const messages = ${JSON.stringify(messages)};
let admitted = 0;
let refusal = "";
for (;;) {
  try {
    const a = await tf.admit({ feature: "chat", user: "alice", messages });
    await a.settle({ prompt_tokens: a.inputTokens, completion_tokens: a.maxOutputTokens });
    admitted++;
  } catch (e) {
    refusal = e.code ?? String(e);
    break;
  }
}
await tf.close();
process.stdout.write(JSON.stringify({ admitted, refusal }));
`;
  const run = () =>
    new Promise<{ admitted: number; refusal: string }>((resolve, reject) => {
      const p = spawn(process.execPath, ["--input-type=module", "-e", child], {
        stdio: ["ignore", "pipe", "inherit"],
      });
      let out = "";
      p.stdout.on("data", (d: Buffer) => {
        out += d.toString("utf8");
      });
      const timer = setTimeout(() => p.kill("SIGKILL"), 20_000);
      p.on("exit", (code) => {
        clearTimeout(timer);
        if (code === 0) resolve(JSON.parse(out));
        else reject(new Error(`a process exited with ${code}: ${out}`));
      });
    });
  const results = await Promise.all([run(), run()]);
  expect(results.map((r) => r.refusal)).toEqual(["user_budget_exceeded", "user_budget_exceeded"]);
  // Ten 1 000-token calls in all, however the two processes shared them.
  expect(results[0].admitted + results[1].admitted).toBe(10);
  const tf = createTokenfuse({ config, logger: silentLogger });
  try {
    const day = (await tf.remaining({ user: "alice" })).user.day;
    expect([day.used, day.reserved, day.remaining]).toEqual([10_000, 0, 0]);
  } finally {
    await tf.close();
  }
}, 40_000);
