import type { KeyConfig, ResolvedConfig } from "../config/types.js";
import type { StoredApiKey } from "../stores/types.js";
import { isKeyUserId, USER_ID_RULE } from "./user-ids.js";

/**
 * Validation of API key entries made at run time (admin API `POST /admin/keys`, `tokenfuse keys
 * create`): the same rules as a `keys:` entry of the config, so a key is valid wherever it is kept.
 */

/** A key entry to create (the key and its hash are made by the caller). */
export interface NewKeyEntry {
  user: string;
  tier?: string;
  features?: string[];
  defaultFeature?: string;
  trusted: boolean;
}

/** A refused entry: what is wrong, and the field it is about (the OpenAI envelope's `param`). */
export interface KeyEntryIssue {
  param: string | null;
  message: string;
}

const FIELDS = ["user", "tier", "features", "default_feature", "trusted"];

const names = (record: Record<string, unknown>) => Object.keys(record).join(", ");

/**
 * Checks a key request (`{"user","tier"?,"features"?,"default_feature"?,"trusted"?}`) against the
 * config: the user id rule of `keys[].user`, a tier and features the config defines, a
 * `default_feature` among the key's features. Unknown fields are refused (typo protection, as in the
 * config file). Returns the entry, or the first problem found.
 */
export function parseKeyRequest(
  body: Record<string, unknown>,
  config: ResolvedConfig,
): { ok: true; entry: NewKeyEntry } | ({ ok: false } & KeyEntryIssue) {
  const fail = (param: string | null, message: string) => ({ ok: false as const, param, message });
  for (const f of Object.keys(body)) {
    if (!FIELDS.includes(f)) return fail(f, `unknown field "${f}"; allowed fields: ${FIELDS.join(", ")}`);
  }
  const { user, tier, features, default_feature: defaultFeature, trusted } = body;
  if (user === undefined) return fail("user", `user is required: ${USER_ID_RULE}`);
  if (!isKeyUserId(user)) return fail("user", `user must be ${USER_ID_RULE}`);
  const entry: NewKeyEntry = { user, trusted: false };
  if (tier !== undefined) {
    if (typeof tier !== "string") return fail("tier", "tier must be a string (the name of a tier)");
    if (!Object.hasOwn(config.tiers, tier))
      return fail("tier", `unknown tier "${tier}"; tiers: ${names(config.tiers)}`);
    entry.tier = tier;
  }
  if (features !== undefined) {
    if (!Array.isArray(features) || features.length === 0)
      return fail(
        "features",
        "features must be a non-empty list of feature names (omit it to allow every feature)",
      );
    for (const f of features) {
      if (typeof f !== "string") return fail("features", "features must be a list of feature names");
      if (!Object.hasOwn(config.features, f))
        return fail("features", `unknown feature "${f}"; features: ${names(config.features)}`);
    }
    if (new Set(features).size !== features.length) return fail("features", "features lists a feature twice");
    entry.features = [...(features as string[])];
  }
  if (defaultFeature !== undefined) {
    if (typeof defaultFeature !== "string" || !Object.hasOwn(config.features, defaultFeature))
      return fail(
        "default_feature",
        `unknown feature ${JSON.stringify(defaultFeature)}; features: ${names(config.features)}`,
      );
    if (entry.features && !entry.features.includes(defaultFeature))
      return fail("default_feature", `"${defaultFeature}" is not among this key's features`);
    entry.defaultFeature = defaultFeature;
  }
  if (trusted !== undefined) {
    if (typeof trusted !== "boolean") return fail("trusted", "trusted must be true or false");
    entry.trusted = trusted;
  }
  return { ok: true, entry };
}

/**
 * A stored key as the authenticator uses it (the config's `KeyConfig`), or what keeps this config
 * from using it: a tier or feature that it does not define (the config changed since the key was
 * made, or processes on one store run different configs). Such a key is refused, never guessed at.
 */
export function resolveStoredKey(k: StoredApiKey, config: ResolvedConfig): KeyConfig | string {
  // Checked again on read, whoever wrote the entry: a user like "backend/u1" would log in as the
  // end user u1 of the trusted key "backend" (the namespace budgets and overrides are keyed by).
  if (!isKeyUserId(k.user)) return `user ${JSON.stringify(k.user)} is not a valid key user (${USER_ID_RULE})`;
  if (k.tier !== undefined && !Object.hasOwn(config.tiers, k.tier))
    return `unknown tier "${k.tier}"; tiers: ${names(config.tiers)}`;
  for (const f of k.features ?? []) {
    if (!Object.hasOwn(config.features, f))
      return `unknown feature "${f}"; features: ${names(config.features)}`;
  }
  if (k.defaultFeature !== undefined && !Object.hasOwn(config.features, k.defaultFeature))
    return `unknown default feature "${k.defaultFeature}"; features: ${names(config.features)}`;
  const key: KeyConfig = { hash: k.hash, user: k.user, trusted: k.trusted };
  if (k.tier !== undefined) key.tier = k.tier;
  if (k.features !== undefined) key.features = [...k.features];
  // As the config loader does: a key with one feature uses it when a request names none.
  const defaultFeature = k.defaultFeature ?? (k.features?.length === 1 ? k.features[0] : undefined);
  if (defaultFeature !== undefined) key.defaultFeature = defaultFeature;
  return key;
}
