import type { IncomingMessage, ServerResponse } from "node:http";
import { parseKeyRequest, resolveStoredKey } from "../access/key-entries.js";
import type { KeyConfig } from "../config/types.js";
import { isKeyHash } from "../stores/admin-tables.js";
import type { StoredApiKey } from "../stores/types.js";
import { type AdminDeps, decodePathSegment, storeCall } from "./admin-common.js";
import { generateApiKey, hashApiKey } from "./auth.js";
import { gatewayError, sendJson } from "./http-errors.js";
import { parseJsonObject, readBody } from "./read-body.js";

/** A key entry as the admin API shows it: hashes and entries, never a key. */
export interface KeyView {
  hash: string;
  user: string;
  /** The key's tier; null = the config's `default_tier`. */
  tier: string | null;
  /** Features the key may use; null = all. */
  features: string[] | null;
  default_feature: string | null;
  trusted: boolean;
  /** `config`: a `keys:` entry of the config file; `store`: created at run time. */
  source: "config" | "store";
  /** When a run-time key was created (ISO 8601); null for config keys. */
  created_at: string | null;
  /** Set when this gateway's config cannot use the key (it refuses the key meanwhile). */
  problem?: string;
}

function viewOf(k: KeyConfig, source: "config" | "store", createdAtMs?: number): KeyView {
  return {
    hash: k.hash,
    user: k.user,
    tier: k.tier ?? null,
    features: k.features ? [...k.features] : null,
    default_feature: k.defaultFeature ?? null,
    trusted: k.trusted,
    source,
    created_at: createdAtMs === undefined ? null : new Date(createdAtMs).toISOString(),
  };
}

function storedView(k: StoredApiKey, deps: AdminDeps): KeyView {
  const resolved = resolveStoredKey(k, deps.config);
  if (typeof resolved !== "string") return viewOf(resolved, "store", k.createdAtMs);
  return { ...viewOf(k, "store", k.createdAtMs), problem: resolved };
}

/** `GET /admin/keys`, `POST /admin/keys`, `DELETE /admin/keys/{hash}`; undefined when none matches. */
export async function handleAdminKeys(
  req: IncomingMessage,
  res: ServerResponse,
  path: string,
  deps: AdminDeps,
): Promise<string | undefined> {
  const { config } = deps;
  if (path === "/admin/keys" && req.method === "GET") {
    // Read from the store, not this process's snapshot: the list is the truth, including keys this
    // config refuses (shown with their problem).
    const stored = await storeCall(() => deps.store.readApiKeys(), "the keys cannot be listed");
    const keys = [
      ...config.keys.map((k) => viewOf(k, "config")),
      ...(stored.entries ?? [])
        .filter((k) => !config.keys.some((c) => c.hash === k.hash))
        .sort((a, b) => a.createdAtMs - b.createdAtMs || a.hash.localeCompare(b.hash))
        .map((k) => storedView(k, deps)),
      // Entries that cannot be read at all are listed too, so they can be found and revoked.
      ...(stored.unreadable ?? []).map((hash) => ({
        hash,
        source: "store",
        problem: "malformed entry in the store (not used); revoke it with DELETE /admin/keys/{hash}",
      })),
    ];
    sendJson(res, 200, { keys });
    return "admin_keys_list";
  }
  if (path === "/admin/keys" && req.method === "POST") {
    if (config.keys.length === 0) {
      // Why not "keys become required once one exists": whether this gateway checks keys would then
      // change fleet-wide with one write to the store, and an unreadable store would mean keyless
      // again (fail open). Requiring keys is the config's decision.
      throw gatewayError(
        "invalid_request",
        "this gateway runs without API keys (its config has no keys:), so a key created here would never be checked; " +
          "add at least one entry under keys: (tokenfuse keys create prints one) and restart, then create keys here",
        409,
      );
    }
    const body = parseJsonObject(await readBody(req, 16 * 1024));
    const parsed = parseKeyRequest(body, config);
    if (!parsed.ok) throw gatewayError("invalid_request", parsed.message, 400, parsed.param);
    const key = generateApiKey();
    const stored: StoredApiKey = { hash: hashApiKey(key), ...parsed.entry, createdAtMs: deps.nowMs() };
    const added = await storeCall(
      () => deps.keys.add(stored),
      // The write may have happened (a timeout is ambiguous), but the key was never shown: say which
      // entry to revoke should it appear. The hash is not a secret.
      `the key was not created (if ${stored.hash} appears in GET /admin/keys, revoke it)`,
    );
    // 192 random bits: a taken hash means something is badly wrong, not bad luck.
    if (!added) throw new Error("a newly generated API key's hash is already stored");
    deps.logger.info(
      { hash: stored.hash, user: stored.user, tier: stored.tier, trusted: stored.trusted },
      "admin: API key created",
    );
    // The only place the key ever appears. no-store: no cache on the way may keep it.
    sendJson(res, 201, { key, ...storedView(stored, deps) }, { "cache-control": "no-store" });
    return "admin_keys_create";
  }
  const m = /^\/admin\/keys\/([^/]+)$/.exec(path);
  if (m?.[1] && req.method === "DELETE") {
    const hash = decodePathSegment(m[1], "the key hash");
    if (!isKeyHash(hash))
      throw gatewayError(
        "invalid_request",
        'the key hash in the path must be "sha256:" followed by 64 lowercase hex digits (GET /admin/keys lists them)',
      );
    if (config.keys.some((k) => k.hash === hash))
      throw gatewayError(
        "invalid_request",
        "this key is in the config file (keys:): remove it there and restart the gateway to revoke it",
        409,
      );
    const removed = await storeCall(() => deps.keys.revoke(hash), "the key was not revoked");
    if (!removed) throw gatewayError("invalid_request", `no run-time API key has the hash ${hash}`, 404);
    deps.logger.info({ hash }, "admin: API key revoked");
    sendJson(res, 200, { hash, revoked: true });
    return "admin_keys_revoke";
  }
  return undefined;
}
