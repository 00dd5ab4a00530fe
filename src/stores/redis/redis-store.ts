import { Redis } from "ioredis";
import type { Logger } from "../../core/logger.js";
import {
  assertStoredApiKey,
  assertUserTier,
  decodeStoredApiKey,
  encodeStoredApiKey,
} from "../admin-tables.js";
import type {
  ReserveRequest,
  ReserveResult,
  Revisioned,
  ScopeCharge,
  ScopeState,
  SettleRequest,
  SettleStatus,
  SpendTotals,
  Store,
  StoredApiKey,
} from "../types.js";
import { StoreUnavailableError } from "../types.js";
import { assertReserveRequest, assertSettleRequest } from "../validate.js";
import { Batcher, type Pending } from "./batcher.js";
import { luaScript, runScript, sendScript } from "./run-script.js";
import { RedisRunTimeTables } from "./run-time-tables.js";
import { READ_LUA } from "./scripts/read.js";
import { RESERVE_LUA } from "./scripts/reserve.js";
import { RESERVE_ONE_LUA } from "./scripts/reserve-one.js";
import { SETTLE_LUA } from "./scripts/settle.js";
import { SETTLE_MANY_LUA } from "./scripts/settle-many.js";
import { TRIP_LUA } from "./scripts/trip.js";

const RESERVE = luaScript("reserve", RESERVE_LUA);
const RESERVE_ONE = luaScript("reserve-one", RESERVE_ONE_LUA);
const SETTLE = luaScript("settle", SETTLE_LUA);
const SETTLE_MANY = luaScript("settle-many", SETTLE_MANY_LUA);
const READ = luaScript("read", READ_LUA);
const TRIP = luaScript("trip", TRIP_LUA);

/**
 * How long a settled id is remembered (ms), so that a resent or retried settlement is recognised.
 * Why one hour and not a day: one key per request; at 1 000 requests/s a day of markers would be
 * 86 million keys. The limit of that choice: a settlement whose first attempt timed out yet was
 * applied, and that is retried more than an hour later, would be charged again.
 */
const SETTLED_MEMORY_MS = 3_600_000;
/** The expiry zset outlives the longest reservation written to it by this much (ms). */
const EXP_KEY_MARGIN_MS = 24 * 3_600_000;
/** At most this many reservations (or settlements) share one script call. */
const MAX_BATCH = 128;
/** How many batches of each kind may be on the wire at once (why 2: batcher.ts). */
const MAX_BATCHES_IN_FLIGHT = 2;

type PendingReserve = Pending<ReserveRequest, ReserveResult>;
type PendingSettle = Pending<SettleRequest, SettleStatus>;

/**
 * Switches are kept this long (ms) after their last change or refresh; reads refresh it once an hour
 * (`getSwitches`), so a switch set by hand with no end lasts as long as any process reads it.
 */
const SWITCH_TTL_MS = 400 * 86_400_000;
/** How often reads refresh the switches' TTL (ms). */
const SWITCH_TTL_REFRESH_MS = 3_600_000;
/** A clock skew against the Redis server above this (ms) is logged as a warning. */
const CLOCK_SKEW_WARN_MS = 2_000;
/**
 * A clock skew against the Redis server above this (ms) makes the store refuse every command until
 * the clocks agree again. Why: reservation expiry instants and budget windows come from this
 * process's clock, and a clock ahead by more than a reservation's TTL (upstream timeout + 60 s, so
 * always more than this) would release other processes' live reservations in its sweep: budgets
 * overspent without a trace. A process that far off cannot count exactly; refusing sends its
 * requests through `on_error` (and its alert), which is explicit.
 */
const CLOCK_SKEW_REFUSE_MS = 60_000;
/** How often a connected store compares its clock with the server's again (ms). */
const CLOCK_CHECK_MS = 30_000;

/** Options of {@link createRedisStore}. */
export interface RedisStoreOptions {
  /** `redis://` or `rediss://` URL. */
  url: string;
  /** Prefix of every key (default `tf:v1:`). */
  keyPrefix?: string;
  /** Per-command timeout (ms); a timed-out command is treated as a store failure. */
  commandTimeoutMs?: number;
  /** How often the clock is compared with the server's while connected (ms; default 30 s). For tests. */
  clockCheckMs?: number;
  /** How long to wait for the first connection (ms). */
  connectTimeoutMs?: number;
  logger?: Logger;
}

/**
 * The reserve scripts answer one string of comma-separated integers (why: scripts/reserve.ts).
 * Anything else is a protocol error, not a result.
 */
function parseReply(reply: unknown): number[] {
  if (typeof reply !== "string") throw new Error(`unexpected reply from the reserve script: ${typeof reply}`);
  const parts = reply.split(",");
  const out = new Array<number>(parts.length);
  for (let i = 0; i < parts.length; i++) out[i] = Number(parts[i]);
  return out;
}

/**
 * The results of a batch from the reserve script's reply (scripts/reserve.ts): the m distinct
 * counters' totals before the batch, then one status per reservation. Each reservation's totals are
 * rebuilt by replaying the batch in order, adding the tokens of every reserved one: the same
 * additions of the same doubles, in the same order, as the script made, so the results are exactly
 * the script's. `counters` = each scope's distinct-counter index, in batch order.
 * A reply of the wrong shape is a protocol error, never a guess.
 */
