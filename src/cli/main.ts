import { readFileSync } from "node:fs";
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
  count [--model M] [--text] [--json] [FILE|-]   count tokens of a chat request (for its own model unless --model; default gpt-4o) or plain text
  keys create --user U [--tier T] [--features a,b] [--trusted] [--store] [--config F]   make an API key (printed once) and its config entry, or store it in the shared store
  keys revoke HASH [--config F]              remove an API key kept in the shared store
  flags list | enable FEATURE | disable FEATURE [--config F]   feature switches in a shared (Redis) store
  usage [--user U] [--tier T] [--feature F] [--hours H] [--config F]   tokens and cost per hour and per day from the shared store (a user's days in their tier's zone)
  simulate --log FILE [--config F] [--json] [--strict]   replay a usage log against a config: allowed, trimmed, rejected, cost
  demo [--config F] [--turns N] [--tier T]   show the engine at work on a config (default: the built-in example)
  version                                    print tokenfuse's version

exit codes: 0 ok, 1 check failed, 2 bad usage or config`;

/** This package's version, from its package.json (two levels up from src/cli and dist/cli alike). */
function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as {
    version?: unknown;
  };
  return typeof pkg.version === "string" ? pkg.version : "unknown";
}

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
      case "version":
      case "--version":
      case "-v":
        io.out(`tokenfuse ${packageVersion()}\n`);
        return 0;
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
