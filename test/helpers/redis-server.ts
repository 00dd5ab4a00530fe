import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createConnection, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** A free TCP port on 127.0.0.1. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** True when a Redis answers PING at host:port within `timeoutMs`. */
export async function pingRedis(host: string, port: number, timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = createConnection({ host, port });
    const done = (ok: boolean) => {
      sock.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    sock.once("error", () => {
      clearTimeout(timer);
      done(false);
    });
    sock.once("connect", () => sock.write("PING\r\n"));
    sock.once("data", (d) => {
      clearTimeout(timer);
      done(d.toString().startsWith("+PONG"));
    });
  });
}

/** A redis-server this test run started; stop it by its pid, never the shared one. */
export interface OwnRedis {
  url: string;
  port: number;
  pid: number;
  /** SIGKILL the server (a crash). */
  kill(): Promise<void>;
  /** Start it again on the same port (after kill). */
  restart(): Promise<void>;
  /** SIGSTOP / SIGCONT: the server stops answering without closing connections. */
  pause(): void;
  resume(): void;
  /** Stop for good and remove its directory. */
  stop(): Promise<void>;
}

function redisServerBinary(): string {
  const r = spawnSync("sh", ["-c", "command -v redis-server"], { encoding: "utf8" });
  const bin = r.stdout.trim();
  if (!bin) throw new Error("redis-server is not installed (.ci/run installs it with apt)");
  return bin;
}

async function waitFor(check: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}`);
}

/** Starts a private redis-server on a free loopback port (no persistence), with `extraArgs`. */
export async function startRedisServer(extraArgs: readonly string[] = []): Promise<OwnRedis> {
  const bin = redisServerBinary();
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "tf-redis-"));
  let child: ChildProcess | undefined;
  const launch = async () => {
    child = spawn(
      bin,
      [
        "--port",
        String(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        dir,
        ...extraArgs,
      ],
      {
        stdio: "ignore",
      },
    );
    await waitFor(() => pingRedis("127.0.0.1", port), 10_000, `redis-server on port ${port}`);
  };
  await launch();
  const exited = (c: ChildProcess | undefined) =>
    new Promise<void>((resolve) => {
      if (!c || c.exitCode !== null || c.signalCode !== null) return resolve();
      c.once("exit", () => resolve());
    });
  const own: OwnRedis = {
    url: `redis://127.0.0.1:${port}`,
    port,
    get pid() {
      return child?.pid ?? -1;
    },
    async kill() {
      const c = child;
      c?.kill("SIGKILL");
      await exited(c);
    },
    async restart() {
      await launch();
    },
    pause() {
      child?.kill("SIGSTOP");
    },
    resume() {
      child?.kill("SIGCONT");
    },
    async stop() {
      const c = child;
      c?.kill("SIGCONT");
      c?.kill("SIGTERM");
      await exited(c);
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return own;
}

/**
 * The Redis the tests share: REDIS_URL if set, else 127.0.0.1:6379 if it answers, else a private
 * redis-server started on a free port (returned so it can be stopped at the end).
 */
export async function findOrStartRedis(): Promise<{ url: string; own?: OwnRedis }> {
  if (process.env.REDIS_URL) return { url: process.env.REDIS_URL };
  if (await pingRedis("127.0.0.1", 6379)) return { url: "redis://127.0.0.1:6379" };
  const own = await startRedisServer();
  return { url: own.url, own };
}
