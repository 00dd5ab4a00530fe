import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import OpenAI from "openai";
import { afterAll, describe, expect, it } from "vitest";
import { getChatTokenizer } from "../src/tokenizers/index.js";
import { freePort } from "./helpers/redis-server.js";

const BIN = resolve(import.meta.dirname, "../bin/tokenfuse.js");

/**
 * SPEC §6: with no config it starts on the built-in example config, the memory store and — with no
 * provider key — the built-in mock upstream, saying so at start. Run as a user would: the real
 * binary, in an empty directory, with no provider key and no TOKENFUSE_* variable.
 */
describe("tokenfuse serve with no config and no provider key", () => {
  const dir = mkdtempSync(join(tmpdir(), "tf-noconfig-"));
  let child: ChildProcess | undefined;
  afterAll(() => {
    if (child && child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  });

  it("prints one banner line, serves chat and /v1/models from the mock, and exits 0 on SIGTERM", async () => {
    const port = await freePort();
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries(process.env)) {
      if (
        v === undefined ||
        k === "OPENAI_API_KEY" ||
        k.startsWith("TOKENFUSE_") ||
        k === "HOST" ||
        k === "PORT"
      )
        continue;
      env[k] = v;
    }
    const proc = spawn(process.execPath, [BIN, "serve", "--port", String(port)], {
      cwd: dir,
      env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    child = proc;
    let out = "";
    let err = "";
    proc.stdout?.on("data", (d) => (out += d));
    proc.stderr?.on("data", (d) => (err += d));
    const exited = new Promise<number | null>((r) => proc.once("exit", (code) => r(code)));
    const deadline = Date.now() + 15_000;
    while (!out.includes("\n")) {
      if (Date.now() > deadline || proc.exitCode !== null) throw new Error(`no banner: ${out} ${err}`);
      await new Promise((r) => setTimeout(r, 25));
    }
    const banner = `tokenfuse gateway on http://127.0.0.1:${port} (config: built-in example config, store: memory, usage log: off) — upstream: the built-in mock (deterministic answers; no provider key set)\n`;
    expect(out).toBe(banner);
    // The memory store says at start that its counters do not survive a restart (SPEC §4).
    expect(err).toContain(
      "using the memory store: budgets live in this process only and are lost on restart",
    );

    const base = `http://127.0.0.1:${port}`;
    const client = new OpenAI({
      baseURL: `${base}/v1`,
      apiKey: "unused",
      maxRetries: 0,
      defaultHeaders: { "x-tokenfuse-feature": "chat" },
    });
    const messages = [{ role: "user" as const, content: "hello from an empty directory" }];
    const { data, response } = await client.chat.completions
      .create({ model: "gpt-4o", messages })
      .withResponse();
    // The example's chat feature (gpt-4o, output cap 1000) on the mock (50 tokens, exact usage).
    const input = getChatTokenizer("o200k_base").countChat(messages);
    expect(data.id).toBe("chatcmpl-mock-1");
    expect(data.model).toBe("gpt-4o");
    expect(data.usage).toMatchObject({
      prompt_tokens: input,
      completion_tokens: 50,
      total_tokens: input + 50,
    });
    expect(response.headers.get("x-ratelimit-limit-tokens")).toBe("10000");

    const models = await fetch(`${base}/v1/models`);
    expect(models.status).toBe(200);
    expect(await models.json()).toEqual({
      object: "list",
      data: ["gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-nano"].map((id) => ({
        id,
        object: "model",
        created: 0,
        owned_by: "tokenfuse",
      })),
    });

    proc.kill("SIGTERM");
    const code = await Promise.race([
      exited,
      new Promise<string>((r) => setTimeout(() => r("still running 10 s after SIGTERM"), 10_000)),
    ]);
    expect(code).toBe(0);
    // Still the one line, and nothing was written to the empty directory.
    expect(out).toBe(banner);
    expect(readdirSync(dir)).toEqual([]);
  }, 40_000);
});
