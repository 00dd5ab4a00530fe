import type { ResolvedConfig } from "../config/types.js";

/** An API key as far as the tier of the user it acts as is concerned (config or run-time key). */
interface KeyTier {
  user: string;
  tier?: string | undefined;
  trusted: boolean;
}

/**
 * The tier a user's budget is counted in, as the gateway decides it: a run-time override, else the
 * tier of the API keys that act as this user when they agree (an end user `key/u` only through a
 * trusted key), else the default tier. `tier: null` when the keys disagree (then each request's key
 * decides). An override or a key naming a tier the config does not define is ignored, as the
 * gateway ignores it (tier-overrides.ts, key-ring.ts), so raw store data can be passed as is. Shared by `GET /admin/users/{u}`, `GET /admin/usage` and `tokenfuse usage`, so the user's
 * days are read in the zone the budget is counted in.
 */
export function resolveUserTier(
  config: Pick<ResolvedConfig, "defaultTier" | "tiers">,
  user: string,
  override: string | undefined,
  keys: readonly KeyTier[],
): { tier: string | null; source: "override" | "key" | "default_tier" } {
  const known = (tier: string | undefined) => tier === undefined || Object.hasOwn(config.tiers, tier);
  if (override && known(override)) return { tier: override, source: "override" };
  const slash = user.indexOf("/");
  const keyUser = slash < 0 ? user : user.slice(0, slash);
  const through = keys.filter((k) => k.user === keyUser && (slash < 0 || k.trusted) && known(k.tier));
  if (through.length === 0 || through.every((k) => k.tier === undefined))
    return { tier: config.defaultTier, source: "default_tier" };
  const tiers = new Set(through.map((k) => k.tier ?? config.defaultTier));
  return { tier: tiers.size === 1 ? ([...tiers][0] as string) : null, source: "key" };
}
