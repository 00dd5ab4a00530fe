import { Window } from "happy-dom";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
// The page's own module, run here against a real gateway (its DOM code takes its environment).
import * as app from "../assets/dashboard/app.js";
import { loadConfig } from "../src/config/load.js";
import { silentLogger } from "../src/core/logger.js";
import { formatUsd } from "../src/cost/format-usd.js";
import { hashApiKey } from "../src/gateway/auth.js";
import { type MockServer, startMockServer } from "../src/gateway/mock/mock-server.js";
import { createGateway, type Gateway } from "../src/gateway/server.js";
import { createMemoryStore } from "../src/stores/memory-store.js";

const ADMIN = "dashboard-test-admin-token";
const KEY = "tf-dashboard-test-key";

describe("the dashboard (/dashboard) over the admin API", () => {
  let mock: MockServer;
  let gw: Gateway;
  let base: string;
  beforeAll(async () => {
    mock = await startMockServer({ completionTokens: 20 });
    const config = loadConfig(
      {
        upstreams: { p: { type: "openai", base_url: mock.baseUrl, api_key: "sk-x" } },
        features: {
          chat: { model: "gpt-4o", max_input: 300, max_output: 100, on_exceed: "trim", hourly_cost_usd: 5 },
          review: { model: "gpt-4o-mini", max_input: 300, max_output: 100, on_exceed: "reject" },
        },
        keys: [{ hash: hashApiKey(KEY), user: "alice", default_feature: "chat" }],
        admin: { token: ADMIN },
      },
      {},
    );
    gw = createGateway({ config, store: createMemoryStore(), logger: silentLogger });
    base = `http://127.0.0.1:${await gw.listen(0)}`;
  });
  afterAll(async () => {
    await gw.close();
    await mock.close();
  });
  const chat = (feature = "chat") =>
    fetch(`${base}/v1/chat/completions`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${KEY}`,
        "content-type": "application/json",
        "x-tokenfuse-feature": feature,
      },
      body: JSON.stringify({ model: "gpt-4o", messages: [{ role: "user", content: "hi" }] }),
    });

  /** The page in a DOM, running app.js against the gateway; returns the window and the handle. */
  const open = async () => {
    const page = await fetch(`${base}/dashboard`);
    const window = new Window({ url: base });
    window.document.write(await page.text());
    const confirmed: string[] = [];
    const handle = app.startDashboard({
      document: window.document,
      fetch: (path, init) => fetch(`${base}${path}`, init),
      storage: window.sessionStorage,
      setInterval: () => 0,
      clearInterval: () => {},
      confirm: (q) => {
        confirmed.push(q);
        return true;
      },
      now: () => Date.now(),
    });
    await handle.ready;
    return { window, doc: window.document, handle, confirmed };
  };
  /** An element of the page, as far as the tests use it. */
  type El = { hidden: boolean; value: string; textContent: string | null; className: string; click(): void };
  const el = (doc: Window["document"], id: string) => doc.getElementById(id) as unknown as El;
  const submit = (window: Window, id: string) =>
    window.document.getElementById(id)?.dispatchEvent(new window.Event("submit", { cancelable: true }));
  const signIn = async (window: Window, token: string) => {
    el(window.document, "token").value = token;
    submit(window, "login");
  };
  const text = (doc: Window["document"], sel: string) =>
    [...doc.querySelectorAll(sel)].map((e) => e.textContent?.trim() ?? "");

  it("is served with a CSP that allows this origin only, and holds no data", async () => {
    for (const [path, type] of [
      ["/dashboard", "text/html"],
      ["/dashboard/app.js", "text/javascript"],
      ["/dashboard/app.css", "text/css"],
    ] as const) {
      const res = await fetch(`${base}${path}`);
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toContain(type);
      expect(res.headers.get("content-security-policy")).toContain("script-src 'self'");
      expect(res.headers.get("content-security-policy")).toContain("frame-ancestors 'none'");
      expect(res.headers.get("x-content-type-options")).toBe("nosniff");
      const body = await res.text();
      expect(body).not.toContain(ADMIN);
    }
    const post = await fetch(`${base}/dashboard`, { method: "POST" });
    expect(post.status).toBe(405);
    await post.text();
  });

  it("shows each feature's settings, switch and spend; this hour's totals equal the admin API's", async () => {
    expect((await chat()).status).toBe(200);
    const { window, doc, handle } = await open();
    expect(el(doc, "overview").hidden).toBe(true);
    await signIn(window, ADMIN);
    await expect.poll(() => doc.querySelectorAll("#features tbody tr").length).toBe(2);
    handle.stop();
    const usage = (await (
      await fetch(`${base}/admin/usage?hours=1`, { headers: { authorization: `Bearer ${ADMIN}` } })
    ).json()) as { rows: Array<{ scope: string; requests: number; cost_nano_usd: number }> };
    const chatHour = usage.rows.find((r) => r.scope === "feature chat");
    expect(chatHour?.requests).toBe(1);
    const chatRow = text(doc, "#features tbody tr:first-child td");
    expect(chatRow.slice(0, 6)).toEqual([
      "chat",
      "gpt-4o",
      "300 / 100",
      "$5",
      "1",
      formatUsd(chatHour?.cost_nano_usd ?? -1),
    ]);
    expect(text(doc, "#global tbody tr:first-child td")[0]).toBe("global");
    expect(text(doc, "#global tbody tr:first-child td")[1]).toBe("1");
    expect(doc.querySelectorAll("#hours tbody tr").length).toBeGreaterThan(0);
    expect(el(doc, "status").className).toBe("ok");
  });

  it("its switch turns a feature off on the gateway (after a confirmation), and back on", async () => {
    const { window, doc, handle, confirmed } = await open();
    await signIn(window, ADMIN);
    await expect.poll(() => doc.querySelectorAll("#features button").length).toBe(2);
    handle.stop();
    const button = () => doc.querySelector('#features button[data-feature="review"]') as unknown as El;
    expect(button().textContent).toBe("Switch off");
    button().click();
    await expect.poll(() => button()?.textContent).toBe("Switch on");
    expect(confirmed.at(-1)).toContain('Switch feature "review" off?');
    const refused = await chat("review");
    expect(refused.status).toBe(503);
    expect(((await refused.json()) as { error: { code: string } }).error.code).toBe("feature_disabled");
    button().click();
    await expect.poll(() => button()?.textContent).toBe("Switch off");
    expect((await chat("review")).status).toBe(200);
  });

  it("a wrong token is refused with the API's message and forgotten; a user id is shown as text, never as HTML", async () => {
    const { doc, window, handle } = await open();
    await signIn(window, "not-the-token-at-all");
    await expect.poll(() => el(doc, "status").textContent).toBe("missing or wrong admin token");
    expect(window.sessionStorage.getItem("tokenfuse.adminToken")).toBeNull();
    expect(el(doc, "login").hidden).toBe(false);

    await signIn(window, ADMIN);
    await expect.poll(() => el(doc, "overview").hidden).toBe(false);
    handle.stop();
    el(doc, "user").value = "alice";
    submit(window, "user-form");
    await expect
      .poll(() => doc.querySelector("#user-result p")?.textContent ?? "")
      .toMatch(/^alice: tier free \(default_tier\), 1 key\(s\)$/);
    expect(doc.querySelectorAll("#user-result tr").length).toBe(2); // the header and today's row

    const evil = '<img src=x onerror="alert(1)">';
    el(doc, "user").value = evil;
    submit(window, "user-form");
    // Refused by the API (not a user id); whatever comes back is text.
    await expect
      .poll(() => doc.querySelector("#user-result p")?.textContent ?? "")
      .toMatch(/must be a user id/);
    expect(doc.querySelectorAll("#user-result img, #user-result script").length).toBe(0);
  });

  it("formats money as formatUsd does (alerts; the CLI below $1): exactly, at least four decimals", () => {
    for (const n of [
      0, 1, 10_000, 40_000, 9_999_999, 10_000_000, 120_000, 5e9, 123_456_789_012, 9_007_199_254_740_991,
    ]) {
      expect(app.formatUsd(n)).toBe(formatUsd(n));
    }
    expect(app.hourWindowOf(Date.UTC(2026, 10, 24, 16, 59, 59))).toBe("2026-11-24T16:00Z");
  });
});
