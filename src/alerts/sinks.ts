import { createHmac } from "node:crypto";
import type { Logger } from "../core/logger.js";
import { redactUrls } from "./dispatcher.js";
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
 * answer is a failure (retried by the dispatcher). The URL may hold a token, so it is never logged:
 * the errors this sink throws name the URL's origin only and never contain the secret.
 * A URL with a username or password is refused (TypeError): `fetch` would refuse every request to
 * it, quoting the whole URL in its error (the config refuses it too, with the same advice).
 */
export function createWebhookSink(options: WebhookSinkOptions): AlertSink {
  let url: URL;
  try {
    url = new URL(options.url);
  } catch {
    throw new TypeError("webhook sink: the URL is not a valid absolute URL");
  }
  if (url.username !== "" || url.password !== "") {
    throw new TypeError(
      "webhook sink: the URL must not contain a username or password (user:password@): put a token in its path or query instead, or sign the body with the sink's secret",
    );
  }
  const origin = url.origin;
  // Everything of the URL and the secret that must never reach an error message.
  const hidden = [options.url, url.href, options.secret]
    .filter((h): h is string => typeof h === "string" && h.length > 0)
    .sort((a, b) => b.length - a.length);
  const safe = (text: string) => redactUrls(hidden.reduce((t, h) => t.split(h).join("[redacted]"), text));
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
      let res: Response;
      try {
        res = await fetch(options.url, { method: "POST", headers, body, signal });
      } catch (e) {
        throw new Error(`webhook request to ${origin} failed: ${safe(failureText(e))}`);
      }
      await res.arrayBuffer().catch(() => undefined);
      if (res.status < 200 || res.status >= 300)
        throw new Error(`webhook at ${origin} answered ${res.status}`);
    },
  };
}

/** A fetch failure in a few words: the error's name and message, and its cause's code or message. */
function failureText(e: unknown): string {
  if (!(e instanceof Error)) return String(e);
  const cause = (e as { cause?: unknown }).cause;
  const code = cause instanceof Error ? (cause as { code?: unknown }).code : undefined;
  const detail = typeof code === "string" ? code : cause instanceof Error ? cause.message : "";
  return `${e.name}: ${e.message}${detail ? ` (${detail})` : ""}`;
}
