import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { describe, expect, it } from "vitest";
import { createLogger } from "../core/logger.js";
import { createAlertDispatcher, deliveryErrorText, redactUrls } from "./dispatcher.js";
import { createWebhookSink } from "./sinks.js";
import type { Alert, AlertSink } from "./types.js";

// What the dispatcher logs about a failed delivery never holds URL credentials, a token in a
// sink's URL, or a sink's secret (SPEC §6: the log never holds secrets).

const alert: Alert = {
  kind: "hourly_cost",
  scope: "feature:chat",
  message: "chat spent $21.00 this hour (cap $20.00)",
  atMs: Date.UTC(2026, 10, 24, 10),
};

function capture() {
  const lines: string[] = [];
  const logger = createLogger("debug", { write: (s: string) => void lines.push(s) });
  return { logger, text: () => lines.join("") };
}

async function listen(server: Server): Promise<number> {
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return (server.address() as AddressInfo).port;
}

describe("failed alert deliveries are logged without secrets", () => {
  it("a sink error quoting a URL with credentials and a token is logged as the URL's origin only", async () => {
    const leaky: AlertSink = {
      name: "webhook",
      async send() {
        // What Node's fetch throws for such a URL, quoting it whole.
        throw new TypeError(
          "Request cannot be constructed from a URL that includes credentials: https://alerts:S3cretHookPass@hooks.example.test:8443/services/PathT0ken?key=QueryT0ken",
        );
      },
    };
    const log = capture();
    const d = createAlertDispatcher({ sinks: [leaky], logger: log.logger, attempts: 2, backoffMs: 1 });
    d.dispatch(alert);
    await d.drain();
    expect(d.failed).toBe(1);
    const text = log.text();
    expect(text).toMatch(/alert could not be delivered/);
    for (const secret of ["S3cretHookPass", "alerts:", "PathT0ken", "QueryT0ken", "/services"]) {
      expect(text).not.toContain(secret);
    }
    expect(text).toContain("https://hooks.example.test:8443");
    await d.close();
  });

  it("redactUrls and deliveryErrorText keep origins, drop userinfo, paths and queries (the cause's too)", () => {
    expect(redactUrls('at "https://u:p@h.test/a/b?c=d" and redis://x:y@r.test:6379/0 then')).toBe(
      'at "https://h.test" and redis://r.test:6379 then',
    );
    const e = new TypeError("fetch failed", {
      cause: new Error("bad thing at http://user:pw@127.0.0.1:9/tok/T0K?x=1"),
    });
    expect(deliveryErrorText(e)).toBe("fetch failed (bad thing at http://127.0.0.1:9)");
    expect(deliveryErrorText("x".repeat(1000)).length).toBeLessThanOrEqual(301);
  });

  it("the webhook sink's failures (refused connection, non-2xx, timeout) name neither its URL's token nor its secret", async () => {
    const secret = "S1gningSecretValue";
    let mode: "500" | "hang" = "500";
    const server = createServer((req, res) => {
      req.resume();
      if (mode === "hang") return;
      res.statusCode = 500;
      res.end();
    });
    const port = await listen(server);
    const closed = createServer();
    const closedPort = await listen(closed);
    await new Promise((r) => closed.close(r));
    try {
      for (const [url, m] of [
        [`http://127.0.0.1:${port}/hook/PathT0ken?key=QueryT0ken`, "500"],
        [`http://127.0.0.1:${port}/hook/PathT0ken?key=QueryT0ken`, "hang"],
        [`http://127.0.0.1:${closedPort}/hook/PathT0ken?key=QueryT0ken`, "500"],
      ] as const) {
        mode = m;
        const log = capture();
        const d = createAlertDispatcher({
          sinks: [createWebhookSink({ url, secret })],
          logger: log.logger,
          attempts: 1,
          timeoutMs: 100,
        });
        d.dispatch(alert);
        await d.drain();
        expect(d.failed).toBe(1);
        const text = log.text();
        expect(text).toMatch(/alert could not be delivered/);
        expect(text).toContain("127.0.0.1");
        for (const hidden of [secret, "PathT0ken", "QueryT0ken"]) expect(text).not.toContain(hidden);
        await d.close();
      }
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });

  it("createWebhookSink refuses a URL with a username or password, without repeating it", () => {
    for (const url of [
      "https://alerts:S3cretHookPass@hooks.example.test/x",
      "https://S3cretUser@hooks.example.test/x",
    ]) {
      let message = "";
      expect(() => {
        try {
          createWebhookSink({ url });
        } catch (e) {
          message = (e as Error).message;
          throw e;
        }
      }).toThrow(TypeError);
      expect(message).toMatch(/must not contain a username or password/);
      expect(message).not.toMatch(/S3cret|hooks\.example/);
    }
  });
});
