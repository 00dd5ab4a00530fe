import { createHash, timingSafeEqual } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { ResolvedConfig } from "../config/types.js";
import { queryUsage, UsageQueryError } from "../cost/usage-query.js";
import { isStoreUnavailable } from "../stores/types.js";
import { type AdminDeps, decodePathSegment } from "./admin-common.js";
import { handleAdminKeys } from "./admin-keys.js";
import { handleAdminUsers, userTierFor } from "./admin-users.js";
import { gatewayError, sendJson } from "./http-errors.js";

/** The query parameters of `GET /admin/usage`. */
const USAGE_PARAMS = ["hours", "feature", "user", "tier"];

import { parseJsonObject, readBody } from "./read-body.js";

export type { AdminDeps } from "./admin-common.js";

function digest(s: string): Buffer {
  return createHash("sha256").update(s, "utf8").digest();
}

/**
 * Checks the admin bearer token in constant time (comparing digests, so neither the token's
 * content nor its length leaks through timing). Without `admin.token` in the config the admin API
 * is off: every call is refused.
 */
export function assertAdmin(req: IncomingMessage, config: ResolvedConfig): void {
  const token = config.admin?.token;
  if (!token)
    throw gatewayError(
      "unauthorized",
      "the admin API is off: set admin.token in the config (or TOKENFUSE_ADMIN_TOKEN when serving without a config file)",
    );
  const m = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? "");
  if (!m?.[1] || !timingSafeEqual(digest(m[1]), digest(token)))
    throw gatewayError("unauthorized", "missing or wrong admin token");
}

/** Routes under `/admin/`; returns the route name, or undefined when no admin route matches. */
export async function handleAdmin(
  req: IncomingMessage,
  res: ServerResponse,
  path: string,
  deps: AdminDeps,
): Promise<string | undefined> {
  if (!path.startsWith("/admin/")) return undefined;
  assertAdmin(req, deps.config);
  if (req.method === "GET" && path === "/admin/features") {
    // The switch, and the feature's settings as the config file names them (for the dashboard).
    const out: Record<string, Record<string, unknown>> = {};
    for (const f of Object.values(deps.config.features)) {
      out[f.name] = {
        enabled: deps.switches.isEnabled(f.name),
        configured: f.enabled,
        model: f.model,
        max_input: f.maxInputTokens,
        max_output: f.maxOutputTokens,
        on_exceed: f.onExceed,
        ...(f.dailyTokens !== undefined ? { daily_tokens: f.dailyTokens } : {}),
        ...(f.hourlyCostNanoUsd !== undefined ? { hourly_cost_usd: f.hourlyCostNanoUsd / 1e9 } : {}),
      };
    }
    sendJson(res, 200, { features: out });
    return "admin_features";
  }
  if (req.method === "GET" && path === "/admin/usage") {
    // `?hours=24&feature=chat&user=alice&tier=pro`: what `tokenfuse usage` prints, as JSON.
    const q = new URL(req.url ?? "/", "http://admin.invalid").searchParams;
    for (const k of q.keys())
      if (!USAGE_PARAMS.includes(k))
        throw gatewayError(
          "invalid_request",
          `unknown query parameter "${k}"; allowed: ${USAGE_PARAMS.join(", ")}`,
          400,
          k,
        );
    const rawHours = q.get("hours") ?? "24";
    const hours = /^\d{1,4}$/.test(rawHours) ? Number(rawHours) : Number.NaN;
    let result: Awaited<ReturnType<typeof queryUsage>>;
    try {
      result = await queryUsage(
        deps.config,
        deps.store,
        {
          hours,
          feature: q.get("feature") ?? undefined,
          user: q.get("user") ?? undefined,
          // A user's days are read in the zone of the tier the budget is counted in, unless asked.
          tier: q.get("tier") ?? (q.get("user") ? userTierFor(q.get("user") as string, deps) : undefined),
        },
        deps.nowMs(),
      );
    } catch (e) {
      if (e instanceof UsageQueryError)
        // The same code as the chat route and PUT /admin/features give an unknown feature.
        throw gatewayError(
          e.message.startsWith("unknown feature") ? "unknown_feature" : "invalid_request",
          e.message,
        );
      if (isStoreUnavailable(e))
        throw gatewayError("budget_store_unavailable", "the store is unavailable: usage cannot be read", 503);
      throw e;
    }
    sendJson(res, 200, {
      hours,
      rows: result.rows.map((r) => ({
        window: r.window,
        scope: r.scope,
        requests: r.requests,
        input_tokens: r.inputTokens,
        output_tokens: r.outputTokens,
        cost_nano_usd: r.costNanoUsd,
      })),
      total_cost_nano_usd: result.totalCostNanoUsd,
    });
    return "admin_usage";
  }
  const m = /^\/admin\/features\/([^/]+)$/.exec(path);
  if (req.method === "PUT" && m?.[1]) {
    const name = decodePathSegment(m[1], "feature name");
    if (!Object.hasOwn(deps.config.features, name))
      throw gatewayError("unknown_feature", `unknown feature "${name}"`);
    const body = parseJsonObject(await readBody(req, 4096));
    const extra = Object.keys(body).find((k) => k !== "enabled");
    if (extra !== undefined)
      throw gatewayError(
        "invalid_request",
        `unknown field "${extra}"; body must be {"enabled": true|false}`,
        400,
        extra,
      );
    if (typeof body.enabled !== "boolean")
      throw gatewayError("invalid_request", 'body must be {"enabled": true|false}', 400, "enabled");
    try {
      await deps.switches.set(name, body.enabled);
    } catch (e) {
      if (isStoreUnavailable(e))
        throw gatewayError(
          "budget_store_unavailable",
          "the store is unavailable: the switch was not changed",
          503,
        );
      throw e;
    }
    deps.logger.info({ feature: name, enabled: body.enabled }, "admin: feature switch set");
    sendJson(res, 200, { feature: name, enabled: body.enabled });
    return "admin_feature_switch";
  }
  const access =
    (await handleAdminKeys(req, res, path, deps)) ?? (await handleAdminUsers(req, res, path, deps));
  if (access) return access;
  throw gatewayError("invalid_request", `no admin route for ${req.method} ${path}`, 404);
}
