// Runs every benchmark in sequence (never part of npm test). Usage: npm run bench
import { spawnSync } from "node:child_process";

const benches = [
  "tokenizer.bench.js",
  "admit.bench.js",
  "redis-store.bench.js",
  "gateway.bench.js",
  "upstream-client.bench.js",
];
for (const b of benches) {
  console.log(`\n## ${b}\n`);
  const r = spawnSync(process.execPath, [`bench/${b}`, ...process.argv.slice(2)], { stdio: "inherit" });
  if (r.status !== 0) {
    console.error(`${b} failed with exit code ${r.status}`);
    process.exitCode = 1;
  }
}
