import { createLogger } from "../core/logger.js";
import { createGateway } from "../gateway/server.js";
import { createStoreFromConfig } from "../stores/from-config.js";
import { resolveCliConfig } from "./config-arg.js";
import { CliError, type CliIo, parseCliArgs } from "./io.js";

/** `tokenfuse serve [--config F] [--port N] [--host H]`: runs the gateway until SIGINT/SIGTERM. */
export async function runServe(args: string[], io: CliIo): Promise<number> {
  const { values } = parseCliArgs(
    args,
    { config: { type: "string" }, port: { type: "string" }, host: { type: "string" } },
    false,
  );
  const portText = (values.port as string | undefined) ?? io.env.PORT ?? "8787";
  const port = Number(portText);
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new CliError(`--port must be a port number, got "${portText}"`);
  const host = (values.host as string | undefined) ?? io.env.HOST ?? "127.0.0.1";
  const { config, source } = resolveCliConfig(values.config as string | undefined, io);
  const logger = createLogger();
  const store = createStoreFromConfig(config.store, logger);
  const gateway = createGateway({ config, store, logger });
  const bound = await gateway.listen(port, host);
  const upstream = config.upstreams[0];
  const mockNote =
    upstream?.type === "mock"
      ? ` — upstream: the built-in mock (deterministic answers${io.env.OPENAI_API_KEY ? "" : "; no provider key set"})`
      : ` — upstream: ${upstream?.name}`;
  io.out(
    `tokenfuse gateway on http://${host}:${bound} (config: ${source}, store: ${config.store.kind})${mockNote}\n`,
  );
  if (config.keys.length === 0) {
    logger.warn(
      {},
      'no API keys configured: every request is accepted as the user "anonymous" (keys cannot be created through the admin API until the config has keys:)',
    );
  }
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  });
  // Stop accepting, finish what can finish, then exit: a stop signal must stop the process even if
  // a connection or an upstream stalls.
  const deadline = new Promise<"timeout">((resolve) => setTimeout(() => resolve("timeout"), 10_000).unref());
  const result = await Promise.race([gateway.close().then(() => "closed" as const), deadline]);
  if (result === "timeout") logger.error({}, "shutdown took over 10 s; exiting anyway");
  process.exit(0);
}
