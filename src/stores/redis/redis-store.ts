import { Redis } from "ioredis";
import type { Logger } from "../../core/logger.js";
import type {
  ReserveRequest,
  ReserveResult,
  ScopeState,
  SettleRequest,
  SettleStatus,
  Store,
} from "../types.js";
import { assertReserveRequest, assertSettleRequest } from "../validate.js";
import { luaScript, runScript } from "./run-script.js";
import { READ_LUA } from "./scripts/read.js";
import { RESERVE_LUA } from "./scripts/reserve.js";
import { SETTLE_LUA } from "./scripts/settle.js";

const RESERVE = luaScript("reserve", RESERVE_LUA);
const SETTLE = luaScript("settle", SETTLE_LUA);
const READ = luaScript("read", READ_LUA);

/** How long a settled id is remembered (ms), so a resent settlement is recognised. */
const SETTLED_MEMORY_MS = 24 * 3_600_000;
/** A reservation record outlives its expiry by this much (ms), so a sweep always finds it. */
const RECORD_MARGIN_MS = 24 * 3_600_000;
/** Switches are kept this long after their last change (ms). */
const SWITCH_TTL_MS = 400 * 86_400_000;

/** Options of {@link createRedisStore}. */
export interface RedisStoreOptions {
  /** `redis://` or `rediss://` URL. */
  url: string;
  /** Prefix of every key (default `tf:v1:`). */
  keyPrefix?: string;
  /** Per-command timeout (ms); a timed-out command is treated as a store failure. */
  commandTimeoutMs?: number;
  /** How long to wait for the first connection (ms). */
  connectTimeoutMs?: number;
  logger?: Logger;
}

/** Thrown when the store cannot be reached or did not answer in time. */
export class StoreUnavailableError extends Error {
  override readonly name = "StoreUnavailableError";
}

function toUnavailable(e: unknown): StoreUnavailableError {
  if (e instanceof StoreUnavailableError) return e;
  const msg = e instanceof Error ? e.message : String(e);
  const err = new StoreUnavailableError(`redis store unavailable: ${msg}`);
  (err as { cause?: unknown }).cause = e;
  return err;
}

function pairs(flat: unknown[], from: number): ScopeState[] {
  const out: ScopeState[] = [];
  for (let i = from; i + 1 < flat.length; i += 2) out.push({ used: Number(flat[i]), reserved: Number(flat[i + 1]) });
  return out;
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
  private readonly recordPrefix: string;
  private connecting: Promise<void> | undefined;

  constructor(private readonly options: RedisStoreOptions) {
    this.prefix = options.keyPrefix ?? "tf:v1:";
    this.expKey = `${this.prefix}exp`;
    this.recordPrefix = `${this.prefix}r:`;
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
    this.redis.on("error", (e: Error) => {
      options.logger?.warn({ err: e.message }, "redis connection error");
    });
  }

  /** True when connected and ready for commands. */
  get ready(): boolean {
    return this.redis.status === "ready";
  }

  private async conn(): Promise<Redis> {
    const st = this.redis.status;
    if (st === "ready") return this.redis;
    if (st === "wait" || this.connecting) {
      // The first connection: callers wait for it (bounded by connectTimeout). Later outages fail fast.
      this.connecting ??= this.redis.connect().finally(() => {
        this.connecting = undefined;
      });
      try {
        await this.connecting;
      } catch (e) {
        throw toUnavailable(e);
      }
      return this.redis;
    }
    throw new StoreUnavailableError(`redis store unavailable: connection is ${st}`);
  }

  private key(scopeKey: string): string {
    return `${this.prefix}c:${scopeKey}`;
  }

  async reserve(req: ReserveRequest): Promise<ReserveResult> {
    assertReserveRequest(req);
    const redis = await this.conn();
    const expiresAt = req.nowMs + req.ttlMs;
    const keys = [this.expKey, `${this.recordPrefix}${req.id}`, `${this.prefix}s:${req.id}`];
    const args: Array<string | number> = [this.recordPrefix, req.tokens, req.nowMs, expiresAt, expiresAt + RECORD_MARGIN_MS];
    for (const s of req.scopes) {
      keys.push(this.key(s.key));
      args.push(s.limit, s.expireAtMs);
    }
    let res: unknown[];
    try {
      res = (await runScript(redis, RESERVE, keys, args)) as unknown[];
    } catch (e) {
      throw toUnavailable(e);
    }
    if (Number(res[0]) === 1) return { ok: true, duplicate: Number(res[1]) === 1, states: pairs(res, 2) };
    return { ok: false, scopeIndex: Number(res[1]), state: { used: Number(res[2]), reserved: Number(res[3]) } };
  }

  async settle(req: SettleRequest): Promise<SettleStatus> {
    assertSettleRequest(req);
    const redis = await this.conn();
    const keys = [this.expKey, `${this.recordPrefix}${req.id}`, `${this.prefix}s:${req.id}`];
    const args: Array<string | number> = [req.id, req.actualTokens, SETTLED_MEMORY_MS];
    for (const s of req.scopes) {
      keys.push(this.key(s.key));
      args.push(s.expireAtMs);
    }
    try {
      return (await runScript(redis, SETTLE, keys, args)) as SettleStatus;
    } catch (e) {
      throw toUnavailable(e);
    }
  }

  async read(keys: readonly string[], nowMs: number): Promise<ScopeState[]> {
    const redis = await this.conn();
    try {
      const res = (await runScript(
        redis,
        READ,
        [this.expKey, ...keys.map((k) => this.key(k))],
        [this.recordPrefix, nowMs],
      )) as unknown[];
      return pairs(res, 0);
    } catch (e) {
      throw toUnavailable(e);
    }
  }

  async getSwitches(): Promise<Record<string, boolean>> {
    const redis = await this.conn();
    try {
      const h = await redis.hgetall(`${this.prefix}switches`);
      return Object.fromEntries(Object.entries(h).map(([k, v]) => [k, v === "1"]));
    } catch (e) {
      throw toUnavailable(e);
    }
  }

  async setSwitch(feature: string, enabled: boolean | undefined): Promise<void> {
    const redis = await this.conn();
    const key = `${this.prefix}switches`;
    try {
      const m = redis.multi();
      if (enabled === undefined) m.hdel(key, feature);
      else m.hset(key, feature, enabled ? "1" : "0");
      m.pexpire(key, SWITCH_TTL_MS);
      await m.exec();
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
