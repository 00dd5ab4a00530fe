import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { silentLogger } from "../core/logger.js";
import { createAlertDispatcher } from "./dispatcher.js";
import { createWebhookSink, webhookSignature } from "./sinks.js";
import type { Alert } from "./types.js";

interface Receiver {
  url: string;
  bodies: Array<{ body: string; signature: string | undefined }>;
  close(): Promise<void>;
}

/** A real webhook receiver on loopback whose behaviour each test chooses. */
async function receiver(
  behave: (n: number, req: IncomingMessage, res: ServerResponse) => void,
): Promise<Receiver> {
  const bodies: Receiver["bodies"] = [];
  let n = 0;
  const server: Server = createServer((req, res) => {
    let body = "";
    req.on("data", (d) => (body += d));
    req.on("end", () => {
      bodies.push({ body, signature: req.headers["x-tokenfuse-signature"] as string | undefined });
      behave(++n, req, res);
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`,
    bodies,
    close: () =>
      new Promise((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

const alert: Alert = {
  kind: "hourly_cost",
  scope: "feature:chat",
  message: "chat spent $21.00 this hour (cap $20.00)",
  atMs: Date.UTC(2026, 10, 24, 10),
};
let open: Receiver | undefined;
afterEach(async () => {
  await open?.close();
  open = undefined;
});

describe("alert dispatch", () => {
  it("delivers JSON with a Slack-compatible text and a verifiable HMAC signature", async () => {
    open = await receiver((_n, _req, res) => res.end("ok"));
    const d = createAlertDispatcher({
      sinks: [createWebhookSink({ url: open.url, secret: "s3cret-webhook" })],
      logger: silentLogger,
    });
    d.dispatch(alert);
    await d.drain();
    expect(open.bodies).toHaveLength(1);
    const got = open.bodies[0];
    expect(JSON.parse(got?.body ?? "{}")).toMatchObject({
      text: `tokenfuse: ${alert.message}`,
      kind: "hourly_cost",
      scope: "feature:chat",
    });
    expect(got?.signature).toBe(webhookSignature("s3cret-webhook", got?.body ?? ""));
    await d.close();
  });

  it("a hanging webhook never delays the caller; each attempt times out and is retried, then counted as failed", async () => {
    open = await receiver(() => {}); // never answers
    const d = createAlertDispatcher({
      sinks: [createWebhookSink({ url: open.url })],
      logger: silentLogger,
      timeoutMs: 100,
      attempts: 2,
      backoffMs: 10,
    });
    const t = performance.now();
    for (let i = 0; i < 5; i++) d.dispatch({ ...alert, scope: `feature:f${i}` });
    expect(performance.now() - t).toBeLessThan(50); // dispatch returns at once
    await d.drain();
    expect(d.failed).toBe(5);
    expect(open.bodies.length).toBe(10); // 2 attempts × 5 alerts
    await d.close();
  });

  it("a failing webhook is retried with backoff until it succeeds", async () => {
    open = await receiver((n, _req, res) => {
      res.statusCode = n < 3 ? 500 : 200;
      res.end();
    });
    const d = createAlertDispatcher({
      sinks: [createWebhookSink({ url: open.url })],
      logger: silentLogger,
      backoffMs: 10,
      attempts: 3,
    });
    d.dispatch(alert);
    await d.drain();
    expect(open.bodies).toHaveLength(3);
    expect(d.failed).toBe(0);
    await d.close();
  });

  it("the queue is bounded: past it the oldest alert is dropped and counted", async () => {
    open = await receiver(() => {});
    const d = createAlertDispatcher({
      sinks: [createWebhookSink({ url: open.url })],
      logger: silentLogger,
      maxQueue: 3,
      timeoutMs: 50,
      attempts: 1,
    });
    for (let i = 0; i < 10; i++) d.dispatch({ ...alert, scope: `s${i}` });
    expect(d.dropped).toBe(6); // one is being sent, three wait, six were pushed out
    await d.drain();
    await d.close();
  });

  it("a sink that ignores its signal and never settles is given up at the timeout: later alerts still reach every sink, and close() returns", async () => {
    const got: string[] = [];
    const errors: string[] = [];
    const d = createAlertDispatcher({
      sinks: [
        { name: "stuck", send: () => new Promise<void>(() => {}) },
        { name: "fine", send: async (a) => void got.push(a.scope) },
      ],
      logger: { ...silentLogger, error: (o) => void errors.push((o as { sink?: string }).sink ?? "") },
      timeoutMs: 50,
      attempts: 1,
    });
    d.dispatch({ ...alert, scope: "first" });
    d.dispatch({ ...alert, scope: "second" });
    await d.drain();
    expect(got).toEqual(["first", "second"]);
    expect(errors).toEqual(["stuck", "stuck"]);
    expect(d.failed).toBe(2);
    // A send under way when the dispatcher closes is given up (after a 100 ms grace), not awaited.
    d.dispatch({ ...alert, scope: "third" });
    const t0 = Date.now();
    await d.close();
    expect(Date.now() - t0).toBeLessThan(1000);
  });

  it("a sink that throws instead of rejecting is an ordinary failed attempt", async () => {
    const errors: string[] = [];
    const d = createAlertDispatcher({
      sinks: [
        {
          name: "throws",
          send: () => {
            throw new Error("boom");
          },
        },
      ],
      logger: { ...silentLogger, error: (o) => void errors.push((o as { err?: string }).err ?? "") },
      attempts: 1,
    });
    d.dispatch(alert);
    await d.drain();
    expect(errors).toEqual(["boom"]);
    await d.close();
  });

  it("a sink that ignores its signal but finishes late is not tried again (it may still deliver): one delivery", async () => {
    const got: string[] = [];
    const d = createAlertDispatcher({
      sinks: [
        {
          name: "late",
          send: (a) => new Promise<void>((r) => setTimeout(() => r(void got.push(a.scope)), 400)),
        },
      ],
      logger: silentLogger,
      timeoutMs: 100,
      attempts: 3,
      backoffMs: 10,
    });
    d.dispatch({ ...alert, scope: "s1" });
    await d.drain();
    await new Promise((r) => setTimeout(r, 600));
    expect(got).toEqual(["s1"]);
    expect(d.failed).toBe(1);
    await d.close();
  });

  it("close() counts and says what it leaves undelivered", async () => {
    const errors: string[] = [];
    const d = createAlertDispatcher({
      sinks: [
        {
          name: "slow",
          send: (_a, signal) =>
            new Promise<void>((_, rej) => signal.addEventListener("abort", () => rej(new Error("aborted")))),
        },
      ],
      logger: { ...silentLogger, error: (_o, m) => void errors.push(m ?? "") },
      timeoutMs: 5000,
      attempts: 1,
    });
    for (const scope of ["a1", "a2", "a3"]) d.dispatch({ ...alert, scope });
    await d.close();
    expect(d.dropped).toBe(2);
    expect(errors).toContain("alerts not delivered before close");
  });
});
