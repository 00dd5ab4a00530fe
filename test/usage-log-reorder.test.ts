// Usage log lines follow the store's order: a replay of the log decides as the store did.
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect, it } from "vitest";
import { loadConfig } from "../src/config/load.js";
import { silentLogger } from "../src/core/logger.js";
import { createMemoryStore } from "../src/stores/memory-store.js";
import type { Store } from "../src/stores/types.js";
import { createTokenfuse } from "../src/tokenfuse.js";
import { parseUsageLine } from "../src/usage-log/parse.js";
import { createSimulation } from "../src/usage-log/simulate.js";

/** A memory store whose reserve/settle replies are delivered together, in order, on a later tick. */
function pipelined(inner: Store): Store {
  let queue: Array<() => Promise<void>> = [];
  let scheduled = false;
  const run = () => {
    const q = queue;
    queue = [];
    scheduled = false;
    void (async () => {
      const done: Array<() => void> = [];
      for (const op of q)
        done.push(
          await op()
            .then(() => () => {})
            .catch(() => () => {}),
        );
      for (const f of resolvers.splice(0, q.length)) f();
    })();
  };
  const resolvers: Array<() => void> = [];
  function call<T>(f: () => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      let result: { ok: true; v: T } | { ok: false; e: unknown };
      queue.push(async () => {
        try {
          result = { ok: true, v: await f() };
        } catch (e) {
          result = { ok: false, e };
        }
      });
      resolvers.push(() => (result.ok ? resolve(result.v) : reject(result.e)));
      if (!scheduled) {
        scheduled = true;
        setTimeout(run, 1);
      }
    });
  }
  return new Proxy(inner, {
    get(t, p, r) {
      if (p === "reserve" || p === "settle")
        return (req: never) =>
          call(() => (t as never as Record<"reserve" | "settle", (x: never) => Promise<unknown>>)[p](req));
      return Reflect.get(t, p, r);
    },
  });
}

const config = {
  features: { chat: { model: "gpt-4o", max_input: 1000, max_output: 600, on_exceed: "reject" } },
  tiers: { free: { daily_tokens: 1000 } },
  default_tier: "free",
};

it("replaying the log against the config that wrote it reproduces every decision", async () => {
  const path = join(mkdtempSync(join(tmpdir(), "tf-rev-")), "u.jsonl");
  const tf = createTokenfuse({
    config: { ...config, usage_log: { path } },
    logger: silentLogger,
    store: pipelined(createMemoryStore()),
  });
  const msg = [{ role: "user" as const, content: "hello there" }];
  const a = await tf.admit({ feature: "chat", user: "u", messages: msg }); // reserves ~610 of 1000
  // A settles (small usage) and B asks for another ~610 at the same time: the store applies A's
  // settlement first (20 tokens committed), so B fits.
  const [, b] = await Promise.all([
    a.settle({ prompt_tokens: 10, completion_tokens: 10 }),
    tf.admit({ feature: "chat", user: "u", messages: msg }),
  ]);
  expect(b.decision).toBe("allow"); // live: admitted
  await b.settle({ prompt_tokens: 10, completion_tokens: 10 });
  await tf.close();

  const lines = readFileSync(path, "utf8").trimEnd().split("\n");
  const outcomes: string[] = [];
  const sim = await createSimulation(loadConfig(config, {}), {
    onDecision: (rec, o) => outcomes.push(`${rec.decision} -> ${o.decision} ${o.code ?? ""}`),
  });
  for (const l of lines) {
    const p = parseUsageLine(l);
    if (!p.ok) throw new Error(p.error);
    await sim.replay(p.record);
  }
  await sim.finish();
  expect(outcomes).toEqual(["allow -> allow ", "allow -> allow "]);
});
