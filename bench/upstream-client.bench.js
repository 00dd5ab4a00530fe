// What one upstream call costs the gateway's process in CPU, by HTTP client, against the mock
// upstream running in its own process. Run: npm run build && node bench/upstream-client.bench.js
// Why: the gateway's profile puts about a quarter of its CPU in the upstream client (docs/BENCHMARKS.md);
// this measures that share alone, so a replacement can be judged before it is built.
// Each case: BENCH_LANES lanes (default 32), each awaiting one non-streamed chat completion at a
// time, for BENCH_MS ms (default 2000) after 300 warm-up calls; CPU per request from
// process.cpuUsage(), p50 latency per call; 2 rounds. BENCH_LANES=1 is the gateway at one connection,
// where each call's latency is on the client's.
import { spawn } from "node:child_process";
import http from "node:http";
import net from "node:net";
import { Pool } from "undici";
import { table, us } from "./util.js";

const DURATION_MS = Number(process.env.BENCH_MS ?? 2000);
const LANES = Number(process.env.BENCH_LANES ?? 32);
const child = spawn(
  process.execPath,
  [
    "--input-type=module",
    "-e",
    `import { startMockServer } from "./dist/gateway/mock/mock-server.js";
     const s = await startMockServer({ completionTokens: 50, ledgerMaxRecords: 1000 }); console.log("mock on " + s.url);`,
  ],
  { stdio: ["ignore", "pipe", "inherit"] },
);
process.on("exit", () => child.kill());
const origin = await new Promise((resolve, reject) => {
  const t = setTimeout(() => reject(new Error("mock did not start")), 10_000);
  child.stdout.on("data", (d) => {
    const m = /mock on (http:\/\/127\.0\.0\.1:\d+)/.exec(String(d));
    if (m) {
      clearTimeout(t);
      resolve(m[1]);
    }
  });
});
const url = new URL(origin);
const path = "/v1/chat/completions";
const body = JSON.stringify({
  model: "gpt-4o",
  messages: [
    { role: "system", content: "You are terse." },
    { role: "user", content: "Say hello to the benchmark." },
  ],
  max_tokens: 100,
});
const headers = { "content-type": "application/json" };
const pool = new Pool(origin, { connections: 256, pipelining: 1 });
const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });

const clients = {
  "undici pool.request + for await (the gateway in its first sessions)": async () => {
    const r = await pool.request({ path, method: "POST", headers, body });
    const parts = [];
    for await (const c of r.body) parts.push(c.toString("utf8"));
    return parts.join("");
  },
  "undici pool.request + body.text() (the gateway until the seventh session)": async () => {
    const r = await pool.request({ path, method: "POST", headers, body });
    return await r.body.text();
  },
  "undici pool.dispatch, a raw handler (the gateway now: DispatchCall)": () =>
    new Promise((resolve, reject) => {
      const chunks = [];
      pool.dispatch(
        { path, method: "POST", headers, body },
        {
          onRequestStart() {},
          onResponseStart() {},
          onResponseData(_c, chunk) {
            chunks.push(chunk);
          },
          onResponseEnd() {
            resolve(Buffer.concat(chunks).toString("utf8"));
          },
          onResponseError(_c, e) {
            reject(e);
          },
        },
      );
    }),
  "node:http keep-alive Agent": () =>
    new Promise((resolve, reject) => {
      const rq = http.request(
        {
          host: url.hostname,
          port: url.port,
          path,
          method: "POST",
          headers: { ...headers, "content-length": Buffer.byteLength(body) },
          agent,
        },
        (res) => {
          const chunks = [];
          res.on("data", (c) => chunks.push(c));
          res.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
          res.on("error", reject);
        },
      );
      rq.on("error", reject);
      rq.end(body);
    }),
};

/**
 * The floor, not a usable client: one keep-alive socket per lane, the request written as one string,
 * the answer read by its content-length (no chunked bodies, no errors, no timeouts, no pool).
 */
const rawSockets = new Set();
function rawLane() {
  const head = `POST ${path} HTTP/1.1\r\nhost: ${url.host}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n`;
  let pending;
  let buf = Buffer.alloc(0);
  let sock;
  // The mock closes idle keep-alive sockets after 5 s (while the other clients run): reconnect then.
  const connect = () => {
    sock = net.connect(Number(url.port), url.hostname);
    sock.setNoDelay(true);
    rawSockets.add(sock);
    sock.on("close", () => rawSockets.delete(sock));
    sock.on("error", () => {});
    buf = Buffer.alloc(0);
    sock.on("data", (d) => {
      buf = buf.length ? Buffer.concat([buf, d]) : d;
      const end = buf.indexOf("\r\n\r\n");
      if (end < 0) return;
      const m = /content-length: *(\d+)/i.exec(buf.subarray(0, end).toString("latin1"));
      const len = Number(m?.[1] ?? 0);
      if (buf.length < end + 4 + len) return;
      const text = buf.subarray(end + 4, end + 4 + len).toString("utf8");
      buf = buf.subarray(end + 4 + len);
      pending?.(text);
    });
  };
  return () =>
    new Promise((resolve) => {
      if (!sock || sock.destroyed || sock.readyState === "closed" || !sock.writable) connect();
      pending = resolve;
      sock.write(head + body);
    });
}
// At most LANES calls are in flight (the lanes below), so an idle socket is always there.
const idle = Array.from({ length: LANES }, rawLane);
clients["floor: raw keep-alive socket (not a client)"] = async () => {
  const lane = idle.pop();
  try {
    return await lane();
  } finally {
    idle.push(lane);
  }
};

for (const [name, call] of Object.entries(clients)) {
  const answer = await call();
  if (!answer.includes("chatcmpl-mock"))
    throw new Error(`${name}: unexpected answer ${answer.slice(0, 200)}`);
}
const rows = [["client", "lanes", "round", "req/s", "p50", "CPU per request (client process)"]];
for (let round = 1; round <= 2; round++) {
  for (const [name, call] of Object.entries(clients)) {
    for (let i = 0; i < 300; i++) await call();
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    const end = t0 + DURATION_MS;
    let n = 0;
    const lat = [];
    await Promise.all(
      Array.from({ length: LANES }, async () => {
        while (performance.now() < end) {
          const t = performance.now();
          await call();
          lat.push((performance.now() - t) * 1000);
          n++;
        }
      }),
    );
    lat.sort((a, b) => a - b);
    const c = process.cpuUsage(c0);
    const secs = (performance.now() - t0) / 1000;
    rows.push([
      name,
      String(LANES),
      String(round),
      Math.round(n / secs).toLocaleString("en-US"),
      us(lat[Math.floor(lat.length / 2)]),
      us((c.user + c.system) / n),
    ]);
  }
}
table(rows);
await pool.close();
agent.destroy();
for (const sock of rawSockets) sock.destroy();
child.kill();
