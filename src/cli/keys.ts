import { parseKeyRequest } from "../access/key-entries.js";
import { silentLogger } from "../core/logger.js";
import { generateApiKey, hashApiKey } from "../gateway/auth.js";
import { createStoreFromConfig } from "../stores/from-config.js";
import { resolveCliConfig } from "./config-arg.js";
import { CliError, type CliIo, parseCliArgs } from "./io.js";

/**
 * `tokenfuse keys create --user U [--tier T] [--features a,b] [--trusted] [--store] [--config F]`:
 * makes an API key and prints it once. Without `--store`, prints the entry (hash only) to add under
 * `keys:` in the config; with `--store`, writes that entry to the config's shared (Redis) store, where
 * every gateway on it accepts the key within a second (as `POST /admin/keys` does).
 * The key itself is never written anywhere by tokenfuse. Same rules as a config entry and as the
 * admin API: the user id pattern of `keys[].user`, a tier and features the config defines.
 */
export async function runKeys(args: string[], io: CliIo): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === "revoke") return revokeKey(rest, io);
  if (sub !== "create")
    throw new CliError(
      `${sub === undefined ? "keys needs a command" : `unknown keys command "${sub}"`} (try: tokenfuse keys create --user U --tier T, or tokenfuse keys revoke HASH)`,
    );
  const { values } = parseCliArgs(
    rest,
    {
      user: { type: "string" },
      tier: { type: "string" },
      features: { type: "string" },
      trusted: { type: "boolean" },
      store: { type: "boolean" },
      config: { type: "string" },
    },
    false,
  );
  const { config } = resolveCliConfig(values.config as string | undefined, io);
  const features = (values.features as string | undefined)?.split(",").map((f) => f.trim());
  const parsed = parseKeyRequest(
    {
      user: values.user,
      ...(values.tier !== undefined ? { tier: values.tier } : {}),
      ...(features !== undefined ? { features } : {}),
      ...(values.trusted ? { trusted: true } : {}),
    },
    config,
  );
  if (!parsed.ok) throw new CliError(parsed.param ? `--${parsed.param}: ${parsed.message}` : parsed.message);
  const { entry } = parsed;
  const key = generateApiKey();
  const hash = hashApiKey(key);
  if (values.store) {
    if (config.store.kind === "memory")
      throw new CliError(
        "--store needs a shared (Redis) store; the config uses the memory store, which lives inside one process: use the running gateway's admin API (POST /admin/keys)",
      );
    if (config.keys.length === 0)
      throw new CliError(
        "--store: the config has no keys:, so gateways on it run without API keys and would never check this one; add an entry under keys: first (run this command without --store)",
      );
    const store = createStoreFromConfig(config.store, silentLogger);
    try {
      if (!(await store.addApiKey({ hash, ...entry, createdAtMs: Date.now() })))
        throw new CliError("a key with this hash is already stored (try again)");
    } finally {
      await store.close();
    }
    io.out(
      `API key (shown once, store it now): ${key}\n\n` +
        `Stored as ${hash} (user ${entry.user}${entry.tier ? `, tier ${entry.tier}` : ""}) in the shared store: ` +
        `every gateway on it accepts the key within a second. Revoke it with tokenfuse keys revoke ${hash} (or DELETE /admin/keys/<hash>).\n`,
    );
    return 0;
  }
  const configEntry = {
    hash,
    user: entry.user,
    ...(entry.tier ? { tier: entry.tier } : {}),
    ...(entry.features ? { features: entry.features } : {}),
    ...(entry.trusted ? { trusted: true } : {}),
  };
  io.out(
    `API key (shown once, store it now): ${key}\n\n` +
      `Add this entry under keys: in your config (only the hash is stored):\n  - ${JSON.stringify(configEntry)}\n`,
  );
  return 0;
}

/**
 * `tokenfuse keys revoke HASH [--config F]`: removes a key created at run time (`keys create
 * --store`, `POST /admin/keys`) from the config's shared store, as `DELETE /admin/keys/{hash}` does:
 * every gateway on it refuses the key within a second. A key in the config file is revoked by
 * removing its entry there.
 */
async function revokeKey(args: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseCliArgs(args, { config: { type: "string" } }, true);
  const hash = positionals[0];
  if (positionals.length !== 1 || hash === undefined || !/^sha256:[0-9a-f]{64}$/.test(hash))
    throw new CliError('keys revoke takes one key hash: "sha256:" followed by 64 lowercase hex digits');
  const { config } = resolveCliConfig(values.config as string | undefined, io);
  if (config.keys.some((k) => k.hash === hash))
    throw new CliError(`${hash} is a key of the config file: remove its entry under keys: to revoke it`);
  if (config.store.kind === "memory")
    throw new CliError(
      "the config uses the memory store, which lives inside one process: use the running gateway's admin API (DELETE /admin/keys/<hash>)",
    );
  const store = createStoreFromConfig(config.store, silentLogger);
  try {
    if (!(await store.deleteApiKey(hash))) throw new CliError(`no key with hash ${hash} is stored`);
  } finally {
    await store.close();
  }
  io.out(`Revoked ${hash}: every gateway on the store refuses it within a second.\n`);
  return 0;
}
