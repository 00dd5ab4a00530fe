import type { ResolvedConfig } from "../config/types.js";
import { spendKeys } from "../core/scopes.js";
import { dayWindow, hourWindow } from "../core/windows.js";
import type { Store } from "../stores/types.js";

/** What to report: the last `hours` hours (1…192: spend is kept 8 days), optionally one feature and one user. */
export interface UsageQuery {
  hours: number;
  feature?: string | undefined;
  user?: string | undefined;
  /** The user's tier (its time zone names the user's days); default: the config's default tier. */
  tier?: string | undefined;
}

/** One spend counter with requests in it. */
export interface UsageRow {
  /** `2026-11-24T10:00Z` for an hour, `2026-11-24 (Europe/Paris)` for a user's day. */
  window: string;
  /** `feature <name>`, `model <name>`, `global` or `user <id>`. */
  scope: string;
  requests: number;
  inputTokens: number;
  outputTokens: number;
  costNanoUsd: number;
}

/** The rows with requests, oldest first, and the total cost (the global hours', or the feature's). */
export interface UsageResult {
  rows: UsageRow[];
  totalCostNanoUsd: number;
}

/** A query the config cannot answer: an unknown feature or tier, or hours out of range. */
export class UsageQueryError extends Error {}

/**
 * Reads the spend counters the engine adds to at every settlement (SPEC §7): per feature and
 * global hour, and per user day. Shared by `tokenfuse usage` and the admin API.
 */
export async function queryUsage(
  config: ResolvedConfig,
  store: Store,
  q: UsageQuery,
  nowMs: number,
): Promise<UsageResult> {
  if (!Number.isInteger(q.hours) || q.hours < 1 || q.hours > 24 * 8)
    throw new UsageQueryError("hours must be a whole number from 1 to 192 (spend is kept 8 days)");
  const feature = q.feature;
  if (feature !== undefined && !Object.hasOwn(config.features, feature))
    throw new UsageQueryError(`unknown feature "${feature}"`);
  const tierName = q.tier ?? config.defaultTier;
  const tier = Object.hasOwn(config.tiers, tierName) ? config.tiers[tierName] : undefined;
  if (!tier) throw new UsageQueryError(`unknown tier "${tierName}"`);
  const features = feature ? [feature] : Object.keys(config.features);
  // Every model a configured feature may use (its model and allowed_models): the per-model rows.
  const models = feature
    ? []
    : [...new Set(Object.values(config.features).flatMap((f) => [f.model, ...f.allowedModels]))];
  const wanted: Array<{ window: string; scope: string; key: string }> = [];
  for (let h = q.hours - 1; h >= 0; h--) {
    const id = hourWindow(nowMs - h * 3_600_000).id;
    for (const f of features)
      wanted.push({ window: `${id}:00Z`, scope: `feature ${f}`, key: spendKeys.featureHour(f, id) });
    for (const m of models)
      wanted.push({ window: `${id}:00Z`, scope: `model ${m}`, key: spendKeys.modelHour(m, id) });
    if (!feature) wanted.push({ window: `${id}:00Z`, scope: "global", key: spendKeys.globalHour(id) });
  }
  if (q.user !== undefined) {
    const days = new Set<string>();
    for (let h = q.hours - 1; h >= 0; h--) days.add(dayWindow(nowMs - h * 3_600_000, tier.timeZone).id);
    for (const d of days)
      wanted.push({
        window: `${d} (${tier.timeZone})`,
        scope: `user ${q.user}`,
        key: spendKeys.userDay(q.user, d),
      });
  }
  const totals = await store.readSpend(wanted.map((w) => w.key));
  const rows: UsageRow[] = [];
  let totalCostNanoUsd = 0;
  wanted.forEach((w, i) => {
    const t = totals[i];
    if (!t || t.requests === 0) return;
    if (w.scope === "global" || (feature && w.scope.startsWith("feature"))) totalCostNanoUsd += t.costNanoUsd;
    rows.push({
      window: w.window,
      scope: w.scope,
      requests: t.requests,
      inputTokens: t.inputTokens,
      outputTokens: t.outputTokens,
      costNanoUsd: t.costNanoUsd,
    });
  });
  return { rows, totalCostNanoUsd };
}
