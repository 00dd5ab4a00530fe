#!/usr/bin/env node
import { main } from "../dist/cli/main.js";

// Standard output's or standard error's reader went away (EPIPE). A one-shot command
// (`tokenfuse demo | head`) stops quietly, as a command killed by SIGPIPE would (141, or its own
// code if it had finished). The gateway keeps serving: what it writes to stdout (its usage log with
// `usage_log: stdout`) counts and logs its own lost lines, what it writes to stderr (its banner, log
// lines) is only lost, and a closed pipe must not take requests down with it (`serve 2>&1 | head`
// crashed on its banner's write).
const serving = process.argv[2] === "serve";
const onPipeError = (e) => {
  if (e.code !== "EPIPE") throw e;
  if (!serving) process.exit(process.exitCode ?? 141);
};
process.stdout.on("error", onPipeError);
process.stderr.on("error", onPipeError);

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    process.stderr.write(`tokenfuse: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 2;
  },
);
