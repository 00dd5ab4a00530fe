import { createConfiguredEngine, isolatedConfig } from "../configured-engine.js";
import type { Engine } from "../core/engine.js";
import { isTokenBudgetError } from "../core/errors.js";
import { silentLogger } from "../core/logger.js";
import type { ChatMessage } from "../core/types.js";
import { createMemoryStore } from "../stores/memory-store.js";
import { resolveCliConfig } from "./config-arg.js";
import { type CliIo, parseCliArgs } from "./io.js";
import { num, renderTable } from "./table.js";

const WORDS =
  "budget token model request history feature user limit reply question answer context window cost alert minute day stream".split(
    " ",
  );

/** Deterministic filler text of about `words` words. */
function sentence(seed: number, words: number): string {
  const out: string[] = [];
  let x = seed * 2654435761;
  for (let i = 0; i < words; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out.push(WORDS[x % WORDS.length] as string);
  }
  return `${out.join(" ")}.`;
}

/**
 * `tokenfuse demo`: replays the incident tokenfuse exists for — a chat feature that re-sends its
 * whole history on every turn — against the engine on a config, with a deterministic stand-in for
 * the provider, and prints each decision.
 */
export async function runDemo(args: string[], io: CliIo): Promise<number> {
  const { values } = parseCliArgs(
    args,
    { config: { type: "string" }, turns: { type: "string", default: "60" }, tier: { type: "string" } },
    false,
  );
  const turns = Number(values.turns);
  if (!Number.isSafeInteger(turns) || turns < 1 || turns > 10_000) {
    io.err("tokenfuse demo: --turns must be an integer from 1 to 10000\n");
    return 2;
  }
  const { config, source } = resolveCliConfig(values.config as string | undefined, io);
  const feature = config.features.chat ? "chat" : (Object.keys(config.features)[0] as string);
  // A pro user by default: enough budget to see trimming before the daily budget runs out.
  const tier = (values.tier as string | undefined) ?? (config.tiers.pro ? "pro" : config.defaultTier);
  if (!config.tiers[tier]) {
    io.err(
      `tokenfuse demo: no tier "${tier}" in the config (tiers: ${Object.keys(config.tiers).join(", ")})\n`,
    );
    return 2;
  }
  const webhooks = config.alerts.sinks.filter((s) => s.type === "webhook").length;
  io.out(
    `tokenfuse demo on ${source}: feature "${feature}", a ${tier}-tier user, a provider stand-in that answers 50 tokens.\n` +
      (config.store.kind !== "memory"
        ? `The config names a shared ${config.store.kind} store: the demo ignores it and runs on its own memory store, so no shared budget, spend, alert or switch is touched${webhooks > 0 ? ", and no webhook is called" : ""}.\n`
        : webhooks > 0
          ? "The demo calls none of the config's webhooks: its alerts stay in this process.\n"
          : "") +
      "Each turn re-sends the whole conversation (the unbounded-history bug); watch tokenfuse trim it and stop the user at the daily budget.\n\n",
  );
  // A demonstration never touches anything shared: a store of its own in this process (whatever the
  // config's `store` says) and alerts that go nowhere but this process's (silent) log, so it cannot
  // spend shared budgets, add spend, claim this hour's alerts or trip a breaker for real traffic, and
  // no usage log.
  const store = createMemoryStore();
  const tf = createConfiguredEngine({
    config: isolatedConfig(config),
    store,
    logger: silentLogger,
  });
  try {
    await tf.ready;
    return await replay(tf.engine, { feature, tier, turns }, io);
  } finally {
    await tf.close();
    await store.close();
  }
}

async function replay(
  engine: Engine,
  { feature, tier, turns }: { feature: string; tier: string; turns: number },
  io: CliIo,
): Promise<number> {
  const rows: string[][] = [
    ["turn", "messages sent", "kept", "input tokens", "decision", "charged", "user remaining today"],
  ];
  const history: ChatMessage[] = [{ role: "system", content: "You are a helpful assistant." }];
  let outcome = `stopped after ${turns} turns`;
  for (let turn = 1; turn <= turns; turn++) {
    history.push({ role: "user", content: sentence(turn, 120 + (turn % 7) * 40) });
    try {
      const a = await engine.admit({ feature, user: "demo-user", tier, messages: history });
      const completion = Math.min(50, a.maxOutputTokens);
      const s = await a.settle({ prompt_tokens: a.inputTokens, completion_tokens: completion });
      rows.push([
        String(turn),
        String(history.length),
        String(a.messages.length),
        num(a.inputTokens),
        a.decision,
        num(s.chargedTokens),
        num(a.userDay.remaining + a.reservedTokens - s.chargedTokens),
      ]);
      history.push({ role: "assistant", content: sentence(turn + 1000, 38) });
    } catch (e) {
      if (!isTokenBudgetError(e)) throw e;
      rows.push([String(turn), String(history.length), "-", "-", `reject: ${e.code}`, "0", "-"]);
      // A refusal that waiting cannot fix (input over max_input with on_exceed: reject) has no retry.
      outcome = `turn ${turn} refused with ${e.code}: ${e.message}${e.retryAfterMs ? `; retry in ${duration(e.retryAfterMs)}` : ""}`;
      break;
    }
  }
  io.out(`${renderTable(rows)}\n\n${outcome}\n`);
  const report = await engine.remaining({ user: "demo-user", tier });
  io.out(`\nbudget report (as GET /v1/budget returns it):\n${JSON.stringify(report, null, 2)}\n`);
  return 0;
}

function duration(ms: number): string {
  const m = Math.ceil(ms / 60_000);
  return m >= 60 ? `${Math.floor(m / 60)} h ${m % 60} min` : `${m} min`;
}
