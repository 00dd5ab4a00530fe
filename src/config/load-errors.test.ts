import { describe, expect, it } from "vitest";
import { type ConfigIssue, isConfigError } from "./config-error.js";
import { loadConfig, loadConfigText } from "./load.js";
import { type Change, changedConfig, hashOf, issuesOf, TEST_ENV } from "./test-config-fixtures.js";

describe("reporting", () => {
  it("reports every issue, one per line of the message", () => {
    const file = changedConfig(
      [["features", "chat", "max_input"], 0],
      [["features", "chat", "max_inptu"], 4000],
      [["tiers", "pro", "time_zone"], "+01:00"],
      [["keys", 1, "hash"], hashOf("a")],
      [["keys", 0, "tier"], "gold"],
      [["upstreams", "openai", "api_key"], "${env:NOT_SET}"],
    );
    let error: unknown;
    try {
      loadConfig(file, TEST_ENV);
    } catch (caught) {
      error = caught;
    }
    expect(isConfigError(error) && error.code).toBe("invalid_config");
    const lines = (error as Error).message.split("\n");
    expect(lines).toHaveLength(6);
    expect(lines).toEqual(
      expect.arrayContaining([
        "upstreams.openai.api_key: environment variable NOT_SET is not set",
        "features.chat.max_input: expected a positive whole number of tokens, got 0",
        expect.stringMatching(/^features\.chat\.max_inptu: unknown key \(did you mean "max_input"\?\)/),
        expect.stringMatching(/^tiers\.pro\.time_zone: expected an IANA time zone name/),
        expect.stringMatching(/^keys\[1\]\.hash: duplicate of keys\[0\]\.hash/),
        'keys[0].tier: unknown tier "gold"; expected one of: free, pro',
      ]),
    );
  });

  it("keeps issues and message in step", () => {
    const issues = issuesOf(changedConfig([["global", "a"], 1], [["global", "b"], 2]));
    expect(issues.map((i) => i.path)).toEqual(["global.a", "global.b"]);
  });

  it("reports a missing variable once, not again as an invalid value", () => {
    const issues = issuesOf(changedConfig([["alerts", "sinks", 1, "url"], "${env:HOOK_URL}"]));
    expect(issues).toEqual([
      { path: "alerts.sinks[1].url", message: "environment variable HOOK_URL is not set" },
    ]);
  });
});

describe("secrets never appear in errors", () => {
  const SECRET = "sk-proj-Sup3rS3cretValue";

  function expectNoSecret(issues: readonly ConfigIssue[]) {
    expect(issues.length).toBeGreaterThan(0);
    const text = JSON.stringify(issues);
    expect(text).not.toContain(SECRET);
    expect(text).not.toContain(SECRET.slice(0, 10));
    expect(text).not.toContain(SECRET.slice(-10));
  }

  it.each<[string, Change]>([
    ["api_key with a stray newline", [["upstreams", "openai", "api_key"], `${SECRET}\n`]],
    ["too short admin token", [["admin", "token"], SECRET.slice(0, 14)]],
    ["webhook secret with a space", [["alerts", "sinks", 1, "secret"], ` ${SECRET}`]],
    ["webhook URL that is no URL", [["alerts", "sinks", 1, "url"], `hooks ${SECRET}`]],
    ["store URL with a password", [["store", "url"], `http://user:${SECRET}@host:6379`]],
    ["store string with a password", [["store"], `redis//user:${SECRET}@host`]],
    ["malformed interpolation", [["admin", "token"], `${SECRET}\${oops}`]],
    ["secret in place of a number", [["features", "chat", "max_input"], SECRET]],
    ["secret as an enum value", [["unknown_price"], SECRET]],
    ["secret as a hash", [["keys", 0, "hash"], SECRET]],
    ["secret as a time zone", [["tiers", "free", "time_zone"], SECRET]],
  ])("%s", (_name, change) => {
    expectNoSecret(issuesOf(changedConfig(change)));
  });

  it("not even when the secret is a number", () => {
    const issues = issuesOf(changedConfig([["admin", "token"], 98765432109876]));
    expect(issues).toEqual([
      { path: "admin.token", message: "expected a secret of at least 16 characters, got a number" },
    ]);
  });

  it("coming from an environment variable", () => {
    const issues = issuesOf(changedConfig([["admin", "token"], "${env:ADMIN_TOKEN}"]), {
      ...TEST_ENV,
      ADMIN_TOKEN: `${SECRET}\n`,
    });
    expect(issues.map((i) => i.path)).toEqual(["admin.token"]);
    expectNoSecret(issues);
  });

  it.each([
    ["unterminated YAML string", `admin:\n  token: "${SECRET}\n`, "yaml"],
    ["unquoted JSON value", `{"admin": {"token": ${SECRET}}}`, "json"],
    ["bad YAML escape", `admin: { token: "${SECRET}\\q" }`, "yaml"],
    ["block scalar header junk", `admin:\n  token: |${SECRET}\n    x\n`, "yaml"],
    ["unknown YAML tag", `admin: { token: !${SECRET} x }`, "yaml"],
  ] as const)("in a syntax error: %s", (_name, text, format) => {
    let issues: ConfigIssue[] = [];
    try {
      loadConfigText(text, { format, env: {} });
    } catch (error) {
      if (isConfigError(error)) issues = [...error.issues];
    }
    expectNoSecret(issues);
    expect(issues[0]?.path).toMatch(/^line \d+, column \d+$/);
  });
});
