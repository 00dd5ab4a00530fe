import { createHash, randomBytes } from "node:crypto";
import { END_USER_PATTERN } from "../access/user-ids.js";
import type { KeyConfig, ResolvedConfig } from "../config/types.js";
import { gatewayError } from "./http-errors.js";

/** Who a request is made for, after authentication. */
export interface Principal {
  /** The user budgets are charged to (for trusted keys naming an end user: `<key user>/<end user>`). */
  user: string;
  tier: string | undefined;
  /** Features this caller may use (undefined = all). */
  features: readonly string[] | undefined;
  defaultFeature: string | undefined;
  /** The key's own user (for logs; never the key itself). */
  keyUser: string;
}

/** "sha256:" + lowercase hex of sha256(key): the only form in which a key is ever stored. */
export function hashApiKey(key: string): string {
  return `sha256:${createHash("sha256").update(key, "utf8").digest("hex")}`;
}

/** A new random API key (shown once; store only its hash). */
export function generateApiKey(): string {
  return `tf-${randomBytes(24).toString("base64url")}`;
}

/** Authenticates requests against the config's keys and the run-time ones (hash lookups, constant per request). */
export interface Authenticator {
  /** True when keys are configured (otherwise every request is the anonymous user). */
  readonly required: boolean;
  authenticate(authorization: string | undefined, endUser: string | undefined): Principal;
}

/** Where the authenticator finds what is set at run time (both are in-memory snapshots of the store). */
export interface RunTimeAccess {
  /** API keys created at run time, by hash. */
  keys?: {
    get(hash: string): KeyConfig | undefined;
    /** False until the store's keys were read once (optional: assumed read). */
    readonly loaded?: boolean;
  };
  /** Tier overrides, by the user budgets are charged to. */
  tiers?: { get(user: string): string | undefined };
}

/**
 * Builds the authenticator. Keys: the config's `keys` first, then the run-time keys. Keys are
 * required exactly when the config has `keys:` — never because of what the store holds: whether the
 * gateway checks keys must not change with a write to a shared store (nor fail open when the store
 * cannot be read). The tier is the user's run-time override when there is one, else the key's.
 */
export function createAuthenticator(config: ResolvedConfig, runTime: RunTimeAccess = {}): Authenticator {
  const byHash = new Map<string, KeyConfig>(config.keys.map((k) => [k.hash, k]));
  const required = byHash.size > 0;
  const storeKeys = runTime.keys;
  const tiers = runTime.tiers;
  return {
    required,
    authenticate(authorization, endUser) {
      if (!required) {
        return {
          user: "anonymous",
          tier: tiers?.get("anonymous"),
          features: undefined,
          defaultFeature: undefined,
          keyUser: "anonymous",
        };
      }
      const m = authorization ? /^Bearer\s+(\S+)\s*$/i.exec(authorization) : null;
      if (!m?.[1]) {
        // "missing" would mislead a client that sent a key in another form. Only a well-known scheme
        // name is echoed: anything else in the header may be the key itself.
        const scheme = /^(basic|digest|token|apikey|api-key|negotiate)\s/i.exec(authorization ?? "")?.[1];
        throw gatewayError(
          "unauthorized",
          !authorization?.trim()
            ? "missing API key: send Authorization: Bearer <key>"
            : `the Authorization header must be "Bearer <key>"${scheme ? ` (it uses the ${scheme} scheme)` : ""}`,
        );
      }
      const hash = hashApiKey(m[1]);
      const key = byHash.get(hash) ?? storeKeys?.get(hash);
      if (!key) {
        // Not known yet is not unknown: a key created at run time cannot be checked before the
        // store's keys were read once (a gateway started while the store is down). 503, not 401, so
        // the client retries instead of treating its key as revoked.
        if (storeKeys && storeKeys.loaded === false)
          throw gatewayError(
            "budget_store_unavailable",
            "the API keys kept in the shared store could not be read yet; retry shortly",
          );
        throw gatewayError("unauthorized", "unknown API key");
      }
      let user = key.user;
      if (endUser !== undefined && endUser !== "") {
        if (!key.trusted)
          throw gatewayError("unauthorized", "this API key may not name end users (x-tokenfuse-user)");
        if (!END_USER_PATTERN.test(endUser)) {
          throw gatewayError(
            "invalid_request",
            "x-tokenfuse-user must be 1-128 letters, digits or _ . : @ + -",
          );
        }
        // Namespaced under the key, so a trusted key can never spend another key's users' budgets.
        user = `${key.user}/${endUser}`;
      }
      return {
        user,
        tier: tiers?.get(user) ?? key.tier,
        features: key.features,
        defaultFeature: key.defaultFeature,
        keyUser: key.user,
      };
    },
  };
}
