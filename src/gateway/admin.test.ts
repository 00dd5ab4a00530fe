import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../config/load.js";
import { silentLogger } from "../core/logger.js";
import { createMemoryStore } from "../stores/memory-store.js";
import { createGateway, type Gateway } from "./server.js";

const TOKEN = "admin-test-token-0123456789";

describe("admin API", () => {
  let gw: Gateway;
  let base: string;
  const features = async () =>
    (
      (await (
        await fetch(`${base}/admin/features`, { headers: { authorization: `Bearer ${TOKEN}` } })
      ).json()) as { features: Record<string, { enabled: boolean }> }
    ).features;

  beforeAll(async () => {
    const config = loadConfig(
      {
        upstreams: { provider: { type: "openai", base_url: "http://127.0.0.1:9", api_key: "sk-unused" } },
        features: { chat: { model: "gpt-4o", max_input: 300, max_output: 100, on_exceed: "reject" } },
        tiers: { free: { daily_tokens: 10_000 } },
        default_tier: "free",
        admin: { token: TOKEN },
      },
      {},
    );
    gw = createGateway({ config, store: createMemoryStore(), logger: silentLogger });
    base = `http://127.0.0.1:${await gw.listen(0)}`;
  });
  afterAll(async () => {
    await gw?.close();
  });

  it("answers 400 invalid_request for a malformed percent-escape in a feature name, and changes nothing", async () => {
    const before = await features();
    const res = await fetch(`${base}/admin/features/%E0%A4%A`, {
      method: "PUT",
      headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify({ enabled: false }),
    });
    expect(res.status).toBe(400);
    const body = (await res.json()) as { error: { code: string; type: string; message: string } };
    expect(body.error).toMatchObject({ code: "invalid_request", type: "invalid_request_error" });
    expect(body.error.message).toMatch(/percent-encoding/);
    expect(await features()).toEqual(before);
  });

  it("GET /admin/usage reports the spend counters as JSON, for the admin token only", async () => {
    const a = await gw.engine.admit({
      feature: "chat",
      user: "u-adm",
      messages: [{ role: "user", content: "hi" }],
    });
    await a.settle({ prompt_tokens: 1000, completion_tokens: 500 });
    const get = (q: string, token = TOKEN) =>
      fetch(`${base}/admin/usage${q}`, { headers: { authorization: `Bearer ${token}` } });
    expect((await get("", "wrong")).status).toBe(401);
    const res = await get("?hours=1&user=u-adm");
    expect(res.status).toBe(200);
    const body = (await res.json()) as {
      rows: Array<{
        scope: string;
        requests: number;
        input_tokens: number;
        output_tokens: number;
        cost_nano_usd: number;
      }>;
      total_cost_nano_usd: number;
    };
    // gpt-4o: $2.50 / 1M input, $10 / 1M output → 1000 in + 500 out = $0.0075.
    const rows = Object.fromEntries(body.rows.map((r) => [r.scope, r]));
    for (const scope of ["feature chat", "global", "user u-adm"])
      expect(rows[scope]).toMatchObject({
        requests: 1,
        input_tokens: 1000,
        output_tokens: 500,
        cost_nano_usd: 7_500_000,
      });
    expect(body.total_cost_nano_usd).toBe(7_500_000);
    for (const bad of ["?hours=0", "?hours=abc", "?feature=nope", "?tier=nope", "?hour=3"]) {
      const r = await get(bad);
      expect(r.status).toBe(400);
      expect(((await r.json()) as { error: { code: string } }).error.code).toBe(
        bad === "?feature=nope" ? "unknown_feature" : "invalid_request",
      );
    }
    const typo = (await (await get("?hour=3")).json()) as { error: { message: string; param: string } };
    expect(typo.error).toMatchObject({
      param: "hour",
      message: expect.stringMatching(/unknown query parameter "hour"/),
    });
  });

  it("PUT /admin/features/{f} refuses a body with an unknown field, naming it, and changes nothing", async () => {
    const before = await features();
    const res = await fetch(`${base}/admin/features/chat`, {
      method: "PUT",
      headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify({ enabled: false, foo: 1 }),
    });
    expect(res.status).toBe(400);
    const body = (await res.json()) as { error: { code: string; message: string; param: string } };
    expect(body.error).toMatchObject({ code: "invalid_request", param: "foo" });
    expect(body.error.message).toMatch(/unknown field "foo"/);
    expect(await features()).toEqual(before);
  });
});
