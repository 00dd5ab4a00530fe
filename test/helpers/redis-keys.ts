import { randomUUID } from "node:crypto";
import type { Redis } from "ioredis";
import { inject } from "vitest";

/**
 * A key prefix under this run's prefix (vitest `inject("redisPrefix")`), so the global teardown
 * deletes every key written with it. `name` says which test wrote the keys; a short random part
 * keeps two uses apart. The config allows at most 64 characters: checked here, not at load time.
 */
export function testKeyPrefix(name: string): string {
  const prefix = `${inject("redisPrefix")}${name}-${randomUUID().slice(0, 8)}:`;
  if (prefix.length > 64) throw new Error(`key prefix ${prefix} is longer than the 64 characters allowed`);
  return prefix;
}

/** Every key matching `pattern` (SCAN, never KEYS). */
export async function scanKeys(redis: Redis, pattern: string): Promise<string[]> {
  const out: string[] = [];
  let cursor = "0";
  do {
    const [next, batch] = await redis.scan(cursor, "MATCH", pattern, "COUNT", 1000);
    out.push(...batch);
    cursor = next;
  } while (cursor !== "0");
  return out;
}

/** Deletes every key under `prefix`. */
export async function deleteKeys(redis: Redis, prefix: string): Promise<void> {
  const keys = await scanKeys(redis, `${prefix}*`);
  for (let i = 0; i < keys.length; i += 500) await redis.del(...keys.slice(i, i + 500));
}

/** The keys under `prefix` that have no TTL (PTTL -1), or that vanished (-2) while being checked. */
export async function keysWithoutTtl(redis: Redis, prefix: string): Promise<string[]> {
  const keys = await scanKeys(redis, `${prefix}*`);
  const out: string[] = [];
  for (const k of keys) if ((await redis.pttl(k)) <= 0) out.push(k);
  return out;
}
