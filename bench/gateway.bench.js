import { createServer } from "node:net";
import { join } from "node:path";
import { Pool, request } from "undici";
import {
  BENCH_BODY,
  cpuOf,
  startBenchMock,
  startChild,
  stopChildren,
  table,
  us,
  writeBenchConfig,
} from "./util.js";

const DURATION_MS = Number(process.env.BENCH_MS ?? 3000);
const WARMUP_MS = 300;
const COOLDOWN_MS = 500;
const CONCURRENCIES = (process.env.BENCH_C ?? "1,16,64").split(",").map(Number);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 1);
const WITH_PORTKEY = process.env.BENCH_PORTKEY !== "0";
const WITH_BARE = process.env.BENCH_BARE !== "0";
const COMPARE_DIR = process.env.BENCH_COMPARE;
const PROF_DIR = process.env.BENCH_PROF;

/** CPU time (user + system) a process has used, in µs, or undefined (see util.js `cpuOf`). */
function cpuUsOf(pid) {
  const c = cpuOf(pid);
  return c === undefined ? undefined : c[0] + c[1];
}

/** A free port on 127.0.0.1 (Portkey takes a port, not 0). */
function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/**
 * Preloaded into Portkey: its Node server (`@hono/node-server` `serve({ port })`) listens on every
 * interface; this makes a listen without a host bind 127.0.0.1 only.
 */
const LOOPBACK_ONLY = `data:text/javascript,${encodeURIComponent(
  `import net from "node:net";
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...a) {
  if (typeof a[0] === "number" && typeof a[1] !== "string") a.splice(1, 0, "127.0.0.1");
  else if (a[0] && typeof a[0] === "object" && a[0].port !== undefined && !a[0].host) a[0] = { ...a[0], host: "127.0.0.1" };
  return listen.apply(this, a);
};`,
)}`;

const mock = await startBenchMock();
const configPath = writeBenchConfig(mock.url);
const startGateway = (bin, prof) =>
  startChild(
    [
      ...(prof ? ["--cpu-prof", "--cpu-prof-dir", prof] : []),
      bin,
      "serve",
      "--config",
      configPath,
      "--port",
      "0",
    ],
    /gateway on (http:\/\/127\.0\.0\.1:\d+)/,
  );
const gateway = await startGateway("bin/tokenfuse.js", PROF_DIR);

const targets = [
  {
    role: "direct",
    name: "mock upstream directly",
    origin: mock.url,
    pid: undefined,
    headers: { "content-type": "application/json" },
  },
  {
    role: "tokenfuse",
    name: "through tokenfuse gateway",
    origin: gateway.url,
    pid: gateway.child.pid,
    headers: { "content-type": "application/json", "x-tokenfuse-feature": "chat" },
  },
];
if (COMPARE_DIR) {
  const other = await startGateway(join(COMPARE_DIR, "bin/tokenfuse.js"));
  targets.push({
    role: "compare",
    name: `through tokenfuse at ${COMPARE_DIR}`,
    origin: other.url,
    pid: other.child.pid,
    headers: { "content-type": "application/json", "x-tokenfuse-feature": "chat" },
  });
}
if (WITH_BARE) {
  const bare = await startChild(
    [...(PROF_DIR ? ["--cpu-prof", "--cpu-prof-dir", PROF_DIR] : []), "bench/bare-proxy.js", mock.url],
    /bare proxy on (http:\/\/127\.0\.0\.1:\d+)/,
  );
  targets.push({
    role: "bare",
    name: "through a bare Node proxy (baseline)",
    origin: bare.url,
    pid: bare.child.pid,
    headers: { "content-type": "application/json" },
  });
}
if (WITH_PORTKEY) {
  const port = await freePort();
  const portkey = await startChild(
    [
      "--import",
      LOOPBACK_ONLY,
      "node_modules/@portkey-ai/gateway/build/start-server.js",
      `--port=${port}`,
      "--headless",
    ],
    /AI Gateway is running at/,
  );
  targets.push({
    role: "portkey",
    name: "through Portkey gateway",
    origin: `http://127.0.0.1:${port}`,
    pid: portkey.child.pid,
    headers: {
      "content-type": "application/json",
      authorization: "Bearer sk-mock",
      "x-portkey-provider": "openai",
      "x-portkey-custom-host": `${mock.url}/v1`,
    },
  });
}

const body = BENCH_BODY;

// Every target must answer with the mock's completion (id, text and usage), or the numbers mean nothing.
for (const t of targets) {
  const r = await request(`${t.origin}/v1/chat/completions`, {
    method: "POST",
    headers: t.headers,
    body,
    headersTimeout: 10_000,
    bodyTimeout: 10_000,
  });
  const text = await r.body.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  const ok =
    r.statusCode === 200 &&
    /^chatcmpl-mock-\d+$/.test(json?.id ?? "") &&
    json?.choices?.[0]?.message?.content?.startsWith("this is a mock reply") &&
    json?.usage?.completion_tokens === 50;
  if (!ok) {
    console.error(`${t.name}: not the mock's answer: ${r.statusCode} ${text.slice(0, 300)}`);
    process.exit(1);
  }
}

