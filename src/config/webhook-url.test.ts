import { describe, expect, it } from "vitest";
import { ConfigError } from "./config-error.js";
import { loadConfig } from "./load.js";

// A webhook URL with a username or password is refused at load: fetch refuses every request to such
// a URL (so every alert would be lost) and quotes it whole, password included, in its error.

function loadError(config: Record<string, unknown>, env: Record<string, string> = {}): ConfigError {
  try {
    loadConfig(config, env);
  } catch (e) {
    if (e instanceof ConfigError) return e;
    throw e;
  }
  throw new Error("the config was accepted");
}

describe("alert webhook URLs", () => {
  it("refuses a URL with a username or password, naming the path and never echoing the value", () => {
    for (const url of [
      "https://alerts:S3cretHookPass@hooks.example.test/tokenfuse",
      "https://S3cretUser@hooks.example.test/tokenfuse",
      "http://:S3cretHookPass@127.0.0.1:9000/hook",
    ]) {
      for (const [config, env] of [
        [{ alerts: { sinks: [{ type: "webhook", url }] } }, {}],
        [{ alerts: { sinks: [{ type: "log" }, { type: "webhook", url: "${env:HOOK}" }] } }, { HOOK: url }],
      ] as const) {
        const e = loadError(config, env);
        expect(e.message).toMatch(
          /alerts\.sinks\[\d\]\.url: a webhook URL must not contain a username or password/,
        );
        expect(e.message).toMatch(/token in the URL's path or query|`secret`/);
        expect(e.message).not.toMatch(/S3cret|hooks\.example|127\.0\.0\.1/);
        expect(JSON.stringify(e.issues)).not.toMatch(/S3cret/);
      }
    }
  });

  it("accepts a URL with a token in its path or query", () => {
    const config = loadConfig(
      {
        alerts: {
          sinks: [
            { type: "webhook", url: "https://hooks.example.test/services/T0/B0/XyZ" },
            { type: "webhook", url: "https://hooks.example.test/hook?token=abc", secret: "s3cret" },
          ],
        },
      },
      {},
    );
    expect(config.alerts.sinks.map((s) => s.type)).toEqual(["webhook", "webhook"]);
  });
});
