import { spawn } from "node:child_process";

/** What test/workers/load-worker.ts prints when it is done. */
export interface WorkerLedger {
  admitted: number;
  refused: Record<string, number>;
  /** "user|feature" → tokens settled. */
  charged: Record<string, number>;
  /**
   * "user|feature" → what the worker's settlements reported: tokens (input + output), input and output
   * tokens, cost in nano-USD as the library computed it, and the number of settled requests.
   */
  spend: Record<string, { tokens: number; input: number; output: number; cost: number; requests: number }>;
}

/** Runs one load-worker OS process with `input` (bounded to 60 s) and resolves with its ledger. */
export function runLoadWorker(input: object): Promise<WorkerLedger> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", "test/workers/load-worker.ts"], {
      env: { ...process.env, TF_WORKER: JSON.stringify(input) },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    let err = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (err += d));
    const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
    child.on("exit", (code) => {
      clearTimeout(timer);
      if (code !== 0) return reject(new Error(`worker exited ${code}: ${err}`));
      try {
        resolve(JSON.parse(out.trim().split("\n").at(-1) ?? "") as WorkerLedger);
      } catch (e) {
        reject(new Error(`bad worker output: ${out} ${err} ${e}`));
      }
    });
  });
}
