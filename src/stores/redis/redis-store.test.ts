import { randomUUID } from "node:crypto";
import { inject } from "vitest";
import { describeStoreContract } from "../test-store-contract.js";
import { createRedisStore } from "./redis-store.js";

describeStoreContract("redis", async () =>
  createRedisStore({ url: inject("redisUrl"), keyPrefix: `${inject("redisPrefix")}${randomUUID()}:` }),
);
