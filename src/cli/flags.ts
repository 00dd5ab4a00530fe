import { silentLogger } from "../core/logger.js";
import { createStoreFromConfig } from "../stores/from-config.js";
import { createSwitchBoard } from "../switches/switch-board.js";
import { resolveCliConfig } from "./config-arg.js";
import { CliError, type CliIo, parseCliArgs } from "./io.js";
import { renderTable } from "./table.js";

/**
 * `tokenfuse flags list|enable|disable FEATURE [--config F]`: feature switches in the config's store.
 * On a shared (Redis) store every process sees a change within a second; the memory store lives in
 * one process, so the CLI refuses to pretend it changed anything there.
 */
export async function runFlags(args: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseCliArgs(args, { config: { type: "string" } }, true);
  const [action, feature, ...extra] = positionals;
  if (extra.length > 0 || !action || !["list", "enable", "disable"].includes(action)) {
    throw new CliError("usage: tokenfuse flags list | enable FEATURE | disable FEATURE [--config F]");
  }
  const { config } = resolveCliConfig(values.config as string | undefined, io);
  if (config.store.kind === "memory") {
    throw new CliError(
      "the config uses the memory store, which lives inside one process: use the running gateway's admin API (PUT /admin/features/NAME), or a Redis store",
    );
  }
  const store = createStoreFromConfig(config.store, silentLogger);
  const switches = createSwitchBoard({ config, store, logger: silentLogger, refreshMs: 0 });
  try {
    if (action === "list") {
      const overrides = await store.getSwitches();
      await switches.refresh();
      const rows = [["feature", "enabled", "set at run time"]];
      for (const f of Object.values(config.features)) {
        rows.push([
          f.name,
          switches.isEnabled(f.name) ? "yes" : "no",
          overrides[f.name] === undefined ? "no (config)" : "yes",
        ]);
      }
      io.out(`${renderTable(rows)}\n`);
      return 0;
    }
    if (!feature)
      throw new CliError(
        `flags ${action} needs a FEATURE (features: ${Object.keys(config.features).join(", ")})`,
      );
    if (!Object.hasOwn(config.features, feature)) {
      throw new CliError(
        `unknown feature "${feature}" (features: ${Object.keys(config.features).join(", ")})`,
      );
    }
    await switches.set(feature, action === "enable");
    io.out(
      `${feature}: ${action === "enable" ? "enabled" : "disabled"} (every process on this store sees it within a second)\n`,
    );
    return 0;
  } finally {
    switches.close();
    await store.close();
  }
}
