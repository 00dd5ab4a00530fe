// Every usage log line has an id of its own, refusals of a repeated requestId included.
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect, it } from "vitest";
import { silentLogger } from "../src/core/logger.js";
import { createMemoryStore } from "../src/stores/memory-store.js";
import { createTokenfuse } from "../src/tokenfuse.js";

it("every line's id is unique even when requestId repeats", async () => {
  const path = join(mkdtempSync(join(tmpdir(), "tf-rev-")), "u.jsonl");
  const tf = createTokenfuse({
    config: {
      features: { chat: { model: "gpt-4o", max_input: 1000, max_output: 600, on_exceed: "trim" } },
      tiers: { free: { daily_tokens: 100 } },
      default_tier: "free",
      usage_log: { path },
    },
    logger: silentLogger,
    store: createMemoryStore(),
  });
  const msg = [{ role: "user" as const, content: "hi" }];
  for (let i = 0; i < 2; i++)
    await tf.admit({ feature: "chat", user: "u", messages: msg, requestId: "conv-1" }).catch(() => {});
  await tf.close();
  const ids = readFileSync(path, "utf8")
    .trimEnd()
    .split("\n")
    .map((l) => JSON.parse(l).id);
  expect(new Set(ids).size).toBe(ids.length);
});
