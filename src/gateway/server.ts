import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { type AddressInfo, Server as NetServer, type Socket } from "node:net";
import { createKeyRing, type KeyRing } from "../access/key-ring.js";
import { createTierOverrides, type TierOverrides } from "../access/tier-overrides.js";
import type { ResolvedConfig } from "../config/types.js";
import { createConfiguredEngine } from "../configured-engine.js";
import type { Engine, SummaryProvider } from "../core/engine.js";
import type { Logger } from "../core/logger.js";
import { type ChatMessage, type Clock, systemClock } from "../core/types.js";
import { GuardedStore } from "../stores/guarded-store.js";
import type { Store } from "../stores/types.js";
import type { SwitchBoard } from "../switches/switch-board.js";
import { tokenizerForModel } from "../tokenizers/index.js";
import { handleAdmin } from "./admin.js";
import { type Authenticator, createAuthenticator } from "./auth.js";
import { handleChatCompletions } from "./chat-completions.js";
import { isDashboardPath, sendDashboard } from "./dashboard.js";
import { errorEnvelope, gatewayError, sendError, sendJson } from "./http-errors.js";
import { createGatewayMetrics, type GatewayMetrics, registerUsageLogMetrics } from "./metrics.js";
import { createUpstreamClients } from "./upstream/create-clients.js";

/** OpenAI APIs (paths under /v1/) that the gateway does not serve; a request for one is told why. */
const OTHER_OPENAI_APIS: ReadonlySet<string> = new Set([
  "responses",
  "completions",
  "embeddings",
  "moderations",
  "images/generations",
  "audio/speech",
  "audio/transcriptions",
  "batches",
  "files",
  "assistants",
  "threads",
]);

/** The gateway's own routes and their method (a known path with another method is a 405, not a 404). */
const ROUTE_METHODS: Record<string, string> = {
  "/v1/chat/completions": "POST",
  "/v1/models": "GET",
  "/v1/budget": "GET",
  "/healthz": "GET",
  "/readyz": "GET",
  "/metrics": "GET",
  "/dashboard": "GET",
};

import { UpstreamCancel, type UpstreamClient } from "./upstream/types.js";

/** How often run-time keys and tier overrides are re-read from a shared store (ms), as the switches are. */
const RUN_TIME_REFRESH_MS = 500;

/** Options of {@link createGateway}. */
export interface GatewayOptions {
  config: ResolvedConfig;
  store: Store;
  logger: Logger;
  clock?: Clock;
  /** Request body limit (default 1 MiB). */
  bodyLimitBytes?: number;
  /** Time to receive a request's headers (ms, default 10 s). */
  headersTimeoutMs?: number;
  /** Time to receive a whole request (ms, default 30 s); responses may stream longer. */
  requestTimeoutMs?: number;
  /** Upstream clients to use instead of those built from the config (tests). */
  upstreams?: Map<string, UpstreamClient>;
  /**
   * How long {@link Gateway.close} lets the requests in flight finish before it cuts them (ms,
   * default {@link DEFAULT_SHUTDOWN_GRACE_MS}).
   */
  shutdownGraceMs?: number;
}

/**
 * Default time the requests in flight get to finish at a stop (ms); see {@link Gateway.close}. Why 8 s:
 * `tokenfuse serve` exits at most 10 s after SIGTERM (as `docker stop` kills at 10 s by default), and
 * what is cut after the grace needs a moment to settle and the usage log to be flushed.
 */
export const DEFAULT_SHUTDOWN_GRACE_MS = 8_000;

/**
 * On each connection's socket: how many of its requests have a handler at work, and the latest one's
 * response (what a stop needs to close it once answered). Why on the socket and not a Set of the
 * responses in flight: a Set add and delete per request cost ~7 µs of gateway CPU per request in a
 * 6-round A/B (`bench/gateway-cpu.bench.js`, 64 connections); two properties of the socket do not.
 */
const kBusy = Symbol("tokenfuse requests in flight");
const kLatest = Symbol("tokenfuse latest response");
type Conn = Socket & { [kBusy]?: number; [kLatest]?: ServerResponse | undefined };

