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
