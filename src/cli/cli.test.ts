import { execFile } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
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
import { loggedDecision, loggedSettlement } from "../usage-log/test-log-lines.js";
import type { CliIo } from "./io.js";
import { main } from "./main.js";
import { runSimulate } from "./simulate.js";

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

describe("TOKENFUSE_ADMIN_TOKEN", () => {
  it("is read by serve and check only (the commands with an admin API), with no config file", async () => {
    const short = { TOKENFUSE_ADMIN_TOKEN: "short" };
    const c = io("", short);
    expect(await main(["check"], c.cliIo)).toBe(2);
    expect(c.err()).toMatch(/TOKENFUSE_ADMIN_TOKEN: the admin token must be at least 16 characters/);
    const u = io("", short);
    expect(await main(["usage", "--user", "alice"], u.cliIo)).toBe(2);
    expect(u.err()).not.toMatch(/TOKENFUSE_ADMIN_TOKEN/);
    expect(u.err()).toMatch(/memory store/);
  });
});

describe("tokenfuse count, input that looks like JSON but is not a chat request", () => {
  it("is counted as text (SPEC §8) with a note on stderr; --text silences it", async () => {
    for (const [input, why] of [
      ["{bad", /does not parse as JSON/],
      ['{"model":"gpt-4o"}', /not a chat request/],
    ] as const) {
      const c = io(input);
      expect(await main(["count", "-"], c.cliIo)).toBe(0);
      expect(c.out()).toBe(`${encoders.o200k_base.encode(input).length}\n`);
      expect(c.err()).toMatch(why);
      const t = io(input);
      expect(await main(["count", "--text", "-"], t.cliIo)).toBe(0);
      expect(t.err()).toBe("");
    }
    const plain = io("hello");
    expect(await main(["count", "-"], plain.cliIo)).toBe(0);
    expect(plain.err()).toBe("");
  });
});

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

  it("a chat request is counted for its own model unless --model says otherwise", async () => {
    const messages = [{ role: "user", content: "你好，世界！今天天气很好。" }];
    const cl100k = getChatTokenizer("cl100k_base").countChat(messages);
    const o200k = getChatTokenizer("o200k_base").countChat(messages);
    expect(cl100k).not.toBe(o200k); // the case tells the two apart
    const own = io(JSON.stringify({ model: "gpt-3.5-turbo", messages }));
    expect(await main(["count", "-"], own.cliIo)).toBe(0);
    expect(Number(own.out())).toBe(cl100k);
    const forced = io(JSON.stringify({ model: "gpt-3.5-turbo", messages }));
    expect(await main(["count", "--model", "gpt-4o", "-"], forced.cliIo)).toBe(0);
    expect(Number(forced.out())).toBe(o200k);
    const none = io(JSON.stringify({ messages }));
    expect(await main(["count", "--json", "-"], none.cliIo)).toBe(0);
    expect(JSON.parse(none.out())).toMatchObject({ model: "gpt-4o", tokens: o200k });
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
    const noContent = io(JSON.stringify({ messages: [{ role: "user" }] }));
    expect(await main(["count", "-"], noContent.cliIo)).toBe(2);
    expect(noContent.err()).toMatch(/not a valid chat request: messages\[0\] \(user\) has no content/);
    const k = io();
    expect(await main(["keys"], k.cliIo)).toBe(2);
    expect(k.err()).toMatch(/^tokenfuse keys: keys needs a command \(try: tokenfuse keys create/);
    // An empty --model (`--model "$M"`, M unset) is not a model: it counted with the estimator.
    const e = io("hello");
    expect(await main(["count", "--model", ""], e.cliIo)).toBe(2);
    expect(e.err()).toBe("tokenfuse count: --model needs a model name, got an empty value\n");
    expect(e.out()).toBe("");
  });

  it("version prints the package's version", async () => {
    const pkg = JSON.parse(readFileSync("package.json", "utf8")) as { version: string };
    for (const arg of ["version", "--version"]) {
      const t = io();
      expect(await main([arg], t.cliIo)).toBe(0);
      expect(t.out()).toBe(`tokenfuse ${pkg.version}\n`);
    }
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

  it("warns (exit 0) about limits smaller than a feature's largest request, and only those", async () => {
    const p = file(
      "tight.yaml",
      [
        "features:",
        "  chat: { model: gpt-4o, max_input: 1000, max_output: 200, on_exceed: trim }",
        "  big: { model: gpt-4o, max_input: 9000, max_output: 2000, on_exceed: trim, daily_tokens: 10000 }",
        "tiers:",
        "  free: { daily_tokens: 10000 }",
        "  fast: { daily_tokens: 100000, tokens_per_minute: 5000 }",
        "default_tier: free",
        "global: { tokens_per_minute: 1000000 }",
      ].join("\n"),
    );
    const t = io();
    expect(await main(["check", "--config", p], t.cliIo)).toBe(0);
    const warnings = t.out().split("\nwarnings:\n")[1]?.trim().split("\n") ?? [];
    expect(warnings).toEqual([
      "- feature big at its caps needs 11,000 tokens (max_input + max_output), more than its own daily_tokens (10,000): its largest requests are always refused",
      "- feature big at its caps needs 11,000 tokens (max_input + max_output), more than tier free's daily_tokens (10,000): its largest requests are always refused",
      "- feature big at its caps needs 11,000 tokens (max_input + max_output), more than tier fast's tokens_per_minute (5,000): its largest requests are always refused",
    ]);
  });

  it("warns (exit 0) of requests that on_error: local refuses while Redis is down: each process admits only its share of a budget", async () => {
    const features = [
      "features:",
      "  chat: { model: gpt-4o, max_input: 4000, max_output: 1000, on_exceed: trim }",
      "  mid: { model: gpt-4o, max_input: 2000, max_output: 100, on_exceed: trim }",
      "  small: { model: gpt-4o, max_input: 800, max_output: 150, on_exceed: trim }",
      "tiers:",
      "  free: { daily_tokens: 10000 }",
      "  pro: { daily_tokens: 100000, tokens_per_minute: 20000 }",
      "default_tier: free",
    ].join("\n");
    const local = io();
    const store = 'store: { url: "redis://127.0.0.1:1/0", on_error: local }\n';
    expect(await main(["check", "--config", file("local.yaml", `${store}${features}\n`)], local.cliIo)).toBe(
      0,
    );
    const warnings = local.out().split("\nwarnings:\n")[1]?.trim().split("\n") ?? [];
    // The built-in chat feature's smallest request (an empty message: 7 tokens for gpt-4o) plus its
    // max_output is 1,007 tokens, over 0.1 × 10,000: no request keeping the output cap fits.
    expect(warnings).toEqual([
      "- feature chat: while Redis is unreachable (on_error: local) each process admits at most 1,000 tokens of tier free's daily_tokens (local_limit_fraction 0.1 × 10,000), less than even the feature's smallest request at its output cap (1,007: 7 input + max_output 1,000): every request that does not ask for fewer output tokens is refused until Redis is back",
      "- feature chat: while Redis is unreachable (on_error: local) each process admits at most 2,000 tokens of tier pro's tokens_per_minute (local_limit_fraction 0.1 × 20,000), less than the feature's largest request (5,000: max_input + max_output): its largest requests are refused until Redis is back",
      "- feature mid: while Redis is unreachable (on_error: local) each process admits at most 1,000 tokens of tier free's daily_tokens (local_limit_fraction 0.1 × 10,000), less than the feature's largest request (2,100: max_input + max_output): its largest requests are refused until Redis is back",
      "- feature mid: while Redis is unreachable (on_error: local) each process admits at most 2,000 tokens of tier pro's tokens_per_minute (local_limit_fraction 0.1 × 20,000), less than the feature's largest request (2,100: max_input + max_output): its largest requests are refused until Redis is back",
    ]);
    // Other on_error modes do not fall back to a per-process share.
    const deny = io();
    const denyStore = 'store: { url: "redis://127.0.0.1:1/0", on_error: deny }\n';
    expect(
      await main(["check", "--config", file("deny.yaml", `${denyStore}${features}\n`)], deny.cliIo),
    ).toBe(0);
    expect(deny.out()).not.toMatch(/warnings:/);
  });

  it("an empty --config is bad usage (exit 2), not the built-in example, for every command reading the config", async () => {
    for (const args of [
      ["check", "--config", ""],
      ["demo", "--config", ""],
      ["keys", "create", "--user", "alice", "--config", ""],
    ]) {
      const t = io();
      expect(await main(args, t.cliIo)).toBe(2);
      expect(t.err()).toBe(`tokenfuse ${args[0]}: --config needs a file path, got an empty value\n`);
      expect(t.out()).toBe("");
    }
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

  it("refuses (exit 2) what serve would refuse at start: an upstream type the gateway cannot proxy, a usage log it cannot open", async () => {
    const base = "features:\n  chat: { model: gpt-4o, max_input: 100, max_output: 10, on_exceed: trim }\n";
    const anthropic = file(
      "anthropic.yaml",
      `upstreams:\n  claude: { type: anthropic, base_url: "https://api.anthropic.com", api_key: k }\n${base}`,
    );
    const t1 = io();
    expect(await main(["check", "--config", anthropic], t1.cliIo)).toBe(2);
    expect(t1.err()).toMatch(/upstreams\.claude\.type: type anthropic is not supported by the gateway yet/);
    const noDir = file("nodir.yaml", `usage_log: { path: ${join(dir, "missing-dir", "u.jsonl")} }\n${base}`);
    const t2 = io();
    expect(await main(["check", "--config", noDir], t2.cliIo)).toBe(2);
    expect(t2.err()).toMatch(
      /usage_log\.path: cannot open the usage log for appending: its directory does not exist/,
    );
    // A path that can be opened passes, and check creates nothing.
    const logPath = join(dir, "usage.jsonl");
    const ok = file("oklog.yaml", `usage_log: { path: ${logPath} }\n${base}`);
    const t3 = io();
    expect(await main(["check", "--config", ok], t3.cliIo)).toBe(0);
    expect(existsSync(logPath)).toBe(false);
  });

  it("fails (exit 1) a feature whose model has no price under unknown_price: reject, as the engine refuses its every request", async () => {
    const features = [
      "features:",
      "  chat: { model: gpt-4o, max_input: 100, max_output: 10, on_exceed: trim }",
      "  odd: { model: totally-unknown-model, max_input: 100, max_output: 10, on_exceed: trim }",
      "  tuned: { model: my-finetune, max_input: 100, max_output: 10, on_exceed: trim, allowed_models: [gpt-4o, other-unknown-model] }",
      "  mixed: { model: totally-unknown-model, max_input: 100, max_output: 10, on_exceed: trim, allowed_models: [gpt-4o] }",
    ].join("\n");
    const priced = "prices:\n  my-finetune: { input: 3, output: 12 }\n";
    const t = io();
    expect(await main(["check", "--config", file("unpriced.yaml", `${features}\n${priced}`)], t.cliIo)).toBe(
      1,
    );
    expect(t.out()).not.toMatch(/config OK/);
    const errors = t.out().split("\nerrors:\n")[1]?.split("\n\n")[0]?.trim().split("\n") ?? [];
    expect(errors).toEqual([
      '- feature odd: model "totally-unknown-model" has no known price and unknown_price is reject: every request to the feature is refused with price_unknown (add the model under prices:, or set unknown_price: allow_and_alert)',
      // Requests naming a priced allowed model are admitted; every other one is refused.
      '- feature mixed: model "totally-unknown-model" has no known price and unknown_price is reject: every request to the feature that does not name "gpt-4o" is refused with price_unknown (add the model under prices:, or set unknown_price: allow_and_alert)',
    ]);
    // A model the feature allows but does not use by default: only requests naming it are refused.
    expect(t.out()).toMatch(
      /- feature tuned: allowed model "other-unknown-model" has no known price and unknown_price is reject: requests naming it are refused with price_unknown/,
    );
    // What the engine admits passes: the same models under allow_and_alert, or priced in the config.
    const alert = io();
    expect(
      await main(
        ["check", "--config", file("alert.yaml", `${features}\n${priced}unknown_price: allow_and_alert\n`)],
        alert.cliIo,
      ),
    ).toBe(0);
    expect(alert.out()).toMatch(/config OK/);
    expect(alert.out()).not.toMatch(/price_unknown/);
    const allPriced = io();
    const prices = `${priced}  totally-unknown-model: { input: 1, output: 2 }\n  other-unknown-model: { input: 1, output: 2 }\n`;
    expect(
      await main(["check", "--config", file("priced.yaml", `${features}\n${prices}`)], allPriced.cliIo),
    ).toBe(0);
    expect(allPriced.out()).not.toMatch(/price_unknown/);
  });

  it("a fixtures directory that is missing or not a directory is bad usage: exit 2, one line naming it, before any output", async () => {
    const notDir = file("not-a-dir.json", "{}");
    for (const [path, why] of [
      [join(dir, "no-such-fixtures"), "no such file or directory"],
      [notDir, "not a directory"],
    ] as const) {
      const t = io();
      expect(await main(["check", "--fixtures", path], t.cliIo)).toBe(2);
      expect(t.err()).toBe(`tokenfuse check: cannot read fixtures directory ${path}: ${why}\n`);
      expect(t.out()).toBe("");
    }
    // An empty value (`--fixtures "$DIR"` with DIR unset) does not skip the fixtures.
    const empty = io();
    expect(await main(["check", "--fixtures", ""], empty.cliIo)).toBe(2);
    expect(empty.err()).toBe("tokenfuse check: --fixtures needs a directory, got an empty value\n");
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

describe("tokenfuse serve", () => {
  it("refuses (exit 2) a port that is not a decimal number from 0 to 65535, from --port or PORT, before starting", async () => {
    for (const bad of ["", "0x1f90", "8e3", " 8787", "8787.0", "-1", "65536", "http"]) {
      const flag = io();
      expect(await main(["serve", `--port=${bad}`], flag.cliIo)).toBe(2);
      expect(flag.err()).toBe(
        `tokenfuse serve: --port must be a port number from 0 to 65535, got "${bad}"\n`,
      );
      const env = io("", { PORT: bad });
      expect(await main(["serve"], env.cliIo)).toBe(2);
      expect(env.err()).toBe(`tokenfuse serve: PORT must be a port number from 0 to 65535, got "${bad}"\n`);
    }
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

describe("tokenfuse simulate", () => {
  const t0 = Date.parse("2026-11-24T12:00:00.000Z");
  const decision = (id: string, ms: number, input: number) =>
    JSON.stringify(
      loggedDecision(id, ms, {
        user: "ana",
        input_tokens_before: input,
        input_tokens: input,
        max_input: 4000,
        max_output: 1000,
        reserved_tokens: input + 1000,
      }),
    );
  const settle = (id: string, ms: number, input: number, output: number) =>
    JSON.stringify(
      loggedSettlement(id, ms, input, {
        user: "ana",
        output_tokens: output,
        charged_tokens: input + output,
        cost_nano_usd: Math.ceil((input * 2_500_000 + output * 10_000_000) / 1000),
      }),
    );
  /** Three requests of 3 000 tokens each (2 000 in, 1 000 out); a 10 000-token day takes them all. */
  const goodLines = [0, 1, 2].flatMap((i) => [
    decision(`r${i}`, t0 + i * 60_000, 2000),
    settle(`r${i}`, t0 + i * 60_000 + 500, 2000, 1000),
  ]);

  it("prints what a tighter config would refuse and cost, per feature and in total, next to the log", async () => {
    const log = file("sim.jsonl", `${goodLines.join("\n")}\n`);
    const tight = file("tight.json", JSON.stringify({ tiers: { free: { daily_tokens: 6500 } } }));
    const t = io();
    expect(await main(["simulate", "--log", log, "--config", tight], t.cliIo)).toBe(0);
    // 3 000 + 3 000 charged, then 6 000 + 3 000 reserved > 6 500: the third is refused.
    const [simulated, logged] = t.out().split("as logged:");
    expect(simulated).toMatch(/chat\s+3\s+2\s+0\s+1\s+4,000\s+2,000\s+\$0\.03\s/);
    expect(logged).toMatch(/chat\s+3\s+3\s+0\s+0\s+6,000\s+3,000\s+\$0\.0450/);
    expect(t.out()).toMatch(/chat\s+user_budget_exceeded\s+1\s+0/);
    expect(t.out()).toContain("approximated (the log holds token counts, not messages):");
    expect(t.err()).toBe("");

    const j = io();
    expect(await main(["simulate", "--log", log, "--config", tight, "--json"], j.cliIo)).toBe(0);
    const report = JSON.parse(j.out());
    expect(report.lines).toEqual({ total: 6, decisions: 3, settlements: 3, blank: 0, malformed: 0 });
    expect(report.simulated.total).toEqual({
      requests: 3,
      allowed: 2,
      trimmed: 0,
      rejected: 1,
      rejected_by_code: { user_budget_exceeded: 1 },
      input_tokens: 4000,
      output_tokens: 2000,
      cost_nano_usd: 30_000_000,
      unpriced_settlements: 0,
    });
    expect(report.logged.features.chat).toMatchObject({ requests: 3, allowed: 3, cost_nano_usd: 45_000_000 });
    expect(report.from).toBe("2026-11-24T12:00:00.000Z");
    expect(report.approximations.length).toBeGreaterThan(3);
  });

  it("skips malformed lines with their line numbers and counts them; --strict stops at the first (exit 2)", async () => {
    const lines = [
      goodLines[0],
      '{"v":1,"type":"decision","ti', // cut short
      goodLines[1],
      "",
      JSON.stringify({ ...JSON.parse(goodLines[2] as string), input_tokens: -3 }),
      "[1,2]",
      goodLines[3],
    ];
    const log = file("bad.jsonl", `${lines.join("\n")}\n`);
    const t = io();
    expect(await main(["simulate", "--log", log, "--json"], t.cliIo)).toBe(0);
    expect(t.err()).toBe(
      [
        `tokenfuse simulate: skipped line 2 of ${log}: not valid JSON (a line cut short by a crash or a full disk?)`,
        `tokenfuse simulate: skipped line 5 of ${log}: "input_tokens" must be a whole number ≥ 0`,
        `tokenfuse simulate: skipped line 6 of ${log}: not a JSON object`,
        "",
      ].join("\n"),
    );
    const report = JSON.parse(t.out());
    expect(report.lines).toEqual({ total: 7, decisions: 1, settlements: 2, blank: 1, malformed: 3 });
    expect(report.malformed_lines.map((m: { line: number }) => m.line)).toEqual([2, 5, 6]);
    expect(report.simulated.total).toMatchObject({ requests: 1, allowed: 1, input_tokens: 2000 });
    expect(report.orphan_settlements).toBe(1); // its decision was the malformed line 5

    const strict = io();
    expect(await main(["simulate", "--log", log, "--strict"], strict.cliIo)).toBe(2);
    expect(strict.err()).toBe(
      `tokenfuse simulate: ${log}:2: not valid JSON (a line cut short by a crash or a full disk?) (--strict stops at the first malformed line)\n`,
    );
    expect(strict.out()).toBe("");
  });

  it("an empty log prints zeros", async () => {
    const log = file("empty.jsonl", "");
    const t = io();
    expect(await main(["simulate", "--log", log], t.cliIo)).toBe(0);
    expect(t.out()).toMatch(/: 0 lines \(0 decisions, 0 settlements\), empty log/);
    expect(t.out()).toMatch(/^total\s+0\s+0\s+0\s+0\s+0\s+0\s+\$0\.00$/m);
    const j = io();
    expect(await main(["simulate", "--log", log, "--json"], j.cliIo)).toBe(0);
    expect(JSON.parse(j.out())).toMatchObject({
      from: null,
      simulated: { total: { requests: 0, cost_nano_usd: 0 }, features: {} },
    });
  });

  it("bad usage, an unreadable log or a bad config exit 2 with one clear line", async () => {
    const log = file("ok.jsonl", `${goodLines.join("\n")}\n`);
    const cases: Array<[string[], RegExp]> = [
      [["simulate"], /^tokenfuse simulate: --log FILE is required/],
      [["simulate", "--log", join(dir, "nope.jsonl")], /cannot read .*nope\.jsonl: no such file/],
      [["simulate", "--log", dir], /cannot read .*: is a directory/],
      [
        ["simulate", "--log", log, "--config", file("bad-sim.json", '{"tiers":{"free":{"daily_tokens":0}}}')],
        /tiers\.free\.daily_tokens/,
      ],
      [["simulate", "--log", log, "--frobnicate"], /--frobnicate/],
    ];
    for (const [args, message] of cases) {
      const t = io();
      expect(await main(args, t.cliIo)).toBe(2);
      expect(t.err()).toMatch(message);
    }
  });

  it("shows progress on stderr every N lines", async () => {
    const log = file("progress.jsonl", `${goodLines.join("\n")}\n`);
    const t = io();
    expect(await runSimulate(["--log", log], t.cliIo, { progressEvery: 2 })).toBe(0);
    expect(t.err()).toBe(
      [
        "tokenfuse simulate: 2 lines replayed (log time 2026-11-24T12:00:00.500Z)",
        "tokenfuse simulate: 4 lines replayed (log time 2026-11-24T12:01:00.500Z)",
        "tokenfuse simulate: 6 lines replayed (log time 2026-11-24T12:02:00.500Z)",
        "",
      ].join("\n"),
    );
  });

  it("runs on its own memory store and writes no usage log, whatever the config names", async () => {
    const log = file("iso.jsonl", `${goodLines.join("\n")}\n`);
    const usageLog = join(dir, "iso-usage.jsonl");
    // On the config's Redis (nothing listens on port 1, on_error: deny) every request would be refused;
    // with its usage log, the file would exist. Alerts go to no sink of the config (not observable here).
    const config = file(
      "iso.json",
      JSON.stringify({
        store: { url: "redis://127.0.0.1:1/0", on_error: "deny" },
        alerts: { hourly_cost_usd: 0.000001, sinks: [{ type: "webhook", url: "http://127.0.0.1:1/hook" }] },
        usage_log: { path: usageLog },
      }),
    );
    const t = io();
    expect(await main(["simulate", "--log", log, "--config", config, "--json"], t.cliIo)).toBe(0);
    expect(JSON.parse(t.out()).simulated.total).toMatchObject({ requests: 3, allowed: 3 });
    expect(existsSync(usageLog)).toBe(false);
  });

  it("demo never writes the config's usage log (its decisions are not real traffic)", async () => {
    const path = join(dir, "demo-usage.jsonl");
    const config = file("demo-log.json", JSON.stringify({ usage_log: { path } }));
    const t = io();
    expect(await main(["demo", "--config", config, "--turns", "3"], t.cliIo)).toBe(0);
    expect(existsSync(path)).toBe(false);
  });
});
