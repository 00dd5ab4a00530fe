import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
// Small helpers shared by the benchmarks (plain Node ESM; benchmarks run the built code in dist/).

/** Runs fn repeatedly for at least `minMs` (after `warmup` calls) and returns per-call stats in µs. */
export async function measure(fn, { warmup = 20, minMs = 1000, minRuns = 20, maxRuns = 1e6 } = {}) {
  for (let i = 0; i < warmup; i++) await fn();
  const samples = [];
  const start = performance.now();
  while ((performance.now() - start < minMs || samples.length < minRuns) && samples.length < maxRuns) {
    const t = performance.now();
    await fn();
    samples.push((performance.now() - t) * 1000);
  }
  samples.sort((a, b) => a - b);
  const q = (p) => samples[Math.min(samples.length - 1, Math.floor(p * samples.length))];
  const mean = samples.reduce((s, x) => s + x, 0) / samples.length;
  return {
    runs: samples.length,
    meanUs: mean,
    p50Us: q(0.5),
    p99Us: q(0.99),
    maxUs: samples[samples.length - 1],
  };
}

/** Formats µs for tables. */
export function us(x) {
  if (x >= 1000) return `${(x / 1000).toFixed(2)} ms`;
  return `${x.toFixed(1)} µs`;
}

/** Prints a markdown table. */
export function table(rows) {
  const [head, ...body] = rows;
  const line = (r) => `| ${r.join(" | ")} |`;
  console.log([line(head), line(head.map(() => "---")), ...body.map(line)].join("\n"));
}

const children = [];
process.on("exit", () => {
  for (const child of children) if (child.exitCode === null) child.kill("SIGTERM");
});

/**
 * Starts `node <args>` and resolves with the child and the first capture of `pattern` in its
 * output (e.g. the URL it listens on). Children are stopped when this process exits.
 */
export function startChild(args, pattern, env = {}, timeoutMs = 20_000) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, {
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, TOKENFUSE_LOG_LEVEL: "error", ...env },
    });
    children.push(child);
    let out = "";
    const timer = setTimeout(() => reject(new Error(`child did not start in time: ${out}`)), timeoutMs);
    const onData = (d) => {
      out += d;
      const m = pattern.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({ child, url: m[1] });
      }
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`child exited ${code}: ${out}`));
    });
  });
}

/** Stops every child started by {@link startChild}. */
export function stopChildren() {
  for (const child of children) if (child.exitCode === null) child.kill("SIGTERM");
}

/**
 * CPU time a process has used, in µs, as [user, system], from /proc (Linux; clock ticks of 10 ms),
 * or undefined elsewhere. Why: on a shared machine throughput swings with the neighbours' load,
 * while CPU per request says what each process costs.
 */
export function cpuOf(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return [Number(fields[11]) * 10_000, Number(fields[12]) * 10_000];
  } catch {
    return undefined;
  }
}

/**
 * The gateway benches' mock upstream (50 completion tokens). ledgerMaxRecords: the benches read no
 * per-request records, so the mock (which shares the cores) keeps few.
 */
export function startBenchMock() {
  return startChild(
    [
      "--input-type=module",
      "-e",
      `import { startMockServer } from "./dist/gateway/mock/mock-server.js";
       const s = await startMockServer({ completionTokens: 50, ledgerMaxRecords: 1000 }); console.log("mock on " + s.url);`,
    ],
    /mock on (http:\/\/127\.0\.0\.1:\d+)/,
  );
}

/**
 * Writes the gateway benches' config (upstream: the mock; feature `chat`; every budget enforced, with
 * limits high enough that nothing is refused; the memory store, or BENCH_STORE's Redis) to a
 * temporary file and returns its path.
 */
export function writeBenchConfig(mockUrl) {
  const path = join(mkdtempSync(join(tmpdir(), "tf-bench-")), "tokenfuse.json");
  writeFileSync(
    path,
    JSON.stringify({
      upstreams: { provider: { type: "openai", base_url: `${mockUrl}/v1`, timeout_ms: 30000 } },
      features: { chat: { model: "gpt-4o", max_input: 4000, max_output: 1000, on_exceed: "trim" } },
      tiers: { free: { daily_tokens: 1e15, tokens_per_minute: 1e15 } },
      default_tier: "free",
      global: { tokens_per_minute: 1e15 },
      // BENCH_STORE=redis://…: the gateway on a Redis store (its production set-up) under a key prefix
      // of this run's own; the default is the memory store.
      ...(process.env.BENCH_STORE
        ? { store: { url: process.env.BENCH_STORE, key_prefix: `tf-bench-${process.pid}-${Date.now()}:` } }
        : {}),
    }),
  );
  return path;
}

/** The request every gateway bench sends. */
export const BENCH_BODY = JSON.stringify({
  model: "gpt-4o",
  messages: [
    { role: "system", content: "You are a helpful assistant." },
    { role: "user", content: "What is the capital of France? Answer in one word." },
  ],
});
