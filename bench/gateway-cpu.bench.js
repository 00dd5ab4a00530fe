import { Pool } from "undici";
import {
  BENCH_BODY,
  cpuOf,
  startBenchMock,
  startChild,
  stopChildren,
  table,
  writeBenchConfig,
} from "./util.js";

const MS = Number(process.env.BENCH_MS ?? 8000);
const C = Number(process.env.BENCH_C ?? 64);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 2);
const FLAGS = (process.env.BENCH_FLAGS ?? "").split(" ").filter(Boolean);
const BINS = process.argv.length > 2 ? process.argv.slice(2) : ["bin/tokenfuse.js"];

const mock = await startBenchMock();
const config = writeBenchConfig(mock.url);
const body = BENCH_BODY;
const headers = { "content-type": "application/json", "x-tokenfuse-feature": "chat" };

async function measure(bin) {
  const bare = bin.endsWith("bare-proxy.js");
  const gw = await startChild(
    [...FLAGS, bin, ...(bare ? [mock.url] : ["serve", "--config", config, "--port", "0"])],
    /(?:gateway|bare proxy) on (http:\/\/127\.0\.0\.1:\d+)/,
  );
  const pool = new Pool(gw.url, { connections: C });
  const run = async (ms) => {
    let n = 0;
    const end = performance.now() + ms;
    await Promise.all(
      Array.from({ length: C }, async () => {
        while (performance.now() < end) {
          const r = await pool.request({ path: "/v1/chat/completions", method: "POST", headers, body });
          await r.body.text();
          if (r.statusCode !== 200) throw new Error(`${bin}: status ${r.statusCode}`);
          n++;
        }
      }),
    );
    return n;
  };
  await run(1000);
  const c0 = cpuOf(gw.child.pid);
  const t0 = performance.now();
  const n = await run(MS);
  const t1 = performance.now();
  const c1 = cpuOf(gw.child.pid);
  await pool.close();
  const exited = new Promise((r) => gw.child.once("exit", r));
  gw.child.kill("SIGTERM");
  await exited;
  return { rps: (n / (t1 - t0)) * 1000, user: (c1[0] - c0[0]) / n, sys: (c1[1] - c0[1]) / n };
}

const rows = [["gateway", "round", "req/s", "CPU/req", "user", "system"]];
for (let round = 1; round <= ROUNDS; round++) {
  for (const bin of BINS) {
    const r = await measure(bin);
    const f = (x) => `${x.toFixed(1)} µs`;
    rows.push([
      bin,
      String(round),
      Math.round(r.rps).toLocaleString("en-US"),
      f(r.user + r.sys),
      f(r.user),
      f(r.sys),
    ]);
  }
}
console.log(
  `${C} connections, ${MS} ms per run after 1 000 ms of warm-up${FLAGS.length ? `, flags ${FLAGS.join(" ")}` : ""}\n`,
);
table(rows);
stopChildren();
