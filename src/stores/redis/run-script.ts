import { createHash } from "node:crypto";
import type { Redis } from "ioredis";

/** A Lua script and its SHA1, for EVALSHA. */
export interface LuaScript {
  name: string;
  lua: string;
  sha: string;
}

/** Prepares a script for {@link runScript}. */
export function luaScript(name: string, lua: string): LuaScript {
  return { name, lua, sha: createHash("sha1").update(lua).digest("hex") };
}

function isNoScript(e: unknown): boolean {
  return e instanceof Error && e.message.startsWith("NOSCRIPT");
}

/**
 * The one choke point for script calls: EVALSHA, and EVAL when the server answers NOSCRIPT (after a
 * restart or SCRIPT FLUSH). EVAL also puts the script back in the server's cache.
 */
export async function runScript(
  redis: Redis,
  script: LuaScript,
  keys: readonly string[],
  args: ReadonlyArray<string | number>,
): Promise<unknown> {
  try {
    return await redis.evalsha(script.sha, keys.length, ...keys, ...args);
  } catch (e) {
    if (!isNoScript(e)) throw e;
    return await redis.eval(script.lua, keys.length, ...keys, ...args);
  }
}

/**
 * {@link runScript} for the reserve path, with callbacks instead of an async function: on the usual
 * path (EVALSHA answered) the reply reaches `onReply` in one promise step. Why: at one request in
 * flight every promise step of the chain is on the request's latency (measured: the async wrapper
 * layers cost a few µs per reservation, bench/redis-store.bench.js). Exactly one of the callbacks
 * is called, once.
 */
export function sendScript(
  redis: Redis,
  script: LuaScript,
  keys: readonly string[],
  args: ReadonlyArray<string | number>,
  onReply: (reply: unknown) => void,
  onError: (e: unknown) => void,
): void {
  redis.evalsha(script.sha, keys.length, ...keys, ...args).then(onReply, (e: unknown) => {
    if (!isNoScript(e)) return onError(e);
    redis.eval(script.lua, keys.length, ...keys, ...args).then(onReply, onError);
  });
}
