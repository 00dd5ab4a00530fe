import { createHmac } from "node:crypto";
import type { Logger } from "../core/logger.js";
import type { AlertSink } from "./types.js";

/** Writes alerts to the log (warn level). */
export function createLogSink(logger: Logger): AlertSink {
  return {
    name: "log",
    async send(alert) {
      logger.warn(
        { alert: { kind: alert.kind, scope: alert.scope, atMs: alert.atMs, details: alert.details } },
        alert.message,
      );
    },
  };
}

/** Options of {@link createWebhookSink}. */
export interface WebhookSinkOptions {
  url: string;
  /** When set, the body is signed: `x-tokenfuse-signature: sha256=<hex HMAC-SHA256 of the body>`. */
  secret?: string | undefined;
}

/** The signature header value for `body` under `secret`. */
export function webhookSignature(secret: string, body: string): string {
  return `sha256=${createHmac("sha256", secret).update(body, "utf8").digest("hex")}`;
}

/**
 * POSTs alerts as JSON with a Slack-compatible `text` field (plus the alert's fields). A non-2xx
 * answer is a failure (retried by the dispatcher). The URL may hold a token, so it is never logged.
 */
export function createWebhookSink(options: WebhookSinkOptions): AlertSink {
  return {
    name: "webhook",
    async send(alert, signal) {
      const body = JSON.stringify({
        text: `tokenfuse: ${alert.message}`,
        kind: alert.kind,
        scope: alert.scope,
        at: new Date(alert.atMs).toISOString(),
        ...(alert.details ? { details: alert.details } : {}),
      });
      const headers: Record<string, string> = { "content-type": "application/json" };
      if (options.secret) headers["x-tokenfuse-signature"] = webhookSignature(options.secret, body);
      const res = await fetch(options.url, { method: "POST", headers, body, signal });
      await res.arrayBuffer().catch(() => undefined);
      if (res.status < 200 || res.status >= 300) throw new Error(`webhook answered ${res.status}`);
    },
  };
}
