import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfigFile } from "../config/load.js";
import { silentLogger } from "../core/logger.js";
import { createGateway, type Gateway } from "../gateway/server.js";
import { createMemoryStore } from "../stores/memory-store.js";
import type { CliIo } from "./io.js";
import { main } from "./main.js";

// `check --fixtures` and `count` must count what the gateway counts (`billedDefinitions`): tools,
// the legacy `functions` and a `response_format` JSON schema, not only `tools`.

const dir = mkdtempSync(join(tmpdir(), "tf-cli-billed-"));

function io(stdin = "") {
  const out: string[] = [];
  const err: string[] = [];
  const cliIo: CliIo = {
    out: (s) => out.push(s),
    err: (s) => err.push(s),
    stdin: async () => stdin,
    env: {},
  };
  return { cliIo, out: () => out.join(""), err: () => err.join("") };
}

const configPath = join(dir, "tokenfuse.yaml");
writeFileSync(
  configPath,
  `upstreams: { provider: { type: mock, completion_tokens: 5 } }
features:
  chat: { model: gpt-4o, max_input: 40, max_output: 20, on_exceed: reject }
  roomy: { model: gpt-4o, max_input: 100000, max_output: 20, on_exceed: reject }
tiers: { free: { daily_tokens: 1000000 } }
`,
);

const lookup = {
  name: "lookup",
  description: "Looks things up in the knowledge base. ".repeat(12),
  parameters: {
    type: "object",
    properties: { q: { type: "string", description: "query text ".repeat(10) } },
    required: ["q"],
  },
};
const responseFormat = {
  type: "json_schema",
  json_schema: {
    name: "answer",
    schema: {
      type: "object",
      properties: { answer: { type: "string", description: "the answer ".repeat(15) } },
    },
  },
};
const messages = [{ role: "user", content: "hi" }];
const functionsBody = { model: "gpt-4o", messages, functions: [lookup] };
const schemaBody = { model: "gpt-4o", messages, response_format: responseFormat };
const bothBody = {
  model: "gpt-4o",
  messages,
  tools: [{ type: "function", function: lookup }],
  functions: [lookup],
  response_format: responseFormat,
};

describe("count and check --fixtures count what the gateway counts", () => {
  let gw: Gateway;
  let base: string;
  beforeAll(async () => {
    gw = createGateway({
      config: loadConfigFile(configPath, {}),
      store: createMemoryStore(),
      logger: silentLogger,
    });
    base = `http://127.0.0.1:${await gw.listen(0, "127.0.0.1")}`;
  });
  afterAll(async () => {
    await gw.close();
  });

  async function gateway(
    feature: string,
    body: object,
  ): Promise<{ status: number; input: number; code?: string }> {
    const res = await fetch(`${base}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-tokenfuse-feature": feature },
      body: JSON.stringify(body),
    });
    const text = await res.text();
    const code =
      res.status === 200 ? undefined : (JSON.parse(text) as { error?: { code?: string } }).error?.code;
    return {
      status: res.status,
      input: Number(res.headers.get("x-tokenfuse-input-tokens")),
      ...(code ? { code } : {}),
    };
  }

  it("count prints the gateway's x-tokenfuse-input-tokens for bodies with functions and a response_format schema", async () => {
    for (const body of [functionsBody, schemaBody, bothBody]) {
      const g = await gateway("roomy", body);
      expect(g.status).toBe(200);
      const t = io(JSON.stringify(body));
      expect(await main(["count", "--model", "gpt-4o", "-"], t.cliIo)).toBe(0);
      expect(Number(t.out())).toBe(g.input);
      expect(g.input).toBeGreaterThan(100); // the definitions, not just "hi"
    }
    // --json flags the response_format schema's count as an estimate.
    const j = io(JSON.stringify(schemaBody));
    expect(await main(["count", "--json", "-"], j.cliIo)).toBe(0);
    expect(JSON.parse(j.out())).toMatchObject({ kind: "chat", exact: false });
  });

  it("check --fixtures fails a fixture whose functions put it over max_input, as the gateway refuses it", async () => {
    const refused = await gateway("chat", functionsBody);
    expect(refused.status).toBeGreaterThanOrEqual(400);
    expect(refused.code).toBe("input_budget_exceeded");
    for (const [name, extra] of [
      ["functions", { functions: [lookup] }],
      ["schema", { response_format: responseFormat }],
    ] as const) {
      const fx = join(dir, `fx-${name}`);
      mkdirSync(fx);
      writeFileSync(join(fx, "big.json"), JSON.stringify({ feature: "chat", messages, ...extra }));
      const t = io();
      expect(await main(["check", "--config", configPath, "--fixtures", fx], t.cliIo)).toBe(1);
      expect(t.out()).toMatch(/big\.json\s+chat\s+gpt-4o\s+\d{3}\S*( \(est\.\))?\s+40\s+FAIL: over by/);
      expect(t.out()).toMatch(/0 of 1 fixtures fit/);
    }
  });

  it("a malformed functions is a clear error with a non-zero exit, in count and in check", async () => {
    for (const functions of [{ name: "lookup" }, ["not an object"], "lookup"]) {
      const c = io(JSON.stringify({ messages, functions }));
      expect(await main(["count", "-"], c.cliIo)).toBe(2);
      expect(c.err()).toMatch(/^tokenfuse count: not a valid chat request: functions/);
      expect(c.out()).toBe("");

      const fx = mkdtempSync(join(dir, "fx-bad-"));
      writeFileSync(join(fx, "bad.json"), JSON.stringify({ feature: "chat", messages, functions }));
      const k = io();
      expect(await main(["check", "--config", configPath, "--fixtures", fx], k.cliIo)).not.toBe(0);
      expect(k.err()).toMatch(/bad\.json: functions/);
    }
    // The gateway refuses the same body.
    expect((await gateway("roomy", { messages, functions: { name: "lookup" } })).code).toBe(
      "invalid_request",
    );
  });
});
