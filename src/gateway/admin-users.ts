import type { IncomingMessage, ServerResponse } from "node:http";
import { isBudgetUserId, USER_ID_RULE } from "../access/user-ids.js";
import { resolveUserTier } from "../access/user-tier.js";
import type { KeyConfig } from "../config/types.js";
import { type AdminDeps, decodePathSegment, storeCall } from "./admin-common.js";
import { gatewayError, sendJson } from "./http-errors.js";
import { parseJsonObject, readBody } from "./read-body.js";

/** Where a user's tier comes from. */
type TierSource = "override" | "key" | "default_tier";

/** What `GET /admin/users/{user}` answers. */
export interface UserView {
  user: string;
  /** The tier this gateway applies to the user's requests; null when their keys name different tiers. */
  tier: string | null;
  source: TierSource;
  /** The run-time override, if one is set. */
  override: string | null;
  /** The keys requests for this user come through (for `<key user>/<end user>`: the trusted keys of the key user). */
  keys: Array<{ hash: string; source: "config" | "store"; tier: string | null }>;
}

function describeUser(user: string, deps: AdminDeps): UserView {
  const { config } = deps;
  const slash = user.indexOf("/");
  const keyUser = slash < 0 ? user : user.slice(0, slash);
  const through = (k: KeyConfig) => k.user === keyUser && (slash < 0 || k.trusted);
  const keys = [
    ...config.keys
      .filter(through)
      .map((k) => ({ hash: k.hash, source: "config" as const, tier: k.tier ?? null })),
    ...deps.keys
      .list()
      .filter(through)
      .map((k) => ({ hash: k.hash, source: "store" as const, tier: k.tier ?? null })),
  ];
  const override = deps.tiers.get(user) ?? null;
  const { tier, source } = resolveUserTier(config, user, override ?? undefined, [
    ...config.keys,
    ...deps.keys.list(),
  ]);
  return { user, tier, source, override, keys };
}

/** The tier a user's days are counted in (the default tier when its keys disagree). */
export function userTierFor(user: string, deps: AdminDeps): string {
  return describeUser(user, deps).tier ?? deps.config.defaultTier;
}

function userFromPath(raw: string): string {
  const user = decodePathSegment(raw, "the user id");
  if (!isBudgetUserId(user))
    throw gatewayError(
      "invalid_request",
      `the user in the path must be a user id (${USER_ID_RULE}), or <key user>/<end user> for an end user ` +
        "named by a trusted key, with the slash written %2F",
    );
  return user;
}

/** `GET /admin/users/{user}`, `PUT` and `DELETE /admin/users/{user}/tier`; undefined when none matches. */
export async function handleAdminUsers(
  req: IncomingMessage,
  res: ServerResponse,
  path: string,
  deps: AdminDeps,
): Promise<string | undefined> {
  const m = /^\/admin\/users\/([^/]+)(\/tier)?$/.exec(path);
  if (!m?.[1]) return undefined;
  if (!m[2] && req.method === "GET") {
    sendJson(res, 200, describeUser(userFromPath(m[1]), deps));
    return "admin_user";
  }
  if (!m[2] || (req.method !== "PUT" && req.method !== "DELETE")) return undefined;
  const user = userFromPath(m[1]);
  let tier: string | undefined;
  if (req.method === "PUT") {
    const body = parseJsonObject(await readBody(req, 4096));
    const extra = Object.keys(body).find((k) => k !== "tier");
    if (extra !== undefined || !("tier" in body))
      throw gatewayError(
        "invalid_request",
        `${extra !== undefined ? `unknown field "${extra}"; ` : ""}body must be {"tier": "<tier name>"}, or {"tier": null} to remove the override`,
        400,
        extra ?? "tier",
      );
    if (body.tier !== null) {
      if (typeof body.tier !== "string" || !Object.hasOwn(deps.config.tiers, body.tier))
        throw gatewayError(
          "invalid_request",
          `unknown tier ${JSON.stringify(body.tier)}; tiers: ${Object.keys(deps.config.tiers).join(", ")}`,
          400,
          "tier",
        );
      tier = body.tier;
    }
  }
  const before = describeUser(user, deps).tier;
  await storeCall(() => deps.tiers.set(user, tier), "the tier was not changed");
  deps.logger.info(
    { user, tier: tier ?? null },
    tier ? "admin: tier override set" : "admin: tier override removed",
  );
  const after = describeUser(user, deps);
  // The daily counter is kept per user and calendar date of the tier's zone: a tier in another
  // time zone counts another "today", so what the user spent so far today may not carry over (or
  // usage from before that zone's midnight may). Said in the answer, never silently.
  const zoneOf = (t: string | null) => (t === null ? undefined : deps.config.tiers[t]?.timeZone);
  const fromZone = zoneOf(before);
  const toZone = zoneOf(after.tier);
  const body: Record<string, unknown> = { ...after };
  if (fromZone !== undefined && toZone !== undefined && fromZone !== toZone) {
    body.time_zone_change = {
      from: fromZone,
      to: toZone,
      note: `the user's day now follows ${toZone}: tokens are counted per calendar date of that zone, so usage counted under ${fromZone} for a different date does not carry over to today's budget`,
    };
  }
  sendJson(res, 200, body);
  return tier ? "admin_user_tier_set" : "admin_user_tier_clear";
}
