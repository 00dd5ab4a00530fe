import { runCheck } from "./check.js";
import { runCount } from "./count.js";
import { runDemo } from "./demo.js";
import { runFlags } from "./flags.js";
import { CliError, type CliIo, processIo } from "./io.js";
import { runKeys } from "./keys.js";
import { runServe } from "./serve.js";
import { runSimulate } from "./simulate.js";
import { runUsage } from "./usage.js";

const USAGE = `usage: tokenfuse <command> [options]

commands:
  serve [--config F] [--port N] [--host H]   run the OpenAI-compatible gateway (default 127.0.0.1:8787)
  check [--config F] [--fixtures DIR]        validate the config, print the budget table, check sample conversations
  count [--model M] [--text] [--json] [FILE|-]   count tokens of a chat request or plain text
  keys create --user U [--tier T] [--features a,b] [--trusted] [--store]   make an API key (printed once) and its config entry, or store it in the shared store
  flags list | enable F | disable F [--config F]   feature switches in a shared (Redis) store
  usage [--user U] [--feature F] [--hours H]   tokens and cost per hour and per day from the shared store
  simulate --log FILE [--config F] [--json] [--strict]   replay a usage log against a config: allowed, trimmed, rejected, cost
  demo [--config F]                          show the engine at work on a config (default: the built-in example)

exit codes: 0 ok, 1 check failed, 2 bad usage or config`;

/** Runs the CLI; returns the exit code (SPEC §8: 0 ok, 1 check failed, 2 bad usage/config). */
export async function main(argv: string[], io: CliIo = processIo): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case "check":
        return await runCheck(rest, io);
      case "count":
        return await runCount(rest, io);
      case "demo":
        return await runDemo(rest, io);
      case "serve":
        return await runServe(rest, io);
      case "keys":
        return await runKeys(rest, io);
      case "flags":
        return await runFlags(rest, io);
      case "usage":
        return await runUsage(rest, io);
      case "simulate":
        return await runSimulate(rest, io);
      case undefined:
      case "help":
      case "--help":
      case "-h":
        io.out(`${USAGE}\n`);
        return command === undefined ? 2 : 0;
      default:
        throw new CliError(`unknown command "${command}" (try: tokenfuse help)`);
    }
  } catch (e) {
    io.err(`tokenfuse ${command ?? ""}: ${e instanceof Error ? e.message : String(e)}\n`);
    return 2;
  }
}
