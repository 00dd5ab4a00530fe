// Admission throughput and latency on the Redis store, side by side with rate-limiter-flexible on the
// same server in the same run. Run: npm run build && node bench/redis-store.bench.js [redis-url]
// Each case runs `lanes` async loops over ONE ioredis connection for a fixed time; every operation is
// a real round trip to Redis. Throughput = operations / wall time; latency per operation.
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { Redis } from "ioredis";
import { RateLimiterRedis, RateLimiterUnion } from "rate-limiter-flexible";
import { createRedisStore } from "../dist/stores/redis/redis-store.js";
import { table, us } from "./util.js";

const url = process.argv[2] ?? process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
const DURATION_MS = Number(process.env.BENCH_MS ?? 3000);
const prefix = `tf:bench:${randomUUID()}:`;

/**
 * CPU time (µs) of the redis-server process, read from /proc when the server runs on this machine
 * (its pid from INFO server); undefined otherwise. With the client's own CPU time it tells which side
 * is the bottleneck: a side near 100 % of a core is.
 */
let redisPid;
function redisCpuUs() {
  if (redisPid === undefined) return undefined;
  try {
    const f = readFileSync(`/proc/${redisPid}/stat`, "utf8").split(") ")[1].split(" ");
    return (Number(f[11]) + Number(f[12])) * 10_000; // clock ticks of 10 ms
  } catch {
    return undefined;
  }
}

async function run(name, lanes, op) {
  for (let i = 0; i < 200; i++) await op(); // warm-up
  const samples = [];
  let ops = 0;
  const redis0 = redisCpuUs();
  const node0 = process.cpuUsage();
  const start = performance.now();
  const end = start + DURATION_MS;
  await Promise.all(
    Array.from({ length: lanes }, async () => {
      while (performance.now() < end) {
        const t = performance.now();
        await op();
        samples.push((performance.now() - t) * 1000);
        ops++;
      }
    }),
  );
  const wall = performance.now() - start;
  const node = process.cpuUsage(node0);
  const redis1 = redisCpuUs();
  samples.sort((a, b) => a - b);
  const q = (p) => samples[Math.min(samples.length - 1, Math.floor(p * samples.length))];
  return {
    name,
    lanes,
    opsPerSec: Math.round((ops / wall) * 1000),
    p50: q(0.5),
    p99: q(0.99),
    nodeCpuPerOp: (node.user + node.system) / ops,
    redisCpuPerOp: redis0 === undefined || redis1 === undefined ? undefined : (redis1 - redis0) / ops,
  };
}

const store = createRedisStore({ url, keyPrefix: prefix, commandTimeoutMs: 5000 });
// The baselines use a plain ioredis client, as tokenfuse's store does.
const raw = new Redis(url);
const pid = /process_id:(\d+)/.exec(await raw.info("server"))?.[1];
try {
  // Only when that pid is a redis-server on this machine (not a server elsewhere with the same pid).
  if (pid && readFileSync(`/proc/${pid}/comm`, "utf8").startsWith("redis")) redisPid = Number(pid);
} catch {
  // no /proc, or the server runs elsewhere: the column shows "–"
}
const now = Date.now();
const scopes = (u) => [
  {
    key: `user:{u${u}}:day:d`,
    kind: "user",
    window: "day",
    limit: 1e15,
    resetAtMs: now + 864e5,
    expireAtMs: now + 2 * 864e5,
  },
  {
    key: "feature:{chat}:day:d",
    kind: "feature",
    window: "day",
    limit: 1e15,
    resetAtMs: now + 864e5,
    expireAtMs: now + 2 * 864e5,
  },
  {
    key: "global:minute:m",
    kind: "global",
    window: "minute",
    limit: 1e15,
    resetAtMs: now + 6e4,
    expireAtMs: now + 12e4,
  },
];
let seq = 0;
const tfReserve = async () => {
  const id = `r${seq++}`;
  await store.reserve({ id, tokens: 500, scopes: scopes(seq % 100), nowMs: now, ttlMs: 600_000 });
};
const tfAdmitCycle = async () => {
  const id = `a${seq++}`;
  const sc = scopes(seq % 100);
  await store.reserve({ id, tokens: 500, scopes: sc, nowMs: now, ttlMs: 600_000 });
  await store.settle({ id, actualTokens: 300, reservedTokens: 500, scopes: sc, nowMs: now });
};

// Baselines on the same server.
await raw.script("LOAD", "return 1");
const bare3 =
  "redis.call('INCRBY', KEYS[1], ARGV[1]) redis.call('INCRBY', KEYS[2], ARGV[1]) redis.call('INCRBY', KEYS[3], ARGV[1]) return 1";
const bareSha = await raw.script("LOAD", bare3);
const bareLua = async () => {
  await raw.evalsha(bareSha, 3, `${prefix}b1:${seq++ % 100}`, `${prefix}b2`, `${prefix}b3`, 500);
};
const ping = async () => {
  await raw.ping();
};
const opts = (points, duration) => ({ storeClient: raw, keyPrefix: `${prefix}rlf`, points, duration });
const rlfUser = new RateLimiterRedis({ ...opts(1e15, 86400), keyPrefix: `${prefix}rlf-user` });
const rlfFeature = new RateLimiterRedis({ ...opts(1e15, 86400), keyPrefix: `${prefix}rlf-feature` });
const rlfGlobal = new RateLimiterRedis({ ...opts(1e15, 60), keyPrefix: `${prefix}rlf-global` });
const union = new RateLimiterUnion(rlfUser, rlfFeature, rlfGlobal);
const rlfConsume = async () => {
  await rlfUser.consume(`u${seq++ % 100}`, 500);
};
const rlfUnion = async () => {
  // A Union consumes the same key in every limiter; a user would key the feature and global ones by a constant.
  await union.consume(`u${seq++ % 100}`, 500);
};

const cases = [
  ["PING (floor: one round trip)", ping],
  ["bare Lua script, 3 INCRBY", bareLua],
  ["tokenfuse reserve (3 scopes, 1 script)", tfReserve],
  ["tokenfuse reserve + settle (full admission)", tfAdmitCycle],
  ["rate-limiter-flexible consume (1 key)", rlfConsume],
  ["rate-limiter-flexible Union of 3", rlfUnion],
];
const rows = [["case", "in flight", "ops/s", "p50", "p99", "CPU/op client", "CPU/op redis-server"]];
for (const lanes of [1, 64]) {
  for (const [name, op] of cases) {
    const r = await run(name, lanes, op);
    rows.push([
      r.name,
      String(r.lanes),
      r.opsPerSec.toLocaleString("en-US"),
      us(r.p50),
      us(r.p99),
      us(r.nodeCpuPerOp),
      r.redisCpuPerOp === undefined ? "–" : us(r.redisCpuPerOp),
    ]);
  }
}

// Round trips per admission, counted on the client: every command ioredis sends is one round trip.
let sent = 0;
const origSend = store.redis.sendCommand.bind(store.redis);
store.redis.sendCommand = (...a) => {
  sent++;
  return origSend(...a);
};
const N = 1000;
for (let i = 0; i < N; i++) await tfAdmitCycle();
store.redis.sendCommand = origSend;
table(rows);
console.log(
  `\nRound trips per admission (reserve + settle), counted on the client: ${(sent / N).toFixed(2)}`,
);

// Clean up this run's keys.
let cursor = "0";
do {
  const [next, keys] = await raw.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 1000);
  if (keys.length) await raw.del(...keys);
  cursor = next;
} while (cursor !== "0");
await store.close();
raw.disconnect();
