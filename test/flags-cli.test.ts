import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, inject, it } from "vitest";
import type { CliIo } from "../src/cli/io.js";
import { main } from "../src/cli/main.js";
import { silentLogger } from "../src/core/logger.js";
import { createRedisStore } from "../src/stores/redis/redis-store.js";
import { createTokenfuse } from "../src/tokenfuse.js";
import { testKeyPrefix } from "./helpers/redis-keys.js";

function io() {
  const out: string[] = [];
  const err: string[] = [];
  const cliIo: CliIo = { out: (s) => out.push(s), err: (s) => err.push(s), stdin: async () => "", env: {} };
  return { cliIo, out: () => out.join(""), err: () => err.join("") };
}

describe("tokenfuse flags", () => {
  it("disables and enables a feature in the shared store, seen by a library process on it", async () => {
    const prefix = testKeyPrefix("flags");
    const config = {
      store: { url: inject("redisUrl"), key_prefix: prefix },
      features: { chat: { model: "gpt-4o", max_input: 1000, max_output: 100, on_exceed: "trim" } },
    };
    const path = join(mkdtempSync(join(tmpdir(), "tf-flags-")), "tokenfuse.json");
    writeFileSync(path, JSON.stringify(config));
    const off = io();
    expect(await main(["flags", "disable", "chat", "--config", path], off.cliIo)).toBe(0);
    expect(off.out()).toMatch(/chat: disabled/);
    const list = io();
    expect(await main(["flags", "list", "--config", path], list.cliIo)).toBe(0);
    expect(list.out()).toMatch(/chat\s+no\s+yes/);
    const tf = createTokenfuse({
      config,
      logger: silentLogger,
      store: createRedisStore({ url: inject("redisUrl"), keyPrefix: prefix }),
    });
    await expect(
      tf.admit({ feature: "chat", user: "u", messages: [{ role: "user", content: "x" }] }),
    ).rejects.toMatchObject({
      code: "feature_disabled",
    });
    expect(await main(["flags", "enable", "chat", "--config", path], io().cliIo)).toBe(0);
    const none = io();
    expect(await main(["flags", "enable", "--config", path], none.cliIo)).toBe(2);
    expect(none.err()).toMatch(/flags enable needs a FEATURE \(features: .*chat/);
    const unknown = io();
    expect(await main(["flags", "disable", "chta", "--config", path], unknown.cliIo)).toBe(2);
    expect(unknown.err()).toMatch(/unknown feature "chta"/);
    await tf.close();
  });

  it("refuses on the memory store, and for unknown features, with exit 2", async () => {
    const mem = io();
    expect(await main(["flags", "disable", "chat"], mem.cliIo)).toBe(2);
    expect(mem.err()).toMatch(/memory store/);
    const bad = io();
    expect(await main(["flags", "frob"], bad.cliIo)).toBe(2);
  });
});