/** Longest wait, after the grace period, for the requests cut then to settle (ms). */
export const SETTLE_AFTER_CUT_MS = 5_000;

/** A running gateway. */
export interface Gateway {
  readonly server: Server;
  readonly metrics: GatewayMetrics;
  readonly engine: Engine;
  readonly switches: SwitchBoard;
  /** API keys created at run time (admin API), as this process sees them. */
  readonly keys: KeyRing;
  /** Run-time tier overrides (admin API), as this process sees them. */
  readonly tiers: TierOverrides;
  /** Listens on host:port (port 0 = any free port); resolves with the bound port. */
  listen(port: number, host?: string): Promise<number>;
  /** Opens the usage log file again (SIGHUP after logrotate); nothing without a usage log file. */
  reopenUsageLog(): void;
  /**
   * Stops gracefully: stops accepting connections and closes the idle keep-alive ones at once
   * (`/readyz` answers 503 from then on, to a request that still reaches it on an open connection);
   * lets the requests in flight finish for up to `shutdownGraceMs`, each connection closed once its
   * response has ended (responses not yet started say `connection: close`); then cuts what is left
   * as a client disconnect (the upstream call is aborted; what was generated is charged, at least
   * the input of a call that reached the provider) and waits up to 5 s for those to settle; then closes the engine (flushing the usage
   * log), the upstream clients and the store. A second call returns the same promise.
   */
  close(): Promise<void>;
}

/** Stable text of the models list (`GET /v1/models`): the models features may send to. */
function modelsList(config: ResolvedConfig): object {
  const ids = new Set<string>();
  for (const f of Object.values(config.features)) {
    ids.add(f.model);
    for (const m of f.allowedModels) ids.add(m);
  }
  return {
    object: "list",
    data: [...ids].map((id) => ({ id, object: "model", created: 0, owned_by: "tokenfuse" })),
  };
}

/**
 * Creates the gateway (SPEC §6) over the engine, on node:http with undici towards the upstreams
 * (measured in docs/BENCHMARKS.md: the server side is the smaller share of the gateway's CPU; the
 * upstream client and the two socket writes per request are the larger ones).
 */
