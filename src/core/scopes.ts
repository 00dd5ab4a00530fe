import type { FeatureConfig, ResolvedConfig, TierConfig } from "../config/types.js";
import type { ScopeCharge, ScopeKind, WindowKind } from "../stores/types.js";
import type { ErrorCode } from "./errors.js";
import { dayWindow, hourWindow, minuteWindow, type Window } from "./windows.js";

/** Counters are kept this long past their window so usage can be reported for a week (ms). */
const DAY_RETENTION_MS = 8 * 86_400_000;
/** Minute counters are kept one extra minute (ms). */
const MINUTE_RETENTION_MS = 60_000;
/** Limit used for counters that only report usage (no cap configured). */
export const NO_LIMIT = Number.MAX_SAFE_INTEGER;

/**
 * Escapes an id for use inside a key. Why: user ids come from callers; without escaping, a user named
 * `a}:day:x` could collide with another user's counter.
 */
export function keyPart(id: string): string {
  return encodeURIComponent(id);
}

function charge(
  key: string,
  kind: ScopeKind,
  window: WindowKind,
  limit: number,
  w: Window,
  keepMs: number,
): ScopeCharge {
  return { key, kind, window, limit, resetAtMs: w.endMs, expireAtMs: w.endMs + keepMs };
}

/** The counters a request of `feature` by `user` of `tier` is charged to, at `nowMs`, in check order. */
export function scopesFor(
  config: ResolvedConfig,
  feature: FeatureConfig,
  user: string,
  tier: TierConfig,
  nowMs: number,
): ScopeCharge[] {
  const u = keyPart(user);
  const day = dayWindow(nowMs, tier.timeZone);
  const minute = minuteWindow(nowMs);
  const scopes: ScopeCharge[] = [
    charge(`user:{${u}}:day:${day.id}`, "user", "day", tier.dailyTokens, day, DAY_RETENTION_MS),
  ];
  if (tier.tokensPerMinute !== undefined) {
    scopes.push(
      charge(
        `user:{${u}}:minute:${minute.id}`,
        "user",
        "minute",
        tier.tokensPerMinute,
        minute,
        MINUTE_RETENTION_MS,
      ),
    );
  }
  const utcDay = dayWindow(nowMs, "UTC");
  scopes.push(
    charge(
      `feature:{${keyPart(feature.name)}}:day:${utcDay.id}`,
      "feature",
      "day",
      feature.dailyTokens ?? NO_LIMIT,
      utcDay,
      DAY_RETENTION_MS,
    ),
  );
  scopes.push(
    charge(
      `global:minute:${minute.id}`,
      "global",
      "minute",
      config.global.tokensPerMinute,
      minute,
      MINUTE_RETENTION_MS,
    ),
  );
  return scopes;
}

/** The SPEC §5 code for a refusal in a scope of `kind`. */
export function refusalCode(kind: ScopeKind): ErrorCode {
  if (kind === "user") return "user_budget_exceeded";
  if (kind === "feature") return "feature_budget_exceeded";
  return "global_rate_limited";
}

/** Spend counters are kept this long past their window, so a week of spend can be reported (ms). */
const SPEND_RETENTION_MS = 8 * 86_400_000;

/** The spend key of a feature, model or global hour, or a user's day (`tokenfuse usage` reads them). */
export const spendKeys = {
  featureHour: (feature: string, hourId: string) => `spend:feature:{${keyPart(feature)}}:hour:${hourId}`,
  modelHour: (model: string, hourId: string) => `spend:model:{${keyPart(model)}}:hour:${hourId}`,
  globalHour: (hourId: string) => `spend:global:hour:${hourId}`,
  userDay: (user: string, dayId: string) => `spend:user:{${keyPart(user)}}:day:${dayId}`,
};