export function batchResults(
  batch: ReadonlyArray<{ req: ReserveRequest }>,
  reply: readonly number[],
  counters: readonly number[],
  m: number,
): ReserveResult[] {
  const bad = () => new Error(`malformed reply from the reserve script (${reply.length} values)`);
  if (reply.length < m + batch.length) throw bad();
  const cur = reply.slice(0, m);
  for (const t of cur) if (!Number.isFinite(t)) throw bad();
  const out: ReserveResult[] = new Array(batch.length);
  let i = m;
  let k = 0;
  for (let b = 0; b < batch.length; b++) {
    const req = (batch[b] as { req: ReserveRequest }).req;
    const n = req.scopes.length;
    const code = reply[i++];
    if (code === 1) {
      const committed = new Array<number>(n);
      for (let j = 0; j < n; j++) {
        const c = counters[k + j] as number;
        const t = (cur[c] as number) + req.tokens;
        cur[c] = t;
        committed[j] = t;
      }
      out[b] = { ok: true, duplicate: false, committed };
    } else if (code === 2) {
      const committed = new Array<number>(n);
      for (let j = 0; j < n; j++) committed[j] = cur[counters[k + j] as number] as number;
      out[b] = { ok: true, duplicate: true, committed };
    } else if (code === 0) {
      const j = reply[i++];
      if (j === undefined || !Number.isInteger(j) || j < 0 || j >= n) throw bad();
      out[b] = { ok: false, scopeIndex: j, committed: cur[counters[k + j] as number] as number };
    } else {
      throw bad();
    }
    k += n;
  }
  if (i !== reply.length) throw bad();
  return out;
}

/** The result of a lone reservation from its script's reply (scripts/reserve-one.ts). */
function loneResult(res: readonly number[], n: number): ReserveResult {
  if (res[0] === 1 && res.length === n + 2 && (res[1] === 0 || res[1] === 1))
    return { ok: true, duplicate: res[1] === 1, committed: res.slice(2) };
  const i = res[1];
  if (res[0] === 0 && res.length === 3 && i !== undefined && Number.isInteger(i) && i >= 0 && i < n)
    return { ok: false, scopeIndex: i, committed: res[2] as number };
  throw new Error(`malformed reply from the reserve script (${res.length} values)`);
}

const SETTLE_CODES = new Map<string, SettleStatus>([
  ["s", "settled"],
  ["e", "expired"],
  ["d", "duplicate"],
]);

/**
 * The statuses of a batch of `n` settlements from its script's reply: the lone script answers the
 * status itself (scripts/settle.ts), the batch script one letter per settlement
 * (scripts/settle-many.ts). Anything else is a protocol error, never a guess.
 */
function settleResults(reply: unknown, n: number): SettleStatus[] {
  if (n === 1 && (reply === "settled" || reply === "expired" || reply === "duplicate")) return [reply];
  const parts = n > 1 && typeof reply === "string" ? reply.split(",") : [];
  const out = parts.map((c) => SETTLE_CODES.get(c));
  if (out.length !== n || out.includes(undefined))
    throw new Error(`malformed reply from the settle script: ${String(reply).slice(0, 80)}`);
  return out as SettleStatus[];
}

/**
 * A key's TTL in ms for PEXPIRE (decimal string), from the instant it should expire at and the
 * caller's now. Why relative: scripts/reserve.ts. At least 1: an instant already past expires the
 * key at once, as PEXPIREAT would have.
 */
function ttlString(expireAtMs: number, nowMs: number): string {
  return String(Math.max(1, expireAtMs - nowMs));
}

/** ioredis's refusal of a command while disconnected (offline queue off): it was never written. */
const NOT_WRITTEN = /^Stream isn't writeable/;
/**
 * Error replies by which Redis refuses a command before it changes anything: a replica (READONLY,
 * e.g. the URL reached a primary that was demoted in a failover), no memory for a first write (OOM;
 * a script that already wrote runs to its end), a failed snapshot (MISCONF), a server still loading
 * or busy with another script (LOADING, BUSY), no primary (MASTERDOWN), too few replicas for
 * `min-replicas-to-write` (NOREPLICAS, a failover's usual companion), an ACL or password that no
 * longer lets this client run the scripts (NOPERM, NOAUTH). Our scripts meet each before running or
 * at their first write, so a refused call applied nothing. Redis 7 answers the code itself; Redis
 * 6.2 wraps one met inside a script as `ERR Error running script (…): … -READONLY …`, hence the `-`.
 * (An ACL that allows some of tokenfuse's keys and not others could refuse a later write after
 * earlier ones: a misconfiguration this cannot tell apart.)
 * Why it matters: a call that may have run is retried only within the hour its marker lasts, then
 * given up (guarded-store.ts); one Redis refused is retried until it is applied, whatever the wait.
 */
const REFUSED_BEFORE_RUNNING =
  /(?:^|-)(?:READONLY|OOM|MISCONF|LOADING|BUSY|MASTERDOWN|NOREPLICAS|NOPERM|NOAUTH)\b/;

/**
 * The settle scripts' refusal of a key under the prefix that is not a counter (another type, or a
 * value that is not an integer): met by reading every key before the first write
 * (scripts/settle.ts), so the call applied nothing, and retrying cannot succeed while the key is
 * there.
 */
const NOT_A_COUNTER = /(?:^|-)(?:WRONGTYPE|TFCORRUPT)\b/;

