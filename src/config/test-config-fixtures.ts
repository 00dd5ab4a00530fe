/**
 * Fixtures shared by the config tests (not part of the build: `src/**\/test-*.ts` is excluded).
 */
import { expect, it } from "vitest";
import { type ConfigIssue, isConfigError } from "./config-error.js";
import { loadConfig } from "./load.js";

/** A config file as tests handle it: loosely typed, so that it can be broken in any way. */
// biome-ignore lint/suspicious/noExplicitAny: tests turn the fixture into every wrong shape.
export type LooseConfig = Record<string, any>;

/** A key hash made of one repeated hex digit. */
export const hashOf = (digit: string): string => `sha256:${digit.repeat(64)}`;

/** Environment that {@link validConfigFile} needs. */
export const TEST_ENV: Readonly<Record<string, string>> = {
  OPENAI_API_KEY: "sk-test-key",
  ADMIN_TOKEN: "admin-0123456789abcdef",
};

/** A valid config file that touches every section and every kind of reference; fresh on every call. */
export function validConfigFile(): LooseConfig {
  return {
    store: { url: "redis://127.0.0.1:6379/0", on_error: "deny" },
    upstreams: {
      local: { type: "mock" },
      openai: { type: "openai", base_url: "https://api.openai.com/v1", api_key: "${env:OPENAI_API_KEY}" },
    },
    features: {
      chat: { model: "gpt-4o", max_input: 4000, max_output: 1000, on_exceed: "trim" },
      summarize: { model: "gpt-4o-mini", max_input: 16000, max_output: 500, on_exceed: "reject" },
      support: {
        model: "gpt-4o",
        max_input: 8000,
        max_output: 800,
        on_exceed: "summarize",
        summarize_with: "summarize",
      },
    },
    tiers: { free: { daily_tokens: 10000 }, pro: { daily_tokens: 100000, time_zone: "Europe/Paris" } },
    default_tier: "free",
    global: { tokens_per_minute: 1000000, hourly_cost_usd: 100 },
    alerts: {
      hourly_cost_usd: 50,
      sinks: [{ type: "log" }, { type: "webhook", url: "https://hooks.example.com/x" }],
    },
    keys: [
      {
        hash: hashOf("a"),
        user: "alice",
        tier: "pro",
        features: ["chat", "summarize"],
        default_feature: "chat",
      },
      { hash: hashOf("b"), user: "backend", trusted: true },
    ],
    admin: { token: "${env:ADMIN_TOKEN}" },
    prices: { "my-model": { input: 3, output: 12 } },
    unknown_price: "reject",
  };
}

/** Marks a key for deletion in a {@link Change}. */
export const DELETE = Symbol("delete");

/** One change to the valid file: the value to put at a path (or {@link DELETE}). */
export type Change = [path: (string | number)[], value: unknown];

/** The valid file with `changes` applied. */
export function changedConfig(...changes: Change[]): LooseConfig {
  const file = validConfigFile();
  for (const [path, value] of changes) {
    let parent: LooseConfig = file;
    for (const segment of path.slice(0, -1)) parent = parent[segment];
    const last = path[path.length - 1] as string | number;
    if (value === DELETE) delete parent[last];
    else parent[last] = value;
  }
  return file;
}

/** The issues of the ConfigError that loading `file` throws (failing when it loads or throws otherwise). */
export function issuesOf(file: unknown, env: Readonly<Record<string, string>> = TEST_ENV): ConfigIssue[] {
  try {
    loadConfig(file as LooseConfig, env);
  } catch (error) {
    if (isConfigError(error)) return [...error.issues];
    throw error;
  }
  throw new Error("expected a ConfigError, but the config loaded");
}

/** A case: what to change, the one issue's path, and a pattern its message must match. */
export type InvalidCase = [name: string, changes: Change[], path: string, message: RegExp];

/** Checks that each case yields exactly one issue, at its path, with a matching message. */
export function itRejectsEach(cases: readonly InvalidCase[]): void {
  it.each(cases)("%s", (_name, changes, path, message) => {
    const issues = issuesOf(changedConfig(...changes));
    // Exactly one issue: the broken thing is reported, with no cascade of follow-up errors.
    expect(issues, JSON.stringify(issues)).toHaveLength(1);
    expect(issues[0]?.path).toBe(path);
    expect(issues[0]?.message).toMatch(message);
  });
}