export function createGateway(options: GatewayOptions): Gateway {
  const { config, store, logger } = options;
  const metrics = createGatewayMetrics();
  const upstreams = options.upstreams ?? createUpstreamClients(config);
  const summaryProvider: SummaryProvider = async ({ feature, model, messages, maxOutputTokens }) => {
    const u = upstreams.get(config.features[feature]?.upstream ?? config.upstreams[0]?.name ?? "");
    if (!u) throw new Error("no upstream for summaries");
    const res = await u.send({
      body: { model, messages, max_tokens: maxOutputTokens },
      cancel: UpstreamCancel.timeout(u.timeoutMs),
    });
    const whole = await res.text();
    if (res.status !== 200) throw new Error(`summary upstream answered ${res.status}`);
    // Answered: whatever the body holds, the engine settles it (usage, else an estimate of the text).
    let parsed: { choices?: Array<{ message?: ChatMessage }>; usage?: object } | undefined;
    try {
      parsed = JSON.parse(whole);
    } catch {
      parsed = undefined;
    }
    const text = parsed?.choices?.[0]?.message?.content;
    return { text: typeof text === "string" ? text : "", usage: parsed?.usage ?? null };
  };
  const configured = createConfiguredEngine({
    config,
    store,
    logger,
    clock: options.clock,
    summaryProvider,
    events: metrics.events,
  });
  const { engine, switches } = configured;
  registerUsageLogMetrics(metrics.registry, () => configured.usageLog?.stats());
  // Run-time keys and tier overrides: snapshots of the store, refreshed like the switches (every
  // process on a shared store sees a change within a second; no request waits on the store).
  const refreshMs = store.kind === "memory" ? 0 : RUN_TIME_REFRESH_MS;
  const keys = createKeyRing({ config, store, logger, refreshMs });
  const tiers = createTierOverrides({ config, store, logger, refreshMs });
  const ready = Promise.all([configured.ready, keys.refresh(), tiers.refresh()]);
  if (store instanceof GuardedStore) {
    store.onDegraded = (e) => metrics.storeErrors.inc({ op: e.op, mode: e.mode });
  }
  // Load the vocabularies now, not on the first request (a first caller would wait ~0.2 s).
  for (const f of Object.values(config.features)) tokenizerForModel(f.model).countText("warm up");
  const auth: Authenticator = createAuthenticator(config, { keys, tiers });
  const deps = {
    config,
    engine,
    auth,
    upstreams,
    metrics,
    logger,
    bodyLimitBytes: options.bodyLimitBytes ?? 1024 * 1024,
    clock: options.clock ?? systemClock,
  };

  /** Chat requests in flight, and who waits for them to end (close: their settlements are recorded). */
  let inFlight = 0;
  let idle: Array<() => void> = [];
  /** Set by close(): the gateway finishes what it has and takes nothing new. */
  let draining = false;
  /** Open connections (close() closes those that have sent nothing yet). */
  const sockets = new Set<Socket>();
  let closing: Promise<void> | undefined;

  async function route(req: IncomingMessage, res: ServerResponse): Promise<string> {
    const url = req.url ?? "/";
    const path = url.split("?")[0] ?? "/";
    if (req.method === "POST" && path === "/v1/chat/completions") {
      inFlight++;
      try {
        await ready;
        await handleChatCompletions(req, res, deps);
      } finally {
        if (--inFlight === 0 && idle.length > 0) {
          const waiting = idle;
          idle = [];
          for (const resolve of waiting) resolve();
        }
      }
      return "chat";
    }
    if (req.method === "GET" && path === "/healthz") {
      sendJson(res, 200, { status: "ok" });
      return "healthz";
    }
    if (req.method === "GET" && path === "/readyz") {
      // Stopping: not ready, whatever the store says (a load balancer takes this instance out).
      if (draining) {
        sendJson(res, 503, { status: "draining", store: store.kind });
        return "readyz";
      }
      // Ready when the store answers and, with keys required, the run-time keys were read once
      // (until then a key created at run time would be answered 503).
      const ok = (await storeReachable(store)) && (!auth.required || keys.loaded);
      sendJson(res, ok ? 200 : 503, { status: ok ? "ready" : "store unavailable", store: store.kind });
      return "readyz";
    }
    if (req.method === "GET" && isDashboardPath(path)) {
      sendDashboard(res, path);
      return "dashboard";
    }
    if (req.method === "GET" && path === "/metrics") {
      const text = await metrics.registry.metrics();
      res.writeHead(200, { "content-type": metrics.registry.contentType });
      res.end(text);
      return "metrics";
    }
    if (req.method === "GET" && path === "/v1/models") {
      await ready;
      auth.authenticate(req.headers.authorization, undefined);
      sendJson(res, 200, modelsList(config));
      return "models";
    }
    if (path.startsWith("/admin/")) await ready;
    const admin = await handleAdmin(req, res, path, {
      config,
      switches,
      store,
      keys,
      tiers,
      logger,
      nowMs: () => (options.clock ?? systemClock).nowMs(),
    });
    if (admin) return admin;
    if (req.method === "GET" && path === "/v1/budget") {
      await ready;
      const p = auth.authenticate(req.headers.authorization, firstHeader(req, "x-tokenfuse-user"));
      const report = await engine.remaining({
        user: p.user,
        tier: p.tier,
        features: p.features ? [...p.features] : undefined,
      });
      sendJson(res, 200, report);
      return "budget";
    }
    const allowed = Object.hasOwn(ROUTE_METHODS, path) ? ROUTE_METHODS[path] : undefined;
    if (allowed !== undefined) {
      res.setHeader("allow", allowed);
      throw gatewayError("invalid_request", `${req.method} is not allowed on ${path}: use ${allowed}`, 405);
    }
    if (path.startsWith("/v1/") && OTHER_OPENAI_APIS.has(path.slice(4))) {
      // An OpenAI client pointed at the gateway for an API it does not serve (the AI SDK's
      // `openai(model)` calls the Responses API): say what to use instead.
      throw gatewayError(
        "invalid_request",
        `tokenfuse does not serve ${path}: it budgets chat completions only (POST /v1/chat/completions; with the AI SDK, openai.chat(model) instead of openai(model))`,
        404,
      );
    }
    throw gatewayError("invalid_request", `no route for ${req.method} ${path}`, 404);
  }

  const headersTimeout = options.headersTimeoutMs ?? 10_000;
  const requestTimeout = options.requestTimeoutMs ?? 30_000;
  const server = createServer(
    {
      headersTimeout,
      requestTimeout,
      keepAliveTimeout: 65_000,
      // Node checks these timeouts only every 30 s by default: check often enough to enforce them.
      connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(headersTimeout / 4))),
    },
    (req, res) => {
      const conn = req.socket as Conn;
      conn[kBusy] = (conn[kBusy] ?? 0) + 1;
      conn[kLatest] = res;
      if (draining) closeWhenAnswered(conn);
      route(req, res).then(
        (r) => {
          handled(conn);
          metrics.httpRequests.cell(r, String(res.statusCode)).inc();
        },
        (e: unknown) => {
          sendError(res, e);
          handled(conn);
          metrics.httpRequests.cell("error", String(res.statusCode)).inc();
        },
      );
    },
  );

  server.on("connection", (socket: Socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  });

  /** A request's handler is done (its response ended): while draining, an idle connection is closed. */
  function handled(conn: Conn): void {
    const n = (conn[kBusy] ?? 1) - 1;
    conn[kBusy] = n;
    if (n > 0) return;
    conn[kLatest] = undefined;
    if (draining) conn.end(); // after the bytes already queued
  }

  /**
   * While draining: a connection is closed once the requests under way on it are answered. Its latest
   * response says so before its headers (`connection: close`; node:http then closes the connection
   * once it is written). Only the latest: with pipelined requests, node:http would close after the
   * first answer that says it, cutting the answers queued behind it (already charged). A response
   * that announces keep-alive anyway (its headers already out, or a stream's own header) has its
   * connection ended by {@link handled}.
   */
  function closeWhenAnswered(conn: Conn): void {
    const res = conn[kLatest];
    if (res && !res.headersSent) res.setHeader("connection", "close");
  }

  /**
   * Waits for the connections with no handler at work that still have bytes queued (an answer that has
   * ended but not yet left the socket, to a slow reader); `undefined` when there are none.
   */
  function queuedBytesSent(): Promise<void> | undefined {
    const waits: Promise<unknown>[] = [];
    for (const socket of sockets) {
      if ((socket as Conn)[kBusy] || socket.writableLength === 0 || socket.destroyed) continue;
      waits.push(
        new Promise<void>((resolve) => {
          const done = () => {
            socket.off("drain", done);
            socket.off("close", done);
            resolve();
          };
          socket.on("drain", done);
          socket.on("close", done);
        }),
      );
    }
    return waits.length === 0 ? undefined : Promise.all(waits).then(() => {});
  }
  // Long streams are bounded by the upstream timeout, not by the request timeout.
  server.on("clientError", (err: NodeJS.ErrnoException, socket) => {
    if (!socket.writable) {
      socket.destroy();
      return;
    }
    // A response already under way on this connection (`_httpMessage`: the one node:http is
    // writing on this socket).
    const current = (socket as { _httpMessage?: ServerResponse })._httpMessage;
    if (current?.req.complete) {
      // Its request was whole and valid, so the error is a later pipelined request's (a stream or a
      // slow answer, then bytes that are not HTTP): a status line written now would land inside that
      // response, or be read as its answer (node:http's own handler does that when its headers are
      // not out yet). It is charged: it is finished, then the connection closed; the bad request
      // gets nothing.
      if (!current.headersSent) current.setHeader("connection", "close");
      const end = () => socket.end();
      if (current.writableFinished) end();
      else {
        current.once("finish", end);
        current.once("close", end);
      }
      return;
    }
    if (current?.headersSent) {
      socket.destroy();
      return;
    }
    // Answered in the OpenAI error envelope, as every other error (SPEC §5): `invalid_request`, the
    // client's request being at fault, with the status that says how (as 413 for a body too large).
    const [status, message] =
      err.code === "ERR_HTTP_REQUEST_TIMEOUT"
        ? [
            "408 Request Timeout",
            `the request was not received in time (headers within ${headersTimeout} ms, the whole request within ${requestTimeout} ms)`,
          ]
        : err.code === "HPE_HEADER_OVERFLOW"
          ? ["431 Request Header Fields Too Large", "the request headers are too large"]
          : ["400 Bad Request", "the request is not valid HTTP/1.1"];
    const body = JSON.stringify(
      errorEnvelope(gatewayError("invalid_request", message, Number(status.slice(0, 3)))),
    );
    socket.end(
      `HTTP/1.1 ${status}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
    );
  });

  return {
    server,
    metrics,
    engine,
    switches,
    keys,
    tiers,
    listen(port, host = "127.0.0.1") {
      return new Promise((resolve, reject) => {
        server.once("error", reject);
        server.listen(port, host, () => {
          server.off("error", reject);
          resolve((server.address() as AddressInfo).port);
        });
      });
    },
    reopenUsageLog() {
      configured.usageLog?.reopen();
    },
    close() {
      closing ??= (async () => {
        draining = true;
        keys.close();
        tiers.close();
        // Stops listening: a new connection is refused. `closed` resolves once every connection has
        // closed. Why net.Server's close and not http.Server's: the latter also closes the idle
        // connections at once, and counts as idle one whose answer has ended but is still queued in
        // the socket (a slow reader): it cut such an answer, already charged, short (measured: 4 MB
        // of 20 MB arrived). The idle ones are closed below, once no answer is queued.
        const closed = new Promise<void>((resolve) =>
          NetServer.prototype.close.call(server, () => resolve()),
        );
        for (const conn of sockets) if ((conn as Conn)[kBusy]) closeWhenAnswered(conn as Conn);
        const graceMs = options.shutdownGraceMs ?? DEFAULT_SHUTDOWN_GRACE_MS;
        let timer: NodeJS.Timeout | undefined;
        const graceOver = new Promise<"grace over">((resolve) => {
          timer = setTimeout(() => resolve("grace over"), graceMs);
        });
        const closeIdle = async () => {
          // node:http's closeIdleConnections would cut those answers: it runs once none is queued.
          for (let queued = queuedBytesSent(); queued; queued = queuedBytesSent()) {
            if ((await Promise.race([queued, graceOver])) === "grace over") return;
          }
          server.closeIdleConnections();
          // node:http counts a connection that has sent nothing yet as busy (its headers timeout runs):
          // nothing is under way on it, close it too (a preconnect, a TCP probe).
          for (const socket of sockets) if (socket.bytesRead === 0) socket.destroy();
        };
        void closeIdle();
        const outcome = await Promise.race([closed.then(() => "drained" as const), graceOver]);
        clearTimeout(timer);
        if (outcome === "grace over") {
          logger.warn(
            { graceMs, chatRequests: inFlight },
            "stopping: the grace period is over, cutting the requests still in flight",
          );
          // Cut as a client disconnect: the upstream call is aborted, what was generated is charged.
          server.closeAllConnections();
          await Promise.race([
            closed,
            new Promise((resolve) => setTimeout(resolve, SETTLE_AFTER_CUT_MS).unref()),
          ]);
        }
        // Cut requests settle (release or charge what was generated) on their way out: wait for them, so
        // the store and the usage log record them, but not forever (a stalled store must not hold a stop).
        if (inFlight > 0) {
          await Promise.race([
            new Promise<void>((resolve) => idle.push(resolve)),
            new Promise((resolve) => setTimeout(resolve, SETTLE_AFTER_CUT_MS).unref()),
          ]);
        }
        // http.Server's own close now: it stops the timer that checks the header and request timeouts.
        server.close();
        await configured.close();
        await Promise.all([...upstreams.values()].map((u) => u.close()));
        await store.close();
      })();
      return closing;
    },
  };
}

function firstHeader(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

async function storeReachable(store: Store): Promise<boolean> {
  try {
    await store.read([], Date.now());
    return true;
  } catch {
    return false;
  }
}
