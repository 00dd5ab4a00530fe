import { spawn } from "node:child_process";
import { join } from "node:path";
import { expect, it } from "vitest";

// A library app with `usage_log: stdout` that prints its own lines too (console.log), read by a
// reader that stalls a while: every line the reader gets is whole — a usage log line or one of the
// app's — and none is missing. (The log used to write fd 1 from libuv's thread pool beside
// process.stdout: lines were cut by the app's writes, and a stalled reader blocked a pool thread.)

const N = 6000;
const child = `
import { createTokenfuse } from ${JSON.stringify(join(process.cwd(), "dist/index.js"))};
const tf = createTokenfuse({
  config: {
    features: { chat: { model: "gpt-4o", max_input: 1000, max_output: 50, on_exceed: "trim" } },
    tiers: { free: { daily_tokens: 1e12, tokens_per_minute: 1e12 } },
    default_tier: "free",
    usage_log: "stdout",
  },
});
const msg = [{ role: "user", content: "hello there" }];
for (let i = 0; i < ${N}; i++) {
  const a = await tf.admit({ feature: "chat", user: "user-" + (i % 7), messages: msg });
  await a.settle({ prompt_tokens: 10, completion_tokens: 5 });
  if (i % 50 === 0) console.log("APP: progress " + i + " " + "x".repeat(3000));
  if (i % 500 === 0) await new Promise((r) => setTimeout(r, 5));
}
await tf.close();
`;

it("stdout carries whole lines only, the app's and the log's, none lost, even with a stalled reader", async () => {
  const p = spawn(process.execPath, ["--input-type=module", "-e", child], {
    stdio: ["ignore", "pipe", "ignore"],
  });
  const chunks: Buffer[] = [];
  p.stdout.on("data", (d: Buffer) => chunks.push(d));
  p.stdout.pause(); // the reader stalls: the pipe fills
  await new Promise((r) => setTimeout(r, 1500));
  p.stdout.resume();
  const code = await new Promise<number | null>((resolve) => p.on("exit", resolve));
  expect(code).toBe(0);
  const lines = Buffer.concat(chunks).toString("utf8").split("\n").filter(Boolean);
  let app = 0;
  let json = 0;
  const torn: string[] = [];
  for (const l of lines) {
    if (/^APP: progress \d+ x+$/.test(l)) app++;
    else {
      try {
        JSON.parse(l);
        json++;
      } catch {
        torn.push(l.slice(0, 120));
      }
    }
  }
  expect(torn).toEqual([]);
  expect(app).toBe(N / 50);
  expect(json).toBe(2 * N);
}, 60_000);
