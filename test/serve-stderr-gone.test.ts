import { spawn } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect, it } from "vitest";

// A process whose stderr reader went away (`tokenfuse serve 2>&1 | head -c 10`) keeps working and
// still stops when told. Before: the gateway's banner write to the closed stderr was an uncaught
// EPIPE, and at that exit the logger's flush retried its failing write forever (sonic-boom 4's
// flushSync retries every error, not only EAGAIN): the process hung and ignored SIGTERM.

const bin = join(process.cwd(), "bin/tokenfuse.js");

function exitOf(p: ReturnType<typeof spawn>, ms: number): Promise<unknown> {
  return Promise.race([
    new Promise((resolve) => p.on("exit", (code, signal) => resolve({ code, signal }))),
    new Promise((resolve) => setTimeout(() => resolve("still running"), ms)),
  ]);
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

it("serve with a closed stderr keeps serving and stops on SIGTERM", async () => {
  const dir = mkdtempSync(join(tmpdir(), "tf-stderr-"));
  const config = join(dir, "tokenfuse.yaml");
  writeFileSync(
    config,
    [
      "features:",
      "  chat: { model: gpt-4o-mini, max_input: 4000, max_output: 50, on_exceed: trim }",
      "usage_log: stdout",
      "admin: { token: admin-token-for-this-test-only }",
      "",
    ].join("\n"),
  );
  const port = await freePort();
  const p = spawn(process.execPath, [bin, "serve", "--config", config, "--port", String(port)], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, TOKENFUSE_LOG_LEVEL: "info" },
  });
  // stderr's reader is gone before the gateway writes anything there (its banner, with the usage
  // log on stdout, and its log lines).
  p.stderr?.destroy();
  const usageLines: string[] = [];
  p.stdout?.on("data", (d: Buffer) => usageLines.push(...d.toString("utf8").split("\n").filter(Boolean)));
  const exited = exitOf(p, 60_000);
  try {
    let up = false;
    for (let i = 0; i < 100 && !up; i++) {
      up = await fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(1000) }).then(
        (r) => r.ok,
        () => false,
      );
      if (!up) await new Promise((r) => setTimeout(r, 100));
    }
    expect(up).toBe(true);
    // Still serving; each switch is logged on stderr, whose writes fail with EPIPE.
    for (let i = 0; i < 4; i++) {
      const sw = await fetch(`http://127.0.0.1:${port}/admin/features/chat`, {
        method: "PUT",
        headers: {
          "content-type": "application/json",
          authorization: "Bearer admin-token-for-this-test-only",
        },
        body: JSON.stringify({ enabled: i % 2 === 1 }),
      });
      expect(sw.status).toBe(200);
      await sw.arrayBuffer();
      const res = await fetch(`http://127.0.0.1:${port}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: "gpt-4o-mini", messages: [{ role: "user", content: "hi" }] }),
      });
      expect(res.status).toBe(i % 2 === 1 ? 200 : 503);
      await res.arrayBuffer();
    }
    p.kill("SIGTERM");
    expect(await Promise.race([exited, exitOf(p, 8_000)])).toEqual({ code: 0, signal: null });
    // The usage log (stdout, still read) has every decision: 2 refused + 2 admitted and settled.
    expect(usageLines.length).toBeGreaterThanOrEqual(6);
  } finally {
    p.kill("SIGKILL");
  }
}, 30_000);

it("the logger's flush at exit gives up on a closed stderr instead of retrying forever", async () => {
  const child = `
import { createLogger } from ${JSON.stringify(join(process.cwd(), "dist/core/logger.js"))};
const log = createLogger("info");
await new Promise((r) => setTimeout(r, 300)); // the parent has closed the pipe by now
// The first line goes to the wire, the next ones wait in the logger's buffer; exit flushes them.
for (let i = 0; i < 3; i++) log.error({ i }, "a line nobody reads");
process.exit(0);
`;
  const p = spawn(process.execPath, ["--input-type=module", "-e", child], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  p.stderr?.destroy();
  const exited = exitOf(p, 8_000);
  try {
    expect(await exited).toEqual({ code: 0, signal: null });
  } finally {
    p.kill("SIGKILL");
  }
}, 30_000);
