// No usage log line is lost without a trace: a settlement under way at close, a throwing observer.
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect, it } from "vitest";
import type { Logger } from "../src/core/logger.js";
import { silentLogger } from "../src/core/logger.js";
import { createMemoryStore } from "../src/stores/memory-store.js";
import { createTokenfuse } from "../src/tokenfuse.js";

const config = (path: string) => ({
  features: { chat: { model: "gpt-4o", max_input: 1000, max_output: 50, on_exceed: "trim" } },
  tiers: { free: { daily_tokens: 100000 } },
  default_tier: "free",
  usage_log: { path },
});
const msg = [{ role: "user" as const, content: "hello there" }];
const lines = (p: string) =>
  readFileSync(p, "utf8")
    .trimEnd()
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l));

it("a settlement in flight at close() is logged, or its loss is at least logged", async () => {
  const path = join(mkdtempSync(join(tmpdir(), "tf-rev-")), "u.jsonl");
  const said: string[] = [];
  const logger: Logger = {
    ...silentLogger,
    error: (_o: unknown, m?: string) => void said.push(String(m)),
    warn: (_o: unknown, m?: string) => void said.push(String(m)),
  } as Logger;
  const mem = createMemoryStore();
  // A store with a little latency, as Redis has.
  const store = new Proxy(mem, {
    get(t, p, r) {
      if (p === "settle")
        return (req: never) => new Promise((res) => setTimeout(res, 5)).then(() => t.settle(req));
      return Reflect.get(t, p, r);
    },
  });
  const tf = createTokenfuse({ config: config(path), logger, store });
  const a = await tf.admit({ feature: "chat", user: "u", messages: msg });
  const settled = a.settle({ prompt_tokens: 10, completion_tokens: 5 }); // in flight
  await tf.close();
  const r = await settled;
  expect(r.status).toBe("settled"); // charged in the store
  const types = lines(path).map((l) => l.type);
  expect(types.includes("settle") || said.some((m) => m.includes("usage log"))).toBe(true);
});

it("a throwing events observer does not cost the usage log its decision line", async () => {
  const path = join(mkdtempSync(join(tmpdir(), "tf-rev-")), "u.jsonl");
  const tf = createTokenfuse({
    config: config(path),
    logger: silentLogger,
    store: createMemoryStore(),
    events: {
      decision() {
        throw new Error("observer bug");
      },
      settled() {},
    },
  });
  // The request is admitted (its reservation is made): the observer's bug does not fail it.
  const a = await tf.admit({ feature: "chat", user: "u", messages: msg });
  expect(a.decision).toBe("allow");
  await a.settle({ prompt_tokens: 5, completion_tokens: 5 });
  await tf.close();
  expect(lines(path).map((l) => l.type)).toEqual(["decision", "settle"]);
});
