import { randomUUID } from "node:crypto";
import { Redis } from "ioredis";
import type { TestProject } from "vitest/node";
import { findOrStartRedis } from "../helpers/redis-server.js";

declare module "vitest" {
  export interface ProvidedContext {
    redisUrl: string;
    redisPrefix: string;
  }
}

/**
 * Finds or starts the Redis the tests share, and gives this run a unique key prefix. At the end it
 * deletes only this run's keys (never FLUSHes the shared server) and stops a server it started.
 */
export default async function setup(project: TestProject) {
  const { url, own } = await findOrStartRedis();
  const prefix = `tf:test:${randomUUID()}:`;
  project.provide("redisUrl", url);
  project.provide("redisPrefix", prefix);
  return async () => {
    const r = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
    try {
      await r.connect();
      let cursor = "0";
      do {
        const [next, keys] = await r.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 1000);
        if (keys.length > 0) await r.del(...keys);
        cursor = next;
      } while (cursor !== "0");
    } catch {
      // Cleanup is best effort: every key has a TTL anyway.
    } finally {
      r.disconnect();
      await own?.stop();
    }
  };
}
