import { execFile } from "node:child_process";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { get_encoding } from "tiktoken";
import { afterAll, describe, expect, it } from "vitest";
import { loadConfig } from "../config/load.js";
import { createAuthenticator, hashApiKey } from "../gateway/auth.js";
import { getChatTokenizer } from "../tokenizers/index.js";
import {
  base64Sample,
  cjkSample,
  codeSample,
  emojiSample,
  jsonSample,
  mixedDocument,
  proseSample,
  whitespaceSample,
} from "../tokenizers/test-samples.js";
import type { CliIo } from "./io.js";
import { main } from "./main.js";

const run = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), "tf-cli-"));
const encoders = { o200k_base: get_encoding("o200k_base"), cl100k_base: get_encoding("cl100k_base") };
afterAll(() => {
  encoders.o200k_base.free();
  encoders.cl100k_base.free();
});

function io(stdin = "", env: Record<string, string | undefined> = {}) {
  const out: string[] = [];
  const err: string[] = [];
  const cliIo: CliIo = { out: (s) => out.push(s), err: (s) => err.push(s), stdin: async () => stdin, env };
  return { cliIo, out: () => out.join(""), err: () => err.join("") };
}

function file(name: string, content: string): string {
  const p = join(dir, name);
  writeFileSync(p, content);
  return p;
}

describe("tokenfuse count", () => {
  const samples: Record<string, string> = {
    prose: proseSample(1, 20_000),
    code: codeSample(2, 20_000),
    json: jsonSample(3, 20_000),
    cjk: cjkSample(4, 10_000),
    emoji: emojiSample(5, 5_000),
    whitespace: whitespaceSample(6, 20_000),
    base64: base64Sample(7, 12_000),
    spaces: " ".repeat(5_000),
    letters: "a".repeat(5_000),
  };
  for (const [model, encoding] of [
    ["gpt-4o", "o200k_base"],
    ["gpt-4", "cl100k_base"],
  ] as const) {
    for (const [name, text] of Object.entries(samples)) {
      it(`--text equals the reference tokenizer for ${name} (${encoding})`, async () => {
        const p = file(`${name}.txt`, text);
        const t = io();
        expect(await main(["count", "--model", model, "--text", p], t.cliIo)).toBe(0);
        expect(Number(t.out().trim())).toBe(encoders[encoding].encode(text, "all").length);
      });
    }
  }

  it("a 1 MB mixed file, through the real binary, for o200k and cl100k", async () => {
    const text = mixedDocument(8, 1_000_000);
    const p = file("mixed.txt", text);
    for (const [model, encoding] of [
      ["gpt-4o", "o200k_base"],
      ["gpt-3.5-turbo", "cl100k_base"],
    ] as const) {
      const { stdout } = await run(process.execPath, [
        "bin/tokenfuse.js",
        "count",
        "--model",
        model,
        "--text",
        p,
      ]);
      expect(Number(stdout.trim())).toBe(encoders[encoding].encode(text, "all").length);
    }
  });

  it("counts a chat request (object with messages, or an array of messages) as prompt tokens", async () => {
    const messages = [
      { role: "system", content: "You are terse." },
      { role: "user", name: "alice", content: "Count me." },
    ];
    const expected = getChatTokenizer("o200k_base").countChat(messages);
    for (const input of [JSON.stringify({ model: "gpt-4o", messages }), JSON.stringify(messages)]) {
      const t = io(input);
      expect(await main(["count", "-"], t.cliIo)).toBe(0);
      expect(Number(t.out())).toBe(expected);
    }
    const asText = io(JSON.stringify(messages));
    await main(["count", "--text", "-"], asText.cliIo);
    expect(Number(asText.out())).toBe(encoders.o200k_base.encode(JSON.stringify(messages)).length);
  });

  it("--json prints details", async () => {
    const t = io("hello world");
    expect(await main(["count", "--json", "--model", "claude-sonnet-4", "-"], t.cliIo)).toBe(0);
    const d = JSON.parse(t.out());
    expect(d).toMatchObject({ model: "claude-sonnet-4", exact: false, kind: "text", characters: 11 });
    expect(d.tokens).toBeGreaterThanOrEqual(2);
  });

  it("bad usage exits 2 with one clear line", async () => {
    const t = io();
    expect(await main(["count", "--nope"], t.cliIo)).toBe(2);
    expect(t.err()).toMatch(/^tokenfuse count: .*--nope/);
    const m = io();
    expect(await main(["count", join(dir, "missing.txt")], m.cliIo)).toBe(2);
    expect(m.err()).toMatch(/cannot read .*missing\.txt: no such file/);
    const u = io();
    expect(await main(["frobnicate"], u.cliIo)).toBe(2);
    expect(u.err()).toMatch(/unknown command "frobnicate"/);
  });
});

