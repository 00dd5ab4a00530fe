import { randomBytes } from "node:crypto";
import type { Redis } from "ioredis";
import { REVISION_FIELD } from "../admin-tables.js";
import type { Revisioned } from "../types.js";

/**
 * The run-time tables of the Redis store (user tier overrides, API keys created at run time): one
 * hash each under the store's prefix, field → value, plus the field `#rev` that changes with every
 * write (in the same MULTI as the write, so a reader never sees new data under an old revision).
 *
 * TTL: 400 days (like the feature switches), set again by every write — no Redis key without a TTL.
 * Why a reader renews it too (at most once an hour per process): a key created once and never
 * changed must not stop working 400 days later while gateways still use it. A table no process has
 * read or written for 400 days is gone.
 */
export const RUN_TIME_TABLE_TTL_MS = 400 * 86_400_000;
/** A reading process renews a table's TTL at most this often (ms). */
const TOUCH_EVERY_MS = 3_600_000;

/** A fresh revision token: random, so a table that expired and was written again never repeats one. */
function newRevision(): string {
  return randomBytes(9).toString("base64url");
}

function check<T>(results: Array<[Error | null, unknown]> | null): T[] {
  if (!results) throw new Error("transaction aborted");
  return results.map(([err, v]) => {
    if (err) throw err;
    return v as T;
  });
}

/** Reads and writes the run-time table hashes (errors are the caller's to map to store errors). */
export class RedisRunTimeTables {
  private readonly touchedAtMs = new Map<string, number>();

  constructor(prefix: string) {
    this.userTiersKey = `${prefix}user-tiers`;
    this.apiKeysKey = `${prefix}api-keys`;
  }

  /** Hash of user → tier name. */
  readonly userTiersKey: string;
  /** Hash of key hash → JSON entry (admin-tables.ts). */
  readonly apiKeysKey: string;

  /** The table's fields (without `#rev`), unless its revision is `knownRevision`. One round trip when unchanged. */
  async read(
    redis: Redis,
    key: string,
    knownRevision: string | undefined,
  ): Promise<Revisioned<Record<string, string>>> {
    const now = Date.now();
    let rev: string | null;
    if (now - (this.touchedAtMs.get(key) ?? 0) >= TOUCH_EVERY_MS) {
      const [r] = check<string | null>(
        await redis.pipeline().hget(key, REVISION_FIELD).pexpire(key, RUN_TIME_TABLE_TTL_MS).exec(),
      );
      rev = r ?? null;
      this.touchedAtMs.set(key, now);
    } else {
      rev = await redis.hget(key, REVISION_FIELD);
    }
    if (knownRevision !== undefined && (rev ?? "") === knownRevision) return { revision: knownRevision };
    // HGETALL is one atomic read: the revision inside it belongs to exactly these fields.
    const all = await redis.hgetall(key);
    const entries: Record<string, string> = Object.create(null);
    let revision = "";
    for (const [f, v] of Object.entries(all)) {
      if (f === REVISION_FIELD) revision = v;
      else entries[f] = v;
    }
    return { revision, entries };
  }

  /** Sets (or with `value` undefined, deletes) one field; returns the command's reply (HSET/HDEL count). */
  async write(redis: Redis, key: string, field: string, value: string | undefined): Promise<number> {
    const m = redis.multi();
    if (value === undefined) m.hdel(key, field);
    else m.hset(key, field, value);
    m.hset(key, REVISION_FIELD, newRevision()).pexpire(key, RUN_TIME_TABLE_TTL_MS);
    const [changed] = check<number>(await m.exec());
    return changed ?? 0;
  }

  /** Sets a field only when absent; true when it was set. */
  async add(redis: Redis, key: string, field: string, value: string): Promise<boolean> {
    const m = redis.multi().hsetnx(key, field, value);
    m.hset(key, REVISION_FIELD, newRevision()).pexpire(key, RUN_TIME_TABLE_TTL_MS);
    const [added] = check<number>(await m.exec());
    return added === 1;
  }
}
