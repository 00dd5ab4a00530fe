import { generateApiKey, hashApiKey } from "../gateway/auth.js";
import { resolveCliConfig } from "./config-arg.js";
import { CliError, type CliIo, parseCliArgs } from "./io.js";

const USER = /^[A-Za-z0-9_.:@+-]{1,128}$/;

/**
 * `tokenfuse keys create --user U [--tier T] [--features a,b] [--trusted] [--config F]`: makes an API
 * key, prints it once, and prints the entry (hash only) to add under `keys:` in the config.
 * The key itself is never written anywhere by tokenfuse.
 */
export async function runKeys(args: string[], io: CliIo): Promise<number> {
  const [sub, ...rest] = args;
  if (sub !== "create")
    throw new CliError(`unknown keys command "${sub ?? ""}" (try: tokenfuse keys create --user U --tier T)`);
  const { values } = parseCliArgs(
    rest,
    {
      user: { type: "string" },
      tier: { type: "string" },
      features: { type: "string" },
      trusted: { type: "boolean" },
      config: { type: "string" },
    },
    false,
  );
  const user = values.user as string | undefined;
  if (!user || !USER.test(user))
    throw new CliError("--user is required: 1-128 letters, digits or _ . : @ + -");
  const { config } = resolveCliConfig(values.config as string | undefined, io);
  const tier = values.tier as string | undefined;
  if (tier !== undefined && !config.tiers[tier]) {
    throw new CliError(`unknown tier "${tier}" (tiers: ${Object.keys(config.tiers).join(", ")})`);
  }
  const features = (values.features as string | undefined)?.split(",").map((f) => f.trim());
  for (const f of features ?? []) {
    if (!config.features[f])
      throw new CliError(`unknown feature "${f}" (features: ${Object.keys(config.features).join(", ")})`);
  }
  const key = generateApiKey();
  const entry = {
    hash: hashApiKey(key),
    user,
    ...(tier ? { tier } : {}),
    ...(features ? { features } : {}),
    ...(values.trusted ? { trusted: true } : {}),
  };
  io.out(
    `API key (shown once, store it now): ${key}\n\n` +
      `Add this entry under keys: in your config (only the hash is stored):\n  - ${JSON.stringify(entry)}\n`,
  );
  return 0;
}
