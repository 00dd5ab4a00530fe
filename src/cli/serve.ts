import { createLogger } from "../core/logger.js";
import { createGateway, DEFAULT_SHUTDOWN_GRACE_MS } from "../gateway/server.js";
import { createStoreFromConfig } from "../stores/from-config.js";
import { resolveCliConfig } from "./config-arg.js";
import { CliError, type CliIo, parseCliArgs } from "./io.js";

/** Longest time from a stop signal to the exit (ms): the gateway's grace, then settling what was cut. */
const STOP_DEADLINE_MS = 10_000;

/**
 * `tokenfuse serve [--config F] [--port N] [--host H]`: runs the gateway until SIGINT/SIGTERM; SIGHUP
 * reopens the usage log file (after logrotate moved it).
 */
export async function runServe(args: string[], io: CliIo): Promise<number> {
  const { values } = parseCliArgs(
    args,
    { config: { type: "string" }, port: { type: "string" }, host: { type: "string" } },
    false,
  );
  const portFlag = values.port as string | undefined;
  const portText = portFlag ?? io.env.PORT ?? "8787";
  // Decimal digits only: Number() read "" (an unset `--port "$P"`) as 0, a random port, and took
  // "0x1f90" or "8e3". 0 still asks for a free port (the banner prints the one bound).
  const port = /^\d{1,5}$/.test(portText) ? Number(portText) : Number.NaN;
  if (!(port >= 0 && port <= 65535))
    throw new CliError(
      `${portFlag !== undefined ? "--port" : "PORT"} must be a port number from 0 to 65535, got "${portText}"`,
    );
  const host = (values.host as string | undefined) ?? io.env.HOST ?? "127.0.0.1";
  const { config, source } = resolveCliConfig(values.config as string | undefined, io, {
    adminFromEnv: true,
  });
  const logger = createLogger();
  const store = createStoreFromConfig(config.store, logger);
  let gateway: ReturnType<typeof createGateway>;
  try {
    gateway = createGateway({ config, store, logger });
  } catch (e) {
    // E.g. a usage log path that cannot be opened: exit 2 with the config error, not hang on Redis.
    await store.close().catch(() => {});
    throw e;
  }
  const bound = await gateway.listen(port, host);
  const upstream = config.upstreams[0];
  const mockNote =
    upstream?.type === "mock"
      ? ` — upstream: the built-in mock (deterministic answers${io.env.OPENAI_API_KEY ? "" : "; no provider key set"})`
      : ` — upstream: ${upstream?.name}`;
  const usageLog =
    config.usageLog === undefined
      ? "off"
      : config.usageLog.kind === "stdout"
        ? "stdout"
        : config.usageLog.path;
  const banner = `tokenfuse gateway on http://${host}:${bound} (config: ${source}, store: ${config.store.kind}, usage log: ${usageLog})${mockNote}\n`;
  // With the usage log on stdout, stdout carries nothing but its JSON lines.
  if (config.usageLog?.kind === "stdout") io.err(banner);
  else io.out(banner);
  if (config.keys.length === 0) {
    logger.warn(
      {},
      'no API keys configured: every request is accepted as the user "anonymous" (keys cannot be created through the admin API until the config has keys:)',
    );
  }
  // SIGHUP reopens the usage log file (logrotate's postrotate). Only then: otherwise SIGHUP keeps its
  // default meaning (the process stops when its terminal goes away).
  const reopen = () => gateway.reopenUsageLog();
  if (config.usageLog?.kind === "file") process.on("SIGHUP", reopen);
  await new Promise<void>((resolve) => {
    // One signal starts the stop; from then on a second one takes its default action (ends the
    // process at once: Ctrl-C twice).
    const stop = () => {
      process.off("SIGINT", stop);
      process.off("SIGTERM", stop);
      resolve();
    };
    process.on("SIGINT", stop);
    process.on("SIGTERM", stop);
  });
  // Stop accepting, let the requests in flight finish (DEFAULT_SHUTDOWN_GRACE_MS), cut and settle what
  // is left, then exit: a stop signal must stop the process even if a connection, an upstream or the
  // store stalls, and within docker stop's 10 s.
  logger.info(
    { graceMs: DEFAULT_SHUTDOWN_GRACE_MS },
    "stopping: no new connections; the requests in flight may finish",
  );
  const deadline = new Promise<"timeout">((resolve) =>
    setTimeout(() => resolve("timeout"), STOP_DEADLINE_MS).unref(),
  );
  // SIGHUP keeps reopening the log while the requests in flight finish (a logrotate postrotate in
  // that window must not kill the process with its answers and settlements half done).
  const result = await Promise.race([gateway.close().then(() => "closed" as const), deadline]);
  process.off("SIGHUP", reopen);
  if (result === "timeout")
    logger.error({}, `shutdown took over ${STOP_DEADLINE_MS / 1000} s; exiting anyway`);
  process.exit(0);
}
