import type { StoredApiKey } from "./types.js";

/**
 * Checks and the stored form shared by every store for the run-time tables (user tiers, API keys).
 * Why in one place: the memory and Redis stores must refuse the same input and read back the same
 * entries, and a field name of the Redis hashes (`#rev`) must never be taken by a user or a hash.
 */

/** Field of each Redis table hash that holds its revision; no user id or key hash starts with "#". */
export const REVISION_FIELD = "#rev";

const KEY_HASH = /^sha256:[0-9a-f]{64}$/;

/** True for "sha256:" + 64 lowercase hex digits. */
export function isKeyHash(s: unknown): s is string {
  return typeof s === "string" && KEY_HASH.test(s);
}

function storableName(s: unknown, max: number): boolean {
  return (
    typeof s === "string" &&
    s.length > 0 &&
    s.length <= max &&
    !s.startsWith("#") &&
    !/[\s\p{Cc}]/u.test(s) &&
    s.isWellFormed()
  );
}

/** Throws when a user id or tier name cannot be a field or value of the tier table. */
export function assertUserTier(user: string, tier: string | undefined): void {
  // A namespaced user is `<key user>/<end user>`: at most 128 + 1 + 128 characters.
  if (!storableName(user, 257))
    throw new TypeError("user must be 1-257 printable characters without spaces, not starting with #");
  if (tier !== undefined && !storableName(tier, 64))
    throw new TypeError("tier must be a tier name (1-64 printable characters) or undefined");
}

/** Throws when a key entry is malformed (nothing is stored then). */
export function assertStoredApiKey(k: StoredApiKey): void {
  if (!isKeyHash(k?.hash)) throw new TypeError('hash must be "sha256:" followed by 64 lowercase hex digits');
  if (!storableName(k.user, 128)) throw new TypeError("user must be 1-128 printable characters");
  if (k.tier !== undefined && !storableName(k.tier, 64)) throw new TypeError("tier must be a tier name");
  if (
    k.features !== undefined &&
    (!Array.isArray(k.features) || !k.features.every((f) => storableName(f, 64)))
  )
    throw new TypeError("features must be a list of feature names");
  if (k.defaultFeature !== undefined && !storableName(k.defaultFeature, 64))
    throw new TypeError("defaultFeature must be a feature name");
  if (typeof k.trusted !== "boolean") throw new TypeError("trusted must be a boolean");
  if (!Number.isSafeInteger(k.createdAtMs) || k.createdAtMs < 0)
    throw new TypeError("createdAtMs must be a non-negative integer");
}

/** The stored value of a key entry (the hash is the field name, not repeated here). */
export function encodeStoredApiKey(k: StoredApiKey): string {
  return JSON.stringify({
    user: k.user,
    ...(k.tier !== undefined ? { tier: k.tier } : {}),
    ...(k.features !== undefined ? { features: k.features } : {}),
    ...(k.defaultFeature !== undefined ? { default_feature: k.defaultFeature } : {}),
    trusted: k.trusted,
    created_at_ms: k.createdAtMs,
  });
}

/** Reads a stored key entry back; undefined when it is not one (a hand-edited or foreign value). */
export function decodeStoredApiKey(hash: string, value: string): StoredApiKey | undefined {
  let v: unknown;
  try {
    v = JSON.parse(value);
  } catch {
    return undefined;
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) return undefined;
  const o = v as Record<string, unknown>;
  const key: StoredApiKey = {
    hash,
    user: o.user as string,
    trusted: o.trusted as boolean,
    createdAtMs: o.created_at_ms as number,
  };
  if (o.tier !== undefined) key.tier = o.tier as string;
  if (o.features !== undefined) key.features = o.features as string[];
  if (o.default_feature !== undefined) key.defaultFeature = o.default_feature as string;
  try {
    assertStoredApiKey(key);
  } catch {
    return undefined;
  }
  return key;
}