async function load(target, concurrency) {
  const pool = new Pool(target.origin, { connections: concurrency, pipelining: 1 });
  const { headers } = target;
  const lat = [];
  let done = 0;
  let errors = 0;
  const warmEnd = performance.now() + WARMUP_MS;
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
  errors = 0;
  const cpu0 = [cpuUsOf(target.pid), cpuUsOf(mock.child.pid), process.cpuUsage()];
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
  const cpu1 = [cpuUsOf(target.pid), cpuUsOf(mock.child.pid), process.cpuUsage(cpu0[2])];
  const perReq = (a, b) => (a === undefined || b === undefined ? undefined : (b - a) / done);
  const cpu = {
    gateway: perReq(cpu0[0], cpu1[0]),
    mock: perReq(cpu0[1], cpu1[1]),
    client: (cpu1[2].user + cpu1[2].system) / done,
  };
  await pool.close();
  lat.sort((a, b) => a - b);
  const q = (p) => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))];
  return { rps: Math.round((done / wall) * 1000), p50: q(0.5), p99: q(0.99), errors, cpu };
}

// results[c][target] = one result per round; targets take turns within a connection count, in an
// order that rotates each round, so that a noisy neighbour does not always hit the same target.
const results = new Map(CONCURRENCIES.map((c) => [c, targets.map(() => [])]));
for (let round = 0; round < ROUNDS; round++) {
  for (const c of CONCURRENCIES) {
    for (let k = 0; k < targets.length; k++) {
      const i = (k + round) % targets.length;
      // A pause between cases, so that what a target does after its load (GC, closing sockets)
      // does not land in the next target's measurement.
      await new Promise((r) => setTimeout(r, COOLDOWN_MS));
      results.get(c)[i].push(await load(targets[i], c));
    }
  }
}
const median = (runs) => [...runs].sort((a, b) => a.rps - b.rps)[Math.floor((runs.length - 1) / 2)];

const rows = [
  [
    "target",
    "connections",
    "req/s",
    "p50",
    "p99",
    "errors",
    "CPU/req gateway",
    "CPU/req mock",
    "CPU/req client",
  ],
];
const cpuCell = (x) => (x === undefined ? "–" : us(x));
const has = (role) => targets.some((t) => t.role === role);
const ratios = [
  [
    "connections",
    "tokenfuse ÷ Portkey req/s",
    ...(has("bare") ? ["bare proxy ÷ Portkey req/s", "tokenfuse ÷ bare proxy req/s"] : []),
    ...(has("compare") ? ["tokenfuse ÷ compared tokenfuse req/s"] : []),
    "tokenfuse ÷ direct req/s",
    "added p50 tokenfuse",
    ...(has("bare") ? ["added p50 bare proxy"] : []),
    "added p50 Portkey",
  ],
];
for (const c of CONCURRENCIES) {
  const med = results.get(c).map(median);
  targets.forEach((t, i) => {
    const r = med[i];
    const spread =
      ROUNDS > 1
        ? ` (${Math.min(...results.get(c)[i].map((x) => x.rps))}–${Math.max(...results.get(c)[i].map((x) => x.rps))})`
        : "";
    rows.push([
      t.name,
      String(c),
      `${r.rps.toLocaleString("en-US")}${spread}`,
      us(r.p50),
      us(r.p99),
      String(r.errors),
      cpuCell(r.cpu.gateway),
      cpuCell(r.cpu.mock),
      cpuCell(r.cpu.client),
    ]);
  });
  const of = (role) => med[targets.findIndex((t) => t.role === role)];
  const [direct, tf, pk, bare, cmp] = ["direct", "tokenfuse", "portkey", "bare", "compare"].map(of);
  const x = (a, b) => `${(a.rps / b.rps).toFixed(2)}×`;
  ratios.push([
    String(c),
    pk ? x(tf, pk) : "–",
    ...(bare ? [pk ? x(bare, pk) : "–", x(tf, bare)] : []),
    ...(cmp ? [x(tf, cmp)] : []),
    `${((tf.rps / direct.rps) * 100).toFixed(0)}%`,
    us(tf.p50 - direct.p50),
    ...(bare ? [us(bare.p50 - direct.p50)] : []),
    pk ? us(pk.p50 - direct.p50) : "–",
  ]);
}
console.log(
  `${DURATION_MS} ms per case, ${ROUNDS} round(s)${ROUNDS > 1 ? ", median round (min–max req/s)" : ""}\n`,
);
table(rows);
console.log("");
table(ratios);
stopChildren();
