import { randomUUID } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, inject, it } from "vitest";
import { silentLogger } from "../core/logger.js";
import { createTokenfuse } from "../tokenfuse.js";
import type { CliIo } from "./io.js";
import { main } from "./main.js";

// `tokenfuse usage` flags take what the rest of the system takes: `--hours` as GET /admin/usage
// parses `hours`, `--user` any id the engine charges (the library charges any non-empty string).

const dir = mkdtempSync(join(tmpdir(), "tf-usage-flags-"));

function io() {
  const out: string[] = [];
  const err: string[] = [];
  const cliIo: CliIo = { out: (s) => out.push(s), err: (s) => err.push(s), stdin: async () => "", env: {} };
  return { cliIo, out: () => out.join(""), err: () => err.join("") };
}

/** A config on the shared test Redis, under a key prefix of its own. */
function redisConfig(): { path: string; prefix: string } {
  const prefix = `${inject("redisPrefix")}${randomUUID().slice(0, 8)}:`; // key_prefix: at most 64 characters
  const path = join(dir, `${randomUUID()}.yaml`);
  writeFileSync(
    path,
    [
      `store: { url: "${inject("redisUrl")}", key_prefix: "${prefix}", on_error: deny }`,
      "features:",
      "  chat: { model: gpt-4o, max_input: 1000, max_output: 100, on_exceed: trim }",
    ].join("\n"),
  );
  return { path, prefix };
}

describe("tokenfuse usage flags", () => {
  it("--hours takes a whole decimal number from 1 to 192, as GET /admin/usage does (exit 2 otherwise)", async () => {
    const { path } = redisConfig();
    for (const bad of ["1e0", "0x1", " 1", "1.0", "+1", "", "0", "193"]) {
      const t = io();
      expect(await main(["usage", "--config", path, "--hours", bad], t.cliIo)).toBe(2);
      expect(t.err()).toBe(
        `tokenfuse usage: --hours must be a whole number from 1 to 192 (spend is kept 8 days), got "${bad}"\n`,
      );
      expect(t.out()).toBe("");
    }
    const ok = io();
    expect(await main(["usage", "--config", path, "--hours", "1"], ok.cliIo)).toBe(0);
    expect(ok.out()).toBe("no usage in the last 1 h\n");
  });

  it("--user: an empty id is refused before anything is read; an id the library charged is read back", async () => {
    const { path } = redisConfig();
    const empty = io();
    expect(await main(["usage", "--config", path, "--user", ""], empty.cliIo)).toBe(2);
    expect(empty.err()).toBe("tokenfuse usage: --user needs a user id, got an empty value\n");
    expect(empty.out()).toBe("");
    // The library charges any non-empty id (GET /admin/usage?user= reads them too): `usage` must
    // read them back, though a gateway key's user could not be named so.
    const tf = createTokenfuse({ config: path, logger: silentLogger });
    try {
      for (const user of ["bad user", "user:123"]) {
        const a = await tf.admit({ feature: "chat", user, messages: [{ role: "user", content: "hi" }] });
        await a.settle({
          prompt_tokens: a.inputTokens,
          completion_tokens: 5,
          total_tokens: a.inputTokens + 5,
        });
      }
    } finally {
      await tf.close();
    }
    for (const user of ["bad user", "user:123"]) {
      const t = io();
      expect(await main(["usage", "--config", path, "--user", user, "--hours", "1"], t.cliIo)).toBe(0);
      expect(t.out()).toMatch(new RegExp(`user ${user}\\s+1\\s+8\\s+5`));
      expect(t.out()).toMatch(new RegExp(`user ${user}, day\\s+10,000\\s+13\\s`));
    }
  });
});