function isNotACounter(e: unknown): boolean {
  return e instanceof Error && e.name === "ReplyError" && NOT_A_COUNTER.test(e.message);
}

/**
 * How a settlement's failure reaches the caller. A key that is not a counter is final: reported (the
 * gateway and the library wrappers log it), not queued as "store unavailable", where it would be
 * retried in vain and hold back every settlement queued behind it. Anything else is the store's
 * failure (`toUnavailable`): queued and retried by the guarded store.
 */
function settleFailure(e: unknown): Error {
  if (!isNotACounter(e)) return toUnavailable(e);
  const err = new Error(
    `redis store: a key this settlement adds to is not a counter, so nothing was applied and it is not retried: ${(e as Error).message}`,
  );
  (err as { cause?: unknown }).cause = e;
  return err;
}

function toUnavailable(e: unknown, notSent = false): StoreUnavailableError {
  if (e instanceof StoreUnavailableError) return e;
  const msg = e instanceof Error ? e.message : String(e);
  const refused = e instanceof Error && e.name === "ReplyError" && REFUSED_BEFORE_RUNNING.test(msg);
  const err = new StoreUnavailableError(`redis store unavailable: ${msg}`, {
    notSent: notSent || refused || NOT_WRITTEN.test(msg),
  });
  (err as { cause?: unknown }).cause = e;
  return err;
}

/**
 * The shared store: every reservation and settlement is one Lua script over all scopes, so N
 * processes with M concurrent requests never admit more than a budget allows.
 */
export class RedisStore implements Store {
  readonly kind = "redis";
  readonly redis: Redis;
  private readonly prefix: string;
  private readonly expKey: string;
  private readonly recKey: string;
  private connecting: Promise<void> | undefined;
  private readonly logger: Logger | undefined;
  /** Set when the server cannot run tokenfuse's scripts: the reason. */
  private unsupported: string | undefined;
  /** Set while this process's clock is more than CLOCK_SKEW_REFUSE_MS off the server's: the reason. */
  private clockProblem: string | undefined;
  /** Whether the current skew (above CLOCK_SKEW_WARN_MS) was logged already. */
  private skewLogged = false;
  /** Set when the store must not be used (either reason above): every command fails with it. */
  private unusable: string | undefined;
  private clockTimer: NodeJS.Timeout | undefined;
  private readonly clockCheckMs: number;
  /** The last server check (after each connection). */
  private serverChecked: Promise<void> = Promise.resolve();
  /** The server's run_id at the last connection (a new one means it restarted or was replaced). */
  private serverRunId: string | undefined;
  /** When getSwitches last refreshed the switches' TTL (Date.now(); 0: never). */
  private switchesRefreshedAt = 0;
  /** The connection's last error (ECONNREFUSED…), until it is ready again: named in refusals. */
  private lastConnectionError: string | undefined;
  /** This process's clock minus the Redis server's (ms), as of the last check; 0 before. */
  clockSkewMs = 0;
  /** Reservations and settlements waiting for the wire (batcher.ts). */
  private readonly reserves: Batcher<ReserveRequest, ReserveResult>;
  private readonly settles: Batcher<SettleRequest, SettleStatus>;
  /** Batches waiting for the connection, and the promise the next one waits behind (whenReady). */
  private waitingBatches = 0;
  private waitingLine: Promise<void> = Promise.resolve();

