// `node bench/with-usage-log.js serve --config F …`: runs this build's gateway on a copy of config F
// that also writes a usage log (to a file next to the copy), so that the gateway benches can compare
// the usage log on and off in the same run:
//   node bench/gateway-cpu.bench.js bin/tokenfuse.js bench/with-usage-log.js
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { main } from "../dist/cli/main.js";

const args = process.argv.slice(2);
const at = args.indexOf("--config");
if (at < 0 || args[at + 1] === undefined) throw new Error("with-usage-log.js needs --config F");
const original = args[at + 1];
const copy = join(dirname(original), "tokenfuse.usage-log.json");
const usageLog = process.env.BENCH_USAGE_LOG_PATH ?? join(dirname(original), "usage.jsonl");
writeFileSync(
  copy,
  JSON.stringify({ ...JSON.parse(readFileSync(original, "utf8")), usage_log: { path: usageLog } }),
);
args[at + 1] = copy;
// A run writes a few hundred MB: removed when the gateway exits, unless a path was asked for.
if (process.env.BENCH_USAGE_LOG_PATH === undefined)
  process.on("exit", () => rmSync(usageLog, { force: true }));
main(args).then((code) => {
  process.exitCode = code;
});
