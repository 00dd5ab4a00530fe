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