describe("tokenfuse check", () => {
  it("validates the example config and prints the budget table", async () => {
    const t = io("", {
      ALERT_WEBHOOK_URL: "https://hooks.example.test/x",
      TOKENFUSE_ADMIN_TOKEN: "0123456789abcdef0123",
    });
    expect(await main(["check", "--config", "examples/tokenfuse.yaml"], t.cliIo)).toBe(0);
    expect(t.out()).toMatch(/config OK: examples\/tokenfuse\.yaml/);
    expect(t.out()).toMatch(/quick_answer\s+gpt-4\.1-nano\s+1,000\s+200\s+truncate/);
    expect(t.out()).toMatch(/pro\s+100,000\s+20,000\s+America\/New_York/);
  });

  it("an invalid config exits 2 naming the path", async () => {
    const p = file(
      "bad.yaml",
      "features:\n  chat: { model: gpt-4o, max_input: -5, max_output: 10, on_exceed: trim }\n",
    );
    const t = io();
    expect(await main(["check", "--config", p], t.cliIo)).toBe(2);
    expect(t.err()).toMatch(/features\.chat\.max_input/);
  });

  it("fixtures: exit 0 when every sample fits its feature, 1 when one does not", async () => {
    const fx = join(dir, "fixtures");
    mkdirSync(fx);
    writeFileSync(
      join(fx, "ok.json"),
      JSON.stringify({ feature: "chat", messages: [{ role: "user", content: "hi" }] }),
    );
    const good = io();
    expect(await main(["check", "--fixtures", fx], good.cliIo)).toBe(0);
    expect(good.out()).toMatch(/1 of 1 fixtures fit/);
    writeFileSync(
      join(fx, "too-long.yaml"),
      `feature: quick_answer\nmessages:\n  - role: user\n    content: "${"word ".repeat(1500)}"\n`,
    );
    const bad = io();
    expect(await main(["check", "--fixtures", fx], bad.cliIo)).toBe(1);
    expect(bad.out()).toMatch(
      /too-long\.yaml\s+quick_answer\s+gpt-4\.1-nano\s+1,5\d\d\s+1,000\s+FAIL: over by/,
    );
    expect(bad.out()).toMatch(/1 of 2 fixtures fit/);
  });
});

describe("tokenfuse keys create", () => {
  it("prints a new key once and a config entry holding only its hash, which the gateway accepts", async () => {
    const t = io();
    expect(
      await main(["keys", "create", "--user", "alice", "--tier", "pro", "--features", "chat"], t.cliIo),
    ).toBe(0);
    const key = /shown once, store it now\): (\S+)/.exec(t.out())?.[1] as string;
    const entry = JSON.parse(/- (\{.*\})/.exec(t.out())?.[1] ?? "{}");
    expect(key).toMatch(/^tf-/);
    expect(entry).toEqual({ hash: hashApiKey(key), user: "alice", tier: "pro", features: ["chat"] });
    expect(t.out().split(key).length).toBe(2); // printed exactly once
    const auth = createAuthenticator(loadConfig({ keys: [entry] }, {}));
    expect(auth.authenticate(`Bearer ${key}`, undefined)).toMatchObject({ user: "alice", tier: "pro" });
  });

  it("refuses an unknown tier or feature and a missing user with exit 2", async () => {
    for (const args of [
      ["--user", "a", "--tier", "gold"],
      ["--user", "a", "--features", "nope"],
      ["--tier", "pro"],
    ]) {
      const t = io();
      expect(await main(["keys", "create", ...args], t.cliIo)).toBe(2);
      expect(t.err()).toMatch(/tokenfuse keys: /);
    }
  });
});

describe("tokenfuse demo", () => {
  it("replays the runaway history: trims, then stops the user at the daily budget", async () => {
    const t = io();
    expect(await main(["demo"], t.cliIo)).toBe(0);
    expect(t.out()).toMatch(/\btrim\b/);
    expect(t.out()).toMatch(/refused with user_budget_exceeded/);
    expect(JSON.parse(t.out().slice(t.out().indexOf("{"))).user.day.remaining).toBeLessThan(5000);
    const bad = io();
    expect(await main(["demo", "--turns", "0"], bad.cliIo)).toBe(2);
  });
});
