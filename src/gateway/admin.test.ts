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
});
