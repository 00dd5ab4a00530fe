// Soak: does the gateway's memory stay bounded when many distinct users pass through it?
// Run: npm run build && node bench/soak.bench.js
// `tokenfuse serve` (memory store, every budget on) behind a trusted key, so that each request can
// name another end user (x-tokenfuse-user); SOAK_USERS distinct users in turn, SOAK_REQUESTS
// requests over SOAK_C connections. Prints, at each tenth of the run, the gateway's resident memory
// (from /proc) and what its heap held after its latest full collection (--trace-gc's last
// Mark-Compact line: live data, not garbage waiting to be collected). Growth of the latter while
// the same users keep coming back would be a leak.
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Pool } from "undici";
import { hashApiKey } from "../dist/gateway/auth.js";
import { BENCH_BODY, startBenchMock, startChild, stopChildren, table } from "./util.js";

const REQUESTS = Number(process.env.SOAK_REQUESTS ?? 200_000);
const USERS = Number(process.env.SOAK_USERS ?? 50_000);
const C = Number(process.env.SOAK_C ?? 16);
const KEY = "tf-soak-bench-key";

const mock = await startBenchMock();
const config = join(mkdtempSync(join(tmpdir(), "tf-soak-")), "tokenfuse.json");
writeFileSync(
  config,
  JSON.stringify({
    upstreams: { provider: { type: "openai", base_url: `${mock.url}/v1`, timeout_ms: 30000 } },
    features: { chat: { model: "gpt-4o", max_input: 4000, max_output: 1000, on_exceed: "trim" } },
    tiers: { free: { daily_tokens: 1e12, tokens_per_minute: 1e12 } },
    default_tier: "free",
    global: { tokens_per_minute: 1e15 },
    keys: [{ hash: hashApiKey(KEY), user: "soak", trusted: true, default_feature: "chat" }],
  }),
);
const gw = await startChild(
  ["--trace-gc", "bin/tokenfuse.js", "serve", "--config", config, "--port", "0"],
  /gateway on (http:\/\/127\.0\.0\.1:\d+)/,
);
/** Heap (MiB) after the latest full collection the gateway reported; "–" before the first. */
let liveAfterFullGc = "–";
gw.child.stdout.on("data", (d) => {
  for (const m of String(d).matchAll(/Mark-Compact[^\n]*?-> ([\d.]+) \(/g)) liveAfterFullGc = m[1];
});
const rssMiB = () => {
  const status = readFileSync(`/proc/${gw.child.pid}/status`, "utf8");
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024;
};
const pool = new Pool(gw.url, { connections: C });

let sent = 0;
const rows = [
  ["requests", "distinct users so far", "RSS MiB", "heap after last full GC, MiB", "req/s (this tenth)"],
];
const step = Math.ceil(REQUESTS / 10);
let t = performance.now();
rows.push(["0", "0", rssMiB().toFixed(1), liveAfterFullGc, "–"]);
while (sent < REQUESTS) {
  const target = Math.min(REQUESTS, sent + step);
  await Promise.all(
    Array.from({ length: C }, async () => {
      while (sent < target) {
        const user = `u${sent++ % USERS}`;
        const r = await pool.request({
          path: "/v1/chat/completions",
          method: "POST",
          headers: {
            "content-type": "application/json",
            authorization: `Bearer ${KEY}`,
            "x-tokenfuse-user": user,
          },
          body: BENCH_BODY,
        });
        await r.body.text();
        if (r.statusCode !== 200) throw new Error(`status ${r.statusCode}`);
      }
    }),
  );
  const now = performance.now();
  rows.push([
    String(sent),
    String(Math.min(sent, USERS)),
    rssMiB().toFixed(1),
    liveAfterFullGc,
    String(Math.round((step / (now - t)) * 1000)),
  ]);
  t = now;
}
await pool.close();
table(rows);
stopChildren();
process.exit(0);