  constructor(options: RedisStoreOptions) {
    this.prefix = options.keyPrefix ?? "tf:v1:";
    this.expKey = `${this.prefix}exp`;
    this.recKey = `${this.prefix}rec`;
    this.redis = new Redis(options.url, {
      lazyConnect: true,
      // Why: a command that timed out may still have run; ioredis must not resend it blindly, and
      // commands must fail fast while disconnected instead of queueing (every write is idempotent by
      // request id, and the caller's on_error mode decides what happens meanwhile).
      enableOfflineQueue: false,
      autoResendUnfulfilledCommands: false,
      maxRetriesPerRequest: 0,
      commandTimeout: options.commandTimeoutMs ?? 1000,
      connectTimeout: options.connectTimeoutMs ?? 2000,
      retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 6), 2000),
    });
    this.logger = options.logger;
    this.clockCheckMs = options.clockCheckMs ?? CLOCK_CHECK_MS;
    this.reserves = new Batcher({
      maxBatch: MAX_BATCH,
      maxInFlight: MAX_BATCHES_IN_FLIGHT,
      send: (batch, done) =>
        this.whenReady(batch, done, (redis) => this.dispatchReserves(redis, batch, done)),
    });
    this.settles = new Batcher({
      maxBatch: MAX_BATCH,
      maxInFlight: MAX_BATCHES_IN_FLIGHT,
      // Every sum the batch script makes stays exact on Lua doubles (scripts/settle-many.ts).
      weigh: (q) =>
        q.reservedTokens +
        q.actualTokens +
        (q.spend ? q.spend.costNanoUsd + q.spend.inputTokens + q.spend.outputTokens : 0),
      send: (batch, done) => this.whenReady(batch, done, (redis) => this.dispatchSettles(redis, batch, done)),
    });
    this.redis.on("error", (e: Error) => {
      this.lastConnectionError = e.message;
      options.logger?.warn({ err: e.message }, "redis connection error");
    });
    // Every (re)connection checks the server again: it may have been replaced by another one.
    this.redis.on("ready", () => {
      this.lastConnectionError = undefined;
      this.serverChecked = this.checkServer();
      if (this.clockTimer === undefined) {
        this.clockTimer = setInterval(() => this.recheckClock(), this.clockCheckMs);
        this.clockTimer.unref();
      }
    });
  }

  /**
   * Checks the server this connection reached: its version (the scripts need Redis >= 6.2, for
   * ZMSCORE; an older server ran lone reservations and readiness fine but failed every batch), and
   * its clock against ours (expiry instants are computed here and applied by Redis: a large skew is
   * logged, a very large one refused: `checkClock`). An unsupported server makes every command
   * fail with a clear error, readiness included.
   */
  private async checkServer(): Promise<void> {
    try {
      const sentAt = Date.now();
      // The ZMSCORE probe reads one member of the expiry zset: harmless, and it also catches a
      // server where the command was renamed or disabled, whatever its version says.
      const [info, time, probe] = await Promise.all([
        this.redis.info("server"),
        this.redis.time(),
        this.redis.zmscore(this.expKey, "-").then(
          () => undefined,
          // Only the server's own refusal says something about the server; a dropped connection
          // fails the whole check (caught below) and changes nothing.
          (e: unknown) => {
            if (e instanceof Error && e.name === "ReplyError") return e.message;
            throw e;
          },
        ),
      ]);
      const runId = /run_id:(\w+)/.exec(info)?.[1];
      if (runId !== undefined) {
        if (this.serverRunId !== undefined && runId !== this.serverRunId) {
          // Never silent: a server that restarted without persistence (or was replaced) lost every
          // counter and reservation it held, which resets budgets mid-window.
          this.logger?.error(
            { previousRunId: this.serverRunId, runId },
            "the Redis server was restarted or replaced since the last connection: budget counters it did not persist are lost (enable persistence or replication to keep them)",
          );
        }
        this.serverRunId = runId;
      }
      const version = /redis_version:(\d+)\.(\d+)/.exec(info);
      const major = Number(version?.[1] ?? 0);
      const minor = Number(version?.[2] ?? 0);
      if (version && (major < 6 || (major === 6 && minor < 2)))
        this.unsupported = `Redis ${major}.${minor} is too old: tokenfuse needs Redis 6.2 or later (ZMSCORE)`;
      else if (probe !== undefined)
        this.unsupported = `the Redis server refuses ZMSCORE, which tokenfuse needs (renamed or disabled?): ${probe}`;
      else this.unsupported = undefined;
      if (this.unsupported) this.logger?.error({}, this.unsupported);
      this.unusable = this.unsupported ?? this.clockProblem;
      this.skewLogged = false; // said again at each connection
      this.checkClock(time, (sentAt + Date.now()) / 2);
    } catch (e) {
      // Not fatal: the connection's own errors surface on the next command.
      this.logger?.warn({ err: e instanceof Error ? e.message : String(e) }, "redis server check failed");
    }
  }

  /**
   * Compares this process's clock (`localMs`, taken halfway through the TIME round trip) with the
   * server's TIME reply: a skew above CLOCK_SKEW_WARN_MS is logged once (until it is gone), one above
   * CLOCK_SKEW_REFUSE_MS makes the store unusable until a later check finds the clocks in step.
   */
  private checkClock(time: ReadonlyArray<string | number>, localMs: number): void {
    const serverMs = Number(time[0]) * 1000 + Math.floor(Number(time[1]) / 1000);
    if (!Number.isFinite(serverMs)) return;
    const skewMs = Math.round(localMs - serverMs);
    this.clockSkewMs = skewMs;
    const off = Math.abs(skewMs);
    const was = this.clockProblem;
    if (off > CLOCK_SKEW_REFUSE_MS) {
      this.clockProblem = `this process's clock is ${Math.round(off / 1000)} s ${skewMs > 0 ? "ahead of" : "behind"} the Redis server's (more than ${CLOCK_SKEW_REFUSE_MS / 1000} s): budget windows and reservation expiry would be wrong, so the store refuses every command until the clocks agree (run NTP)`;
      if (was === undefined || !this.skewLogged) this.logger?.error({ skewMs }, this.clockProblem);
      this.skewLogged = true;
    } else {
      this.clockProblem = undefined;
      if (was !== undefined)
        this.logger?.info(
          { skewMs },
          "this process's clock agrees with the Redis server's again: the store is usable",
        );
      if (off > CLOCK_SKEW_WARN_MS) {
        if (!this.skewLogged)
          this.logger?.warn(
            { skewMs },
            "this process's clock differs from the Redis server's: budget windows and reservation expiry assume synchronised clocks (run NTP)",
          );
        this.skewLogged = true;
      } else {
        this.skewLogged = false;
      }
    }
    this.unusable = this.unsupported ?? this.clockProblem;
  }

  /** The periodic clock check while connected (a clock can jump after the connection's check). */
  private recheckClock(): void {
    if (this.redis.status !== "ready") return;
    const sentAt = Date.now();
    this.redis.time().then(
      (time) => this.checkClock(time, (sentAt + Date.now()) / 2),
      () => {}, // a failed check changes nothing; the connection's own errors surface on commands
    );
  }

  /** True when connected and ready for commands. */
  get ready(): boolean {
    return this.redis.status === "ready";
  }

  private async conn(): Promise<Redis> {
    const st = this.redis.status;
    if (st === "ready" && this.unusable === undefined) return this.redis;
    if (st === "ready")
      throw new StoreUnavailableError(`redis store unusable: ${this.unusable}`, { notSent: true });
    if (st === "wait" || this.connecting) {
      // The first connection: callers wait for it (bounded by connectTimeout). Later outages fail fast.
      this.connecting ??= this.redis.connect().finally(() => {
        this.connecting = undefined;
      });
      try {
        await this.connecting;
        await this.serverChecked;
      } catch (e) {
        // ioredis rejects with "Connection is closed."; the cause (ECONNREFUSED, a DNS failure, a
        // refused password) came through its error event: said too, so a CLI user sees it.
        const err = toUnavailable(e, true);
        const cause = this.lastConnectionError;
        if (cause !== undefined && !err.message.includes(cause)) err.message += ` (${cause})`;
        throw err;
      }
      if (this.unusable !== undefined)
        throw new StoreUnavailableError(`redis store unusable: ${this.unusable}`, { notSent: true });
      return this.redis;
    }
    const cause = this.lastConnectionError === undefined ? "" : ` (${this.lastConnectionError})`;
    throw new StoreUnavailableError(`redis store unavailable: connection is ${st}${cause}`, {
      notSent: true,
    });
  }

  private key(scopeKey: string): string {
    return `${this.prefix}c:${scopeKey}`;
  }

  /**
   * The reservation record, stored beside its id (see scripts/sweep.ts): the tokens it holds and
   * its scope keys. Why scope keys and not full counter keys: shorter to hash, compare and keep.
   */
  private record(tokens: number, scopes: readonly ScopeCharge[]): string {
    let m = String(tokens);
    for (const sc of scopes) m += `\n${sc.key}`;
    return m;
  }

  /**
   * Reserve: queued and sent with the other reservations waiting for the wire, as one script call.
   * Why batch: at high concurrency the cost per request is dominated by the per-command overhead on
   * both sides of the connection, not by the counter arithmetic; one batched script keeps the
   * atomicity of every reservation and shares the round trip. A lone request is sent at once.
   */
  reserve(req: ReserveRequest): Promise<ReserveResult> {
    try {
      assertReserveRequest(req);
    } catch (e) {
      return Promise.reject(e);
    }
    return this.reserves.add(req);
  }

  /**
   * Hands a batch to `dispatch` with the connection: at once when connected and nothing waits for
   * the connection; else in line behind every batch already waiting, so that no later batch takes
   * the fast path before this one is written. Why: the reservations must be applied in the order
   * they were made (a later one admitted and an earlier one refused for the same budget was seen on
   * the first connection). Why not always `await this.conn()`: when connected, skipping the await
   * saves microtask turns on every batch (it shows at 1 in flight); the script call is written to
   * the socket before this returns, so the next batch (sent right after) follows it on the wire.
   */
  private whenReady<Q, R>(
    batch: Array<Pending<Q, R>>,
    done: (batch: Array<Pending<Q, R>>, e?: unknown) => void,
    dispatch: (redis: Redis) => void,
  ): void {
    if (this.redis.status === "ready" && this.unusable === undefined && this.waitingBatches === 0) {
      dispatch(this.redis);
      return;
    }
    this.waitingBatches++;
    // Each link settles its own batch and never rejects, so a failure of one batch can never
    // reach the next one's handlers.
    this.waitingLine = this.waitingLine
      .then(() => this.conn())
      .then(dispatch, (e: unknown) => done(batch, toUnavailable(e)))
      .catch((e: unknown) => this.logger?.error({ err: String(e) }, "redis store: a waiting batch failed"))
      .finally(() => {
        this.waitingBatches--;
      });
  }

  /**
   * Sends one script call for a batch of reservations and settles every caller's promise from its
   * reply, in batch order. Callbacks, not async functions (batcher.ts).
   */
  private dispatchReserves(
    redis: Redis,
    batch: PendingReserve[],
    done: (batch: PendingReserve[], e?: unknown) => void,
  ): void {
    const failed = (e: unknown) => done(batch, toUnavailable(e));
    const only = batch.length === 1 ? batch[0] : undefined;
    try {
      if (only) {
        const { keys, args } = this.reserveOneCall(only.req);
        sendScript(
          redis,
          RESERVE_ONE,
          keys,
          args,
          (reply) => {
            let r: ReserveResult;
            try {
              r = loneResult(parseReply(reply), only.req.scopes.length);
            } catch (e) {
              return failed(e);
            }
            done(batch);
            only.resolve(r);
          },
          failed,
        );
        return;
      }
      const { keys, args, counters, m } = this.reserveManyCall(batch);
      sendScript(
        redis,
        RESERVE,
        keys,
        args,
        (reply) => {
          let rs: ReserveResult[];
          try {
            rs = batchResults(batch, parseReply(reply), counters, m);
          } catch (e) {
            return failed(e);
          }
          done(batch);
          for (let i = 0; i < batch.length; i++) batch[i]?.resolve(rs[i] as ReserveResult);
        },
        failed,
      );
    } catch (e) {
      failed(e);
    }
  }

  /**
   * The script call for several reservations: scripts/reserve.ts (argument layout there), plus the
   * distinct-counter index (0-based) of every scope of every reservation in batch order and the
   * number of distinct counters, to read the reply with (`batchResults`).
   */
  private reserveManyCall(batch: readonly PendingReserve[]): {
    keys: string[];
    args: string[];
    counters: number[];
    m: number;
  } {
    // Why counters are deduplicated: in a batch, most reservations share their feature and global
    // counters; sending each once (and an index per reservation) halves what is built, sent and parsed.
    let nowMs = 0;
    let maxTtl = 0;
    const cp = `${this.prefix}c:`;
    const counterIndex = new Map<string, number>();
    const keys: string[] = [this.expKey, this.recKey];
    const counterExp: string[] = [];
    const markers: string[] = [];
    const perRes: Array<string | number> = [];
    const counters: number[] = [];
    for (const { req } of batch) {
      if (req.nowMs > nowMs) nowMs = req.nowMs;
      if (req.ttlMs > maxTtl) maxTtl = req.ttlMs;
      markers.push(`${this.prefix}s:${req.id}`);
      perRes.push(
        req.id,
        this.record(req.tokens, req.scopes),
        req.tokens,
        String(req.nowMs + req.ttlMs),
        req.scopes.length,
      );
      for (const sc of req.scopes) {
        let c = counterIndex.get(sc.key);
        if (c === undefined) {
          c = counterExp.length;
          keys.push(cp + sc.key);
          counterExp.push(ttlString(sc.expireAtMs, req.nowMs));
          counterIndex.set(sc.key, c);
        }
        counters.push(c);
        // 1-based in the script's arguments (Lua tables).
        perRes.push(c + 1, sc.limit);
      }
    }
    for (const k of markers) keys.push(k);
    const m = counterExp.length;
    const args: Array<string | number> = [String(nowMs), String(maxTtl + EXP_KEY_MARGIN_MS), m];
    for (const e of counterExp) args.push(e);
    for (const x of perRes) args.push(x);
    return { keys, args: [JSON.stringify(args)], counters, m };
  }

  /** The script call for a lone reservation: scripts/reserve-one.ts (argument layout there). */
  private reserveOneCall(req: ReserveRequest): { keys: string[]; args: string[] } {
    const keys: string[] = [this.expKey, this.recKey, `${this.prefix}s:${req.id}`];
    const args: Array<string | number> = [
      String(req.nowMs),
      String(req.ttlMs + EXP_KEY_MARGIN_MS),
      req.id,
      this.record(req.tokens, req.scopes),
      String(req.tokens),
      String(req.nowMs + req.ttlMs),
    ];
    for (const sc of req.scopes) {
      keys.push(`${this.prefix}c:${sc.key}`);
      args.push(sc.limit, ttlString(sc.expireAtMs, req.nowMs));
    }
    return { keys, args: [JSON.stringify(args)] };
  }

  /**
   * Settle: queued and sent with the other settlements waiting for the wire, as one script call
   * (scripts/settle-many.ts; a lone settlement uses scripts/settle.ts). Why: a settlement's script
   * call cost Redis about twice a batched reservation's, so at 64 in flight settlements, not
   * reservations, bounded a full admission's throughput (docs/BENCHMARKS.md). Like a reservation,
   * a settlement's promise is settled only from the reply of the call that applied it.
   */
  settle(req: SettleRequest): Promise<SettleStatus> {
    try {
      assertSettleRequest(req);
    } catch (e) {
      return Promise.reject(e);
    }
    return this.settles.add(req);
  }

  private dispatchSettles(
    redis: Redis,
    batch: PendingSettle[],
    done: (batch: PendingSettle[], e?: unknown) => void,
  ): void {
    const only = batch.length === 1 ? batch[0] : undefined;
    const failed = (e: unknown) => {
      if (only || !isNotACounter(e)) return done(batch, settleFailure(e));
      // The batch script reads every key it would write before writing any (scripts/settle-many.ts):
      // a key that is not a counter failed it with nothing written. Each settlement is sent alone,
      // so only the one that names that key fails.
      this.logger?.warn(
        { err: (e as Error).message, settlements: batch.length },
        "redis store: a batch of settlements names a key that is not a counter; sending each alone",
      );
      // Written before the slot is freed (done), so they go out ahead of the next batch.
      for (const p of batch) this.settleAlone(redis, p);
      done(batch);
    };
    try {
      const { keys, args } = only ? this.settleOneCall(only.req) : this.settleManyCall(batch);
      sendScript(
        redis,
        only ? SETTLE : SETTLE_MANY,
        keys,
        args,
        (reply) => {
          let rs: SettleStatus[];
          try {
            rs = settleResults(reply, batch.length);
          } catch (e) {
            return done(batch, toUnavailable(e));
          }
          done(batch);
          for (let i = 0; i < batch.length; i++) batch[i]?.resolve(rs[i] as SettleStatus);
        },
        failed,
      );
    } catch (e) {
      done(batch, toUnavailable(e));
    }
  }

  /** One settlement by the lone script, outside the batches (after its batch's script failed). */
  private settleAlone(redis: Redis, p: PendingSettle): void {
    try {
      const { keys, args } = this.settleOneCall(p.req);
      sendScript(
        redis,
        SETTLE,
        keys,
        args,
        (reply) => {
          try {
            p.resolve(settleResults(reply, 1)[0] as SettleStatus);
          } catch (e) {
            p.reject(toUnavailable(e));
          }
        },
        (e) => p.reject(settleFailure(e)),
      );
    } catch (e) {
      p.reject(toUnavailable(e));
    }
  }

  /** The script call for a lone settlement: scripts/settle.ts (argument layout there). */
  private settleOneCall(req: SettleRequest): { keys: string[]; args: string[] } {
    const counters = req.scopes.map((s) => this.key(s.key));
    const spend = req.spend;
    const keys = [this.expKey, this.recKey, `${this.prefix}s:${req.id}`, ...counters];
    const args: Array<string | number> = [
      req.id,
      this.record(req.reservedTokens, req.scopes),
      String(req.reservedTokens),
      String(req.actualTokens),
      req.abandon ? "0" : String(SETTLED_MEMORY_MS),
      String(spend?.costNanoUsd ?? 0),
      String(spend?.inputTokens ?? 0),
      String(spend?.outputTokens ?? 0),
      counters.length,
    ];
    for (const s of req.scopes) args.push(ttlString(s.expireAtMs, req.nowMs));
    for (const c of spend?.counters ?? []) {
      keys.push(this.key(c.key));
      args.push(ttlString(c.expireAtMs, req.nowMs));
    }
    return { keys, args: [JSON.stringify(args)] };
  }

  /**
   * The script call for several settlements: scripts/settle-many.ts (argument layout there). Each
   * distinct counter is sent once, with the longest TTL any settlement of the batch gives it (the
   * same window seen from instants a few ms apart; a TTL is never cut short).
   */
  private settleManyCall(batch: readonly PendingSettle[]): { keys: string[]; args: string[] } {
    const counterIndex = new Map<string, number>();
    const counterKeys: string[] = [];
    const counterTtl: number[] = [];
    const spendIndex = new Map<string, number>();
    const spendKeys: string[] = [];
    const spendTtl: number[] = [];
    const index = (
      map: Map<string, number>,
      keys: string[],
      ttls: number[],
      key: string,
      ttl: number,
    ): number => {
      let i = map.get(key);
      if (i === undefined) {
        i = keys.length;
        map.set(key, i);
        keys.push(this.key(key));
        ttls.push(ttl);
      } else if (ttl > (ttls[i] as number)) ttls[i] = ttl;
      return i + 1; // 1-based in the script's arguments (Lua tables)
    };
    const per: Array<string | number> = [];
    const markers: string[] = [];
    for (const { req } of batch) {
      const spend = req.spend;
      markers.push(`${this.prefix}s:${req.id}`);
      per.push(
        req.id,
        this.record(req.reservedTokens, req.scopes),
        req.reservedTokens,
        req.actualTokens,
        req.abandon ? "0" : String(SETTLED_MEMORY_MS),
        spend?.costNanoUsd ?? 0,
        spend?.inputTokens ?? 0,
        spend?.outputTokens ?? 0,
        req.scopes.length,
      );
      for (const s of req.scopes)
        per.push(index(counterIndex, counterKeys, counterTtl, s.key, Math.max(1, s.expireAtMs - req.nowMs)));
      const spendCounters = spend?.counters ?? [];
      per.push(spendCounters.length);
      for (const c of spendCounters)
        per.push(index(spendIndex, spendKeys, spendTtl, c.key, Math.max(1, c.expireAtMs - req.nowMs)));
    }
    const keys = [this.expKey, this.recKey, ...counterKeys, ...spendKeys, ...markers];
    const args: Array<string | number> = [counterKeys.length, spendKeys.length];
    for (const t of counterTtl) args.push(String(t));
    for (const t of spendTtl) args.push(String(t));
    for (const x of per) args.push(x);
    return { keys, args: [JSON.stringify(args)] };
  }

  async read(keys: readonly string[], nowMs: number): Promise<ScopeState[]> {
    const redis = await this.conn();
    let res: number[];
    try {
      res = (await runScript(
        redis,
        READ,
        [this.expKey, this.recKey, ...keys.map((k) => this.key(k))],
        [String(nowMs)],
      )) as number[];
    } catch (e) {
      throw toUnavailable(e);
    }
    const out: ScopeState[] = [];
    for (let i = 0; i + 1 < res.length; i += 2) {
      const used = res[i] as number;
      out.push({ used, reserved: (res[i + 1] as number) - used });
    }
    return out;
  }

  async claimOnce(key: string, expireAtMs: number, nowMs: number, owner?: string): Promise<boolean> {
    const redis = await this.conn();
    const k = `${this.prefix}claim:${key}`;
    try {
      // SET NX with the expiry in the same command: the first process wins, the key cannot outlive it.
      // The value is the owner, never changed once set: reading it back after a refused SET tells
      // an owner whose earlier attempt did set it (its reply lost) that the claim is its own.
      const ttl = Math.max(1, expireAtMs - nowMs);
      if ((await redis.set(k, owner ?? "", "PX", ttl, "NX")) === "OK") return true;
      return owner !== undefined && owner !== "" && (await redis.get(k)) === owner;
    } catch (e) {
      throw toUnavailable(e);
    }
  }

  async readSpend(keys: readonly string[]): Promise<SpendTotals[]> {
    if (keys.length === 0) return [];
    const redis = await this.conn();
    try {
      const m = redis.multi();
      for (const k of keys) m.hmget(this.key(k), "c", "i", "o", "r");
      const res = (await m.exec()) ?? [];
      return res.map(([err, v]) => {
        if (err) throw err;
        const [c, i, o, r] = (v as Array<string | null>).map((x) => Number(x ?? 0));
        return { costNanoUsd: c ?? 0, inputTokens: i ?? 0, outputTokens: o ?? 0, requests: r ?? 0 };
      });
    } catch (e) {
      throw toUnavailable(e);
    }
  }

  async getSwitches(nowMs = Date.now()): Promise<Record<string, boolean>> {
    const redis = await this.conn();
    let h: Record<string, string>;
    const key = `${this.prefix}switches`;
    try {
      if (Date.now() - this.switchesRefreshedAt >= SWITCH_TTL_REFRESH_MS) {
        // Once an hour: push the TTL back out, so a switch in force is never lost to it (PEXPIRE
        // on a missing key creates nothing).
        const res = await redis.multi().hgetall(key).pexpire(key, SWITCH_TTL_MS).exec();
        const [err, v] = res?.[0] ?? [new Error("transaction aborted"), undefined];
        if (err) throw err;
        h = v as Record<string, string>;
        this.switchesRefreshedAt = Date.now();
      } else {
        h = await redis.hgetall(key);
      }
    } catch (e) {
      throw toUnavailable(e);
    }
    // Values are "1", "0", or "<0|1>@<untilMs>" for a switch that lapses by itself.
    const out: Record<string, boolean> = {};
    for (const [k, v] of Object.entries(h)) {
      const [state, until] = v.split("@");
      if (until !== undefined && Number(until) <= nowMs) continue;
      out[k] = state === "1";
    }
    return out;
  }

  async setSwitch(
    feature: string,
    enabled: boolean | undefined,
    untilMs?: number,
    opts?: { keepLongerOff?: boolean },
  ): Promise<void> {
    const redis = await this.conn();
    const key = `${this.prefix}switches`;
    if (opts?.keepLongerOff && enabled === false && untilMs !== undefined) {
      try {
        await runScript(redis, TRIP, [key], [feature, String(untilMs), String(SWITCH_TTL_MS)]);
      } catch (e) {
        throw toUnavailable(e);
      }
      return;
    }
    try {
      const m = redis.multi();
      if (enabled === undefined) m.hdel(key, feature);
      else m.hset(key, feature, `${enabled ? "1" : "0"}${untilMs !== undefined ? `@${untilMs}` : ""}`);
      m.pexpire(key, SWITCH_TTL_MS);
      await m.exec();
    } catch (e) {
      throw toUnavailable(e);
    }
  }

  // Run-time tables (user tier overrides, API keys): layout and TTL in run-time-tables.ts.
  private runTimeTables: RedisRunTimeTables | undefined;
  private get tables(): RedisRunTimeTables {
    this.runTimeTables ??= new RedisRunTimeTables(this.prefix);
    return this.runTimeTables;
  }

  async readUserTiers(knownRevision?: string): Promise<Revisioned<Record<string, string>>> {
    const redis = await this.conn();
    try {
      return await this.tables.read(redis, this.tables.userTiersKey, knownRevision);
    } catch (e) {
      throw toUnavailable(e);
    }
  }

  async setUserTier(user: string, tier: string | undefined): Promise<void> {
    assertUserTier(user, tier);
    const redis = await this.conn();
    try {
      await this.tables.write(redis, this.tables.userTiersKey, user, tier);
    } catch (e) {
      throw toUnavailable(e);
    }
  }

  async readApiKeys(knownRevision?: string): Promise<Revisioned<StoredApiKey[]>> {
    const redis = await this.conn();
    let t: Revisioned<Record<string, string>>;
    try {
      t = await this.tables.read(redis, this.tables.apiKeysKey, knownRevision);
    } catch (e) {
      throw toUnavailable(e);
    }
    if (!t.entries) return { revision: t.revision };
    const entries: StoredApiKey[] = [];
    const unreadable: string[] = [];
    for (const [hash, v] of Object.entries(t.entries)) {
      const k = decodeStoredApiKey(hash, v);
      if (k) entries.push(k);
      else unreadable.push(hash);
    }
    return { revision: t.revision, entries, ...(unreadable.length > 0 ? { unreadable } : {}) };
  }

  async addApiKey(key: StoredApiKey): Promise<boolean> {
    assertStoredApiKey(key);
    const redis = await this.conn();
    try {
      return await this.tables.add(redis, this.tables.apiKeysKey, key.hash, encodeStoredApiKey(key));
    } catch (e) {
      throw toUnavailable(e);
    }
  }

  async deleteApiKey(hash: string): Promise<boolean> {
    const redis = await this.conn();
    try {
      return (await this.tables.write(redis, this.tables.apiKeysKey, hash, undefined)) > 0;
    } catch (e) {
      throw toUnavailable(e);
    }
  }

  /** PING, for readiness checks. */
  async ping(): Promise<boolean> {
    try {
      const redis = await this.conn();
      return (await redis.ping()) === "PONG";
    } catch {
      return false;
    }
  }

  async close(): Promise<void> {
    if (this.clockTimer) clearInterval(this.clockTimer);
    if (this.redis.status === "end") return;
    try {
      await this.redis.quit();
    } catch {
      this.redis.disconnect();
    }
  }
}

/** Creates the Redis store (SPEC §4 `store: redis://…`). */
export function createRedisStore(options: RedisStoreOptions): RedisStore {
  return new RedisStore(options);
}
