import { silentLogger } from "../core/logger.js";
import { spendKeys } from "../core/scopes.js";
import { dayWindow, hourWindow } from "../core/windows.js";
import { createStoreFromConfig } from "../stores/from-config.js";
import { resolveCliConfig } from "./config-arg.js";
import { CliError, type CliIo, parseCliArgs } from "./io.js";
import { num, renderTable, usd } from "./table.js";

/**
 * `tokenfuse usage [--user U] [--tier T] [--feature F] [--hours H] [--config F]`: tokens and cost
 * per hour (features, global) and per day (a user), read from the shared store's spend counters.
 */
export async function runUsage(args: string[], io: CliIo): Promise<number> {
  const { values } = parseCliArgs(
    args,
    {
      user: { type: "string" },
      tier: { type: "string" },
      feature: { type: "string" },
      hours: { type: "string", default: "24" },
      config: { type: "string" },
    },
    false,
  );
  const hours = Number(values.hours);
  if (!Number.isInteger(hours) || hours < 1 || hours > 24 * 8)
    throw new CliError("--hours must be a whole number from 1 to 192 (spend is kept 8 days)");
  const { config } = resolveCliConfig(values.config as string | undefined, io);
  if (config.store.kind === "memory") {
    throw new CliError(
      "the config uses the memory store, which lives inside one process: usage is only readable from a shared (Redis) store",
    );
  }
  const feature = values.feature as string | undefined;
  if (feature !== undefined && !config.features[feature]) throw new CliError(`unknown feature "${feature}"`);
  const tierName = (values.tier as string | undefined) ?? config.defaultTier;
  const tier = config.tiers[tierName];
  if (!tier) throw new CliError(`unknown tier "${tierName}"`);
  const features = feature ? [feature] : Object.keys(config.features);
  const now = Date.now();
  const rows: Array<{ label: string; scope: string; key: string }> = [];
  for (let h = hours - 1; h >= 0; h--) {
    const id = hourWindow(now - h * 3_600_000).id;
    for (const f of features)
      rows.push({ label: `${id}:00Z`, scope: `feature ${f}`, key: spendKeys.featureHour(f, id) });
    if (!feature) rows.push({ label: `${id}:00Z`, scope: "global", key: spendKeys.globalHour(id) });
  }
  const user = values.user as string | undefined;
  if (user) {
    const days = new Set<string>();
    for (let h = hours - 1; h >= 0; h--) days.add(dayWindow(now - h * 3_600_000, tier.timeZone).id);
    for (const d of days)
      rows.push({ label: `${d} (${tier.timeZone})`, scope: `user ${user}`, key: spendKeys.userDay(user, d) });
  }
  const store = createStoreFromConfig(config.store, silentLogger);
  try {
    const totals = await store.readSpend(rows.map((r) => r.key));
    const table = [["window", "scope", "requests", "input tokens", "output tokens", "cost"]];
    let cost = 0;
    rows.forEach((r, i) => {
      const t = totals[i];
      if (!t || t.requests === 0) return;
      if (r.scope === "global" || (feature && r.scope.startsWith("feature"))) cost += t.costNanoUsd;
      table.push([
        r.label,
        r.scope,
        num(t.requests),
        num(t.inputTokens),
        num(t.outputTokens),
        usd(t.costNanoUsd),
      ]);
    });
    if (table.length === 1) io.out(`no usage in the last ${hours} h\n`);
    else
      io.out(
        `${renderTable(table)}\n\ntotal cost in the last ${hours} h${feature ? ` for ${feature}` : ""}: ${usd(cost)}\n`,
      );
    return 0;
  } finally {
    await store.close();
  }
}
