import { resolveUserTier } from "../access/user-tier.js";
import { createConfiguredEngine } from "../configured-engine.js";
import type { BudgetReport, BudgetWindow, CostWindow } from "../core/engine.js";
import { silentLogger } from "../core/logger.js";
import { queryUsage, UsageQueryError } from "../cost/usage-query.js";
import { createStoreFromConfig } from "../stores/from-config.js";
import { resolveCliConfig } from "./config-arg.js";
import { CliError, type CliIo, parseCliArgs } from "./io.js";
import { num, renderTable, usd } from "./table.js";

/** The budget windows of a report as table rows (SPEC §4: every scope's remaining budget). */
function budgetRows(report: BudgetReport): string[][] {
  const rows = [["budget", "limit", "used", "reserved", "remaining", "resets at"]];
  const add = (name: string, w: BudgetWindow | undefined) => {
    if (!w) return;
    rows.push([
      name,
      w.limit === null ? "none" : num(w.limit),
      num(w.used),
      num(w.reserved),
      w.remaining === null ? "–" : num(w.remaining),
      w.resets_at,
    ]);
  };
  add(`user ${report.user.id}, day`, report.user.day);
  add(`user ${report.user.id}, minute`, report.user.minute);
  for (const [name, f] of Object.entries(report.features)) {
    if (f.daily) add(`feature ${name}, day`, f.daily);
    else rows.push([`feature ${name}, day`, "none", num(f.used_today), "–", "–", "–"]);
  }
  add("global, minute", report.global.minute);
  // Hourly cost caps, in USD (nothing is reserved against a cost cap: it is checked on settled spend).
  const cost = (name: string, c: CostWindow | undefined) => {
    if (!c) return;
    const $ = (x: number) => usd(Math.round(x * 1e9));
    rows.push([name, $(c.limit_usd), $(c.spent_usd), "–", $(c.remaining_usd), c.resets_at]);
  };
  for (const [name, f] of Object.entries(report.features)) cost(`feature ${name}, hour cost`, f.hourly_cost);
  cost("global, hour cost", report.global.hourly_cost);
  return rows;
}

/**
 * `tokenfuse usage [--user U] [--tier T] [--feature F] [--hours H] [--config F]`: tokens and cost
 * per hour (features, global) and per day (a user), read from the shared store's spend counters;
 * with --user, also that user's budgets as the gateway's `GET /v1/budget` reports them.
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
  // As GET /admin/usage parses `hours`: decimal digits only (Number() took "1e1", "0x10", " 24").
  const rawHours = values.hours as string;
  const hours = /^\d{1,4}$/.test(rawHours) ? Number(rawHours) : Number.NaN;
  if (!(hours >= 1 && hours <= 24 * 8))
    throw new CliError(
      `--hours must be a whole number from 1 to 192 (spend is kept 8 days), got "${rawHours}"`,
    );
  // Any non-empty id: the library charges any (the engine refuses only an empty one), and
  // GET /admin/usage?user= reads them alike. Checked before anything is read or printed.
  if (values.user === "") throw new CliError("--user needs a user id, got an empty value");
  const { config } = resolveCliConfig(values.config as string | undefined, io);
  if (config.store.kind === "memory") {
    throw new CliError(
      "the config uses the memory store, which lives inside one process: usage is only readable from a shared (Redis) store (a running gateway's own usage: its GET /admin/usage)",
    );
  }
  const feature = values.feature as string | undefined;
  const store = createStoreFromConfig(config.store, silentLogger);
  try {
    const user = values.user as string | undefined;
    let tier = values.tier as string | undefined;
    if (user !== undefined && tier === undefined) {
      // The user's days are read in the zone of the tier their budget is counted in, as the gateway
      // decides it (a run-time override, else their keys' tier, else the default tier).
      const [overrides, stored] = await Promise.all([store.readUserTiers(), store.readApiKeys()]);
      const r = resolveUserTier(config, user, overrides.entries?.[user], [
        ...config.keys,
        ...(stored.entries ?? []),
      ]);
      tier = r.tier ?? config.defaultTier;
      if (r.tier === null)
        io.err(
          `user ${user} has API keys of different tiers: their days are shown in the default tier's zone (pass --tier T for another)\n`,
        );
    }
    let result: Awaited<ReturnType<typeof queryUsage>>;
    try {
      result = await queryUsage(config, store, { hours, feature, user, tier }, Date.now());
    } catch (e) {
      if (e instanceof UsageQueryError) throw new CliError(e.message.replace(/^hours/, "--hours"));
      throw e;
    }
    const table = [["window", "scope", "requests", "input tokens", "output tokens", "cost"]];
    for (const r of result.rows)
      table.push([
        r.window,
        r.scope,
        num(r.requests),
        num(r.inputTokens),
        num(r.outputTokens),
        usd(r.costNanoUsd),
      ]);
    if (table.length === 1) io.out(`no usage in the last ${hours} h\n`);
    else {
      // With --user, the hour rows and their total are everyone's (the feature's with --feature);
      // the user's own spend is in the user's day rows, totalled apart.
      let userLine = "";
      if (user !== undefined) {
        const own = result.rows.filter((r) => r.scope === `user ${user}`);
        userLine = `\nuser ${user}'s cost on the days shown: ${usd(own.reduce((s, r) => s + r.costNanoUsd, 0))}\n`;
      }
      io.out(
        `${renderTable(table)}\n\ntotal cost in the last ${hours} h${feature ? ` for ${feature}` : user !== undefined ? " (all users)" : ""}: ${usd(result.totalCostNanoUsd)}\n${userLine}`,
      );
    }
    if (user !== undefined) {
      // The same document as the gateway's GET /v1/budget, read through an engine on this store.
      // No usage log: reading budgets writes nothing.
      const configured = createConfiguredEngine({
        config: { ...config, usageLog: undefined },
        store,
        logger: silentLogger,
      });
      try {
        const report = await configured.engine.remaining({
          user,
          tier,
          ...(feature !== undefined ? { features: [feature] } : {}),
        });
        io.out(
          `\nbudgets of user ${user} (tier ${report.user.tier}) now:\n${renderTable(budgetRows(report))}\n`,
        );
      } finally {
        await configured.close();
      }
    }
    return 0;
  } finally {
    await store.close();
  }
}