/** The spend counters a settled request adds to, at `nowMs`. */
export function spendCountersFor(
  feature: string,
  model: string,
  user: string,
  tier: TierConfig,
  nowMs: number,
): Array<{ key: string; expireAtMs: number }> {
  const hour = hourWindow(nowMs);
  const day = dayWindow(nowMs, tier.timeZone);
  const h = hour.endMs + SPEND_RETENTION_MS;
  return [
    { key: spendKeys.featureHour(feature, hour.id), expireAtMs: h },
    { key: spendKeys.modelHour(model, hour.id), expireAtMs: h },
    { key: spendKeys.globalHour(hour.id), expireAtMs: h },
    { key: spendKeys.userDay(user, day.id), expireAtMs: day.endMs + SPEND_RETENTION_MS },
  ];
}

/** A cached value and the instants [from, until) it holds for. */
interface Cached<T> {
  from: number;
  until: number;
  value: T;
}

/** Per feature, then tier (by identity), then user. */
type Tree<T> = Map<FeatureConfig, Map<TierConfig, Map<string, Cached<T>>>>;

/**
 * {@link scopesFor} and {@link spendCountersFor}, remembered per feature, tier and user for as long
 * as every window they name lasts (up to a minute for scopes, an hour for spend counters).
 * Why: building them means escaping the user id, formatting four or five keys and as many objects
 * on every request, while a user's requests within a minute all get the same ones — and the same
 * key strings keep their hash, so the store's lookups by key get cheaper too. The values are shared:
 * callers never mutate them. Bounded: emptied whenever it reaches `maxEntries` users.
 */
export function createScopeCache(config: ResolvedConfig, maxEntries = 10_000) {
  const scopeTree: Tree<ScopeCharge[]> = new Map();
  const spendTree: Tree<Array<{ key: string; expireAtMs: number }>> = new Map();
  let entries = 0;

  function lookup<T>(tree: Tree<T>, feature: FeatureConfig, tier: TierConfig, user: string, nowMs: number) {
    let byTier = tree.get(feature);
    if (!byTier) {
      byTier = new Map();
      tree.set(feature, byTier);
    }
    let byUser = byTier.get(tier);
    if (!byUser) {
      byUser = new Map();
      byTier.set(tier, byUser);
    }
    const hit = byUser.get(user);
    return { byUser, value: hit && nowMs >= hit.from && nowMs < hit.until ? hit.value : undefined };
  }

  function store<T>(byUser: Map<string, Cached<T>>, user: string, entry: Cached<T>): void {
    if (entries >= maxEntries) {
      scopeTree.clear();
      spendTree.clear();
      entries = 0;
      // The map handed in was just dropped with the rest: this entry waits for the next request.
      return;
    }
    if (!byUser.has(user)) entries++;
    byUser.set(user, entry);
  }

  return {
    scopes(feature: FeatureConfig, user: string, tier: TierConfig, nowMs: number): ScopeCharge[] {
      const { byUser, value } = lookup(scopeTree, feature, tier, user, nowMs);
      if (value) return value;
      const made = scopesFor(config, feature, user, tier, nowMs);
      const day = dayWindow(nowMs, tier.timeZone);
      const utcDay = dayWindow(nowMs, "UTC");
      const minute = minuteWindow(nowMs);
      store(byUser, user, {
        from: Math.max(day.startMs, utcDay.startMs, minute.startMs),
        until: Math.min(day.endMs, utcDay.endMs, minute.endMs),
        value: made,
      });
      return made;
    },
    spendCounters(feature: FeatureConfig, model: string, user: string, tier: TierConfig, nowMs: number) {
      // The model is part of the keys: cache only the feature's own model (the usual case).
      if (model !== feature.model) return spendCountersFor(feature.name, model, user, tier, nowMs);
      const { byUser, value } = lookup(spendTree, feature, tier, user, nowMs);
      if (value) return value;
      const made = spendCountersFor(feature.name, model, user, tier, nowMs);
      const day = dayWindow(nowMs, tier.timeZone);
      const hour = hourWindow(nowMs);
      store(byUser, user, {
        from: Math.max(day.startMs, hour.startMs),
        until: Math.min(day.endMs, hour.endMs),
        value: made,
      });
      return made;
    },
  };
}
