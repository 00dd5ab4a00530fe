// Gateway overhead: the same load sent straight to the mock upstream and through `tokenfuse serve`
// (memory store, every budget enforced), side by side in one run.
// Processes: the mock upstream (child), the gateway (child), and this load generator (undici pool).
// Run: npm run build && node bench/gateway.bench.js   (BENCH_MS per case, default 3000)
import { spawn } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Pool } from "undici";
import { table, us } from "./util.js";

const DURATION_MS = Number(process.env.BENCH_MS ?? 3000);
const CONCURRENCIES = (process.env.BENCH_C ?? "1,16,64").split(",").map(Number);

function startChild(args, pattern) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, TOKENFUSE_LOG_LEVEL: "error" },
    });
    let out = "";
    const onData = (d) => {
      out += d;
      const m = pattern.exec(out);
      if (m) resolve({ child, url: m[1] });
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    child.on("exit", (code) => reject(new Error(`child exited ${code}: ${out}`)));
  });
}

const mock = await startChild(
  [
    "--input-type=module",
    "-e",
    `import { startMockServer } from "./dist/gateway/mock/mock-server.js";
   const s = await startMockServer({ completionTokens: 50 }); console.log("mock on " + s.url);`,
  ],
  /mock on (http:\/\/127\.0\.0\.1:\d+)/,
);
const dir = mkdtempSync(join(tmpdir(), "tf-bench-"));
const configPath = join(dir, "tokenfuse.json");
writeFileSync(
  configPath,
  JSON.stringify({
    upstreams: { provider: { type: "openai", base_url: `${mock.url}/v1`, timeout_ms: 30000 } },
    features: { chat: { model: "gpt-4o", max_input: 4000, max_output: 1000, on_exceed: "trim" } },
    tiers: { free: { daily_tokens: 1e15, tokens_per_minute: 1e15 } },
    default_tier: "free",
    global: { tokens_per_minute: 1e15 },
  }),
);
const gateway = await startChild(
  ["bin/tokenfuse.js", "serve", "--config", configPath, "--port", "0"],
  /gateway on (http:\/\/127\.0\.0\.1:\d+)/,
);

const body = JSON.stringify({
  model: "gpt-4o",
  messages: [
    { role: "system", content: "You are a helpful assistant." },
    { role: "user", content: "What is the capital of France? Answer in one word." },
  ],
});

async function load(origin, concurrency) {
  const pool = new Pool(origin, { connections: concurrency, pipelining: 1 });
  const headers = { "content-type": "application/json", "x-tokenfuse-feature": "chat" };
  const lat = [];
  let done = 0;
  let errors = 0;
  const warmEnd = performance.now() + 300;
  const one = async () => {
    const t = performance.now();
    const r = await pool.request({ path: "/v1/chat/completions", method: "POST", headers, body });
    await r.body.text();
    if (r.statusCode !== 200) errors++;
    return (performance.now() - t) * 1000;
  };
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < warmEnd) await one();
    }),
  );
  const start = performance.now();
  const end = start + DURATION_MS;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < end) {
        lat.push(await one());
        done++;
      }
    }),
  );
  const wall = performance.now() - start;
  await pool.close();
  lat.sort((a, b) => a - b);
  const q = (p) => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))];
  return { rps: Math.round((done / wall) * 1000), p50: q(0.5), p99: q(0.99), errors };
}

const rows = [["target", "connections", "req/s", "p50", "p99", "errors"]];
const summary = [];
for (const c of CONCURRENCIES) {
  const direct = await load(mock.url, c);
  const via = await load(gateway.url, c);
  rows.push([
    "mock upstream directly",
    String(c),
    direct.rps.toLocaleString("en-US"),
    us(direct.p50),
    us(direct.p99),
    String(direct.errors),
  ]);
  rows.push([
    "through tokenfuse gateway",
    String(c),
    via.rps.toLocaleString("en-US"),
    us(via.p50),
    us(via.p99),
    String(via.errors),
  ]);
  summary.push(
    `c=${c}: added p50 ${us(via.p50 - direct.p50)}, throughput ${((via.rps / direct.rps) * 100).toFixed(0)}% of direct`,
  );
}
table(rows);
console.log(`\n${summary.join("\n")}`);
mock.child.kill();
gateway.child.kill();
