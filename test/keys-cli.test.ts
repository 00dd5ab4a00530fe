import { randomUUID } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, inject, it } from "vitest";
import type { CliIo } from "../src/cli/io.js";
import { main } from "../src/cli/main.js";
import { loadConfig } from "../src/config/load.js";
import { silentLogger } from "../src/core/logger.js";
import { hashApiKey } from "../src/gateway/auth.js";
import { createGateway } from "../src/gateway/server.js";
import { createRedisStore } from "../src/stores/redis/redis-store.js";

function io() {
  const out: string[] = [];
  const err: string[] = [];
  const cliIo: CliIo = { out: (s) => out.push(s), err: (s) => err.push(s), stdin: async () => "", env: {} };
  return { cliIo, out: () => out.join(""), err: () => err.join("") };
}

function writeConfig(config: Record<string, unknown>): string {
  const path = join(mkdtempSync(join(tmpdir(), "tf-keys-")), "tokenfuse.json");
  writeFileSync(path, JSON.stringify(config));
  return path;
}

describe("tokenfuse keys create --store", () => {
  const OPS = `tf-ops-${randomUUID()}`;
  const base = {
    upstreams: { local: { type: "mock" } },
    features: { chat: { model: "gpt-4o", max_input: 1000, max_output: 100, on_exceed: "trim" } },
    tiers: { free: { daily_tokens: 10_000 }, pro: { daily_tokens: 100_000 } },
    keys: [{ hash: hashApiKey(OPS), user: "ops" }],
  };

  it("stores only the hash in the shared store, prints the key once, and a gateway on the store accepts it", async () => {
    const prefix = `${inject("redisPrefix")}keys-cli-${randomUUID().slice(0, 8)}:`;
    const config = { ...base, store: { url: inject("redisUrl"), key_prefix: prefix } };
    const t = io();
    expect(
      await main(
        ["keys", "create", "--user", "zed", "--tier", "pro", "--store", "--config", writeConfig(config)],
        t.cliIo,
      ),
    ).toBe(0);
    const key = /shown once, store it now\): (\S+)/.exec(t.out())?.[1] as string;
    expect(key).toMatch(/^tf-/);
    expect(t.out().split(key).length).toBe(2);
    expect(t.out()).toContain(`Stored as ${hashApiKey(key)}`);
    const store = createRedisStore({ url: inject("redisUrl"), keyPrefix: prefix });
    await store.ping(); // connects
    const raw = await store.redis.hgetall(`${prefix}api-keys`);
    expect(Object.keys(raw)).toContain(hashApiKey(key));
    expect(JSON.stringify(raw)).not.toContain(key);
    const gw = createGateway({ config: loadConfig(config, {}), store, logger: silentLogger });
    try {
      const url = `http://127.0.0.1:${await gw.listen(0)}`;
      const res = await fetch(`${url}/v1/budget`, { headers: { authorization: `Bearer ${key}` } });
      expect(res.status).toBe(200);
      expect(((await res.json()) as { user: { id: string; tier: string } }).user).toMatchObject({
        id: "zed",
        tier: "pro",
      });
    } finally {
      await gw.close();
    }
  });

  it("refuses the memory store, a keyless config and bad entries with exit 2, printing no key", async () => {
    const redis = { url: inject("redisUrl"), key_prefix: `${inject("redisPrefix")}keys-cli-x:` };
    for (const [config, args, message] of [
      [base, ["--user", "zed"], /memory store/],
      [{ ...base, store: redis, keys: [] }, ["--user", "zed"], /no keys:/],
      [
        { ...base, store: redis },
        ["--user", "zed", "--tier", "gold"],
        /--tier: unknown tier "gold"; tiers: free, pro/,
      ],
      [{ ...base, store: redis }, ["--user", "a:b"], /--user: user must be/],
    ] as const) {
      const t = io();
      expect(
        await main(["keys", "create", ...args, "--store", "--config", writeConfig(config)], t.cliIo),
      ).toBe(2);
      expect(t.err()).toMatch(message);
      expect(t.out()).not.toMatch(/tf-/);
    }
  });
});

describe("tokenfuse keys revoke", () => {
  const OPS = `tf-ops-${randomUUID()}`;
  const base = {
    upstreams: { local: { type: "mock" } },
    features: { chat: { model: "gpt-4o", max_input: 1000, max_output: 100, on_exceed: "trim" } },
    tiers: { free: { daily_tokens: 10_000 } },
    keys: [{ hash: hashApiKey(OPS), user: "ops" }],
  };

  it("removes a stored key (a gateway on the store refuses it), and refuses config keys, unknown and malformed hashes", async () => {
    const prefix = `${inject("redisPrefix")}keys-rv-${randomUUID().slice(0, 8)}:`;
    const config = { ...base, store: { url: inject("redisUrl"), key_prefix: prefix } };
    const path = writeConfig(config);
    const made = io();
    expect(await main(["keys", "create", "--user", "zed", "--store", "--config", path], made.cliIo)).toBe(0);
    const key = /shown once, store it now\): (\S+)/.exec(made.out())?.[1] as string;
    const hash = hashApiKey(key);
    expect(made.out()).toContain(`tokenfuse keys revoke ${hash}`);
    const store = createRedisStore({ url: inject("redisUrl"), keyPrefix: prefix });
    const gw = createGateway({ config: loadConfig(config, {}), store, logger: silentLogger });
    try {
      const url = `http://127.0.0.1:${await gw.listen(0)}`;
      const budget = () => fetch(`${url}/v1/budget`, { headers: { authorization: `Bearer ${key}` } });
      expect((await budget()).status).toBe(200);
      const t = io();
      expect(await main(["keys", "revoke", hash, "--config", path], t.cliIo)).toBe(0);
      expect(t.out()).toContain(`Revoked ${hash}`);
      const until = Date.now() + 3000;
      let status = (await budget()).status;
      while (status !== 401 && Date.now() < until) {
        await new Promise((r) => setTimeout(r, 100));
        status = (await budget()).status;
      }
      expect(status).toBe(401);
    } finally {
      await gw.close();
    }
    for (const [args, message] of [
      [[hash], /no key with hash/],
      [[hashApiKey(OPS)], /key of the config file/],
      [["sha256:xyz"], /one key hash/],
      [[], /one key hash/],
    ] as const) {
      const t = io();
      expect(await main(["keys", "revoke", ...args, "--config", path], t.cliIo)).toBe(2);
      expect(t.err()).toMatch(message);
    }
  });
});
