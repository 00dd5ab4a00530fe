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
import { luaScript, runScript } from "./run-script.js";
import { RedisRunTimeTables } from "./run-time-tables.js";
import { READ_LUA } from "./scripts/read.js";
import { RESERVE_LUA } from "./scripts/reserve.js";
import { RESERVE_ONE_LUA } from "./scripts/reserve-one.js";
import { SETTLE_LUA } from "./scripts/settle.js";
import { TRIP_LUA } from "./scripts/trip.js";

const RESERVE = luaScript("reserve", RESERVE_LUA);
const RESERVE_ONE = luaScript("reserve-one", RESERVE_ONE_LUA);
const SETTLE = luaScript("settle", SETTLE_LUA);
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
/** At most this many reservations share one script call. */
const MAX_BATCH = 128;
/**
 * How many reserve batches may be on the wire at once; the waiting reservations are split evenly
 * over the free slots. Why 2: with one batch in flight, Node and Redis took turns (each ~50 % busy
 * at 64 in flight, measured from /proc): every waiting caller rode in the one batch, so Redis
 * idled while Node parsed the reply and built the next one. Two halves overlap the two sides
 * (~1.7× the throughput); 4 and 8 were no faster and cost more per reservation, since each batch
 * has a fixed cost on both sides (docs/bench-redis.md). Order is kept: batches are written to the
 * one connection in queue order and Redis runs them in that order.
 */
const MAX_BATCHES_IN_FLIGHT = 2;

interface PendingReserve {
  req: ReserveRequest;
  resolve: (r: ReserveResult) => void;
  reject: (e: unknown) => void;
}

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

function toUnavailable(e: unknown): StoreUnavailableError {
  if (e instanceof StoreUnavailableError) return e;
  const msg = e instanceof Error ? e.message : String(e);
  const err = new StoreUnavailableError(`redis store unavailable: ${msg}`);
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
  private readonly queue: PendingReserve[] = [];
  private batchesInFlight = 0;
  private flushScheduled = false;

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
    return new Promise((resolve, reject) => {
      this.queue.push({ req, resolve, reject });
      if (this.batchesInFlight < MAX_BATCHES_IN_FLIGHT && !this.flushScheduled) {
        this.flushScheduled = true;
        queueMicrotask(() => this.sendBatch());
      }
    });
  }

  private sendBatch(): void {
    this.flushScheduled = false;
    const slots = MAX_BATCHES_IN_FLIGHT - this.batchesInFlight;
    if (slots <= 0 || this.queue.length === 0) return;
    const batch = this.queue.splice(0, Math.min(MAX_BATCH, Math.ceil(this.queue.length / slots)));
    this.batchesInFlight++;
    // Why not always `await this.conn()`: when connected, skipping the await saves microtask turns
    // on every batch (it shows at 1 in flight). When connected, the script call below is written to
    // the socket before this returns, so the next batch (sent right after) follows it on the wire.
    const work =
      this.redis.status === "ready"
        ? this.runBatch(this.redis, batch)
        : this.conn().then((redis) => this.runBatch(redis, batch));
    if (this.queue.length > 0) this.sendBatch();
    void work
      .then(
        (results) => {
          for (let i = 0; i < batch.length; i++) batch[i]?.resolve(results[i] as ReserveResult);
        },
        (e: unknown) => {
          for (const b of batch) b.reject(e);
        },
      )
      .finally(() => {
        this.batchesInFlight--;
        if (this.queue.length > 0) this.sendBatch();
      });
  }

  /** One script call for a batch; results in batch order. */
  private async runBatch(redis: Redis, batch: readonly PendingReserve[]): Promise<ReserveResult[]> {
    if (batch.length === 1 && batch[0]) return [await this.reserveOne(redis, batch[0].req)];
    const res = await this.reserveMany(redis, batch);
    const out: ReserveResult[] = [];
    let i = 0;
    for (const b of batch) {
      const n = b.req.scopes.length;
      if (res[i] === 1) {
        out.push({ ok: true, duplicate: res[i + 1] === 1, committed: res.slice(i + 2, i + 2 + n) });
        i += 2 + n;
      } else {
        out.push({ ok: false, scopeIndex: res[i + 1] as number, committed: res[i + 2] as number });
        i += 3;
      }
    }
    return out;
  }

  /** Several reservations in one script call: scripts/reserve.ts (argument layout there). */
  private async reserveMany(redis: Redis, batch: readonly PendingReserve[]): Promise<number[]> {
    // Argument layout: scripts/reserve.ts. Why counters are deduplicated: in a batch, most
    // reservations share their feature and global counters; sending each once (and an index per
    // reservation) halves what is built, sent and parsed.
    let nowMs = 0;
    let maxTtl = 0;
    const cp = `${this.prefix}c:`;
    const counterIndex = new Map<string, number>();
    const keys: string[] = [this.expKey, this.recKey];
    const counterExp: string[] = [];
    const markers: string[] = [];
    const perRes: Array<string | number> = [];
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
          keys.push(cp + sc.key);
          counterExp.push(String(sc.expireAtMs));
          c = keys.length - 2;
          counterIndex.set(sc.key, c);
        }
        perRes.push(c, sc.limit);
      }
    }
    for (const m of markers) keys.push(m);
    const args: Array<string | number> = [
      String(nowMs),
      String(maxTtl + EXP_KEY_MARGIN_MS),
      counterExp.length,
    ];
    for (const e of counterExp) args.push(e);
    for (const x of perRes) args.push(x);
    try {
      return parseReply(await runScript(redis, RESERVE, keys, [JSON.stringify(args)]));
    } catch (e) {
      throw toUnavailable(e);
    }
  }

  /** A lone reservation: scripts/reserve-one.ts (argument layout there). */
  private async reserveOne(redis: Redis, req: ReserveRequest): Promise<ReserveResult> {
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
      args.push(sc.limit, String(sc.expireAtMs));
    }
    let res: number[];
    try {
      res = parseReply(await runScript(redis, RESERVE_ONE, keys, [JSON.stringify(args)]));
    } catch (e) {
      throw toUnavailable(e);
    }
    if (res[0] === 1) return { ok: true, duplicate: res[1] === 1, committed: res.slice(2) };
    return { ok: false, scopeIndex: res[1] as number, committed: res[2] as number };
  }

  async settle(req: SettleRequest): Promise<SettleStatus> {
    assertSettleRequest(req);
    const redis = await this.conn();
    const counters = req.scopes.map((s) => this.key(s.key));
    const spend = req.spend;
    const keys = [this.expKey, this.recKey, `${this.prefix}s:${req.id}`, ...counters];
    // Argument layout: scripts/settle.ts.
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
    for (const s of req.scopes) args.push(String(s.expireAtMs));
    for (const c of spend?.counters ?? []) {
      keys.push(this.key(c.key));
      args.push(String(c.expireAtMs));
    }
    try {
      return (await runScript(redis, SETTLE, keys, [JSON.stringify(args)])) as SettleStatus;
    } catch (e) {
      throw toUnavailable(e);
    }
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
    try {
      h = await redis.hgetall(`${this.prefix}switches`);
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
