#!/usr/bin/env node
import { main } from "../dist/cli/main.js";

// A reader that stopped early (`tokenfuse demo | head`) is not an error: stop quietly.
process.stdout.on("error", (e) => {
  if (e.code === "EPIPE") process.exit(process.exitCode ?? 0);
  throw e;
});

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    process.stderr.write(`tokenfuse: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 2;
  },
);
