import { createHash, randomBytes } from "node:crypto";
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

/** End-user ids named by trusted keys: bounded and printable. */
const END_USER = /^[A-Za-z0-9_.:@+-]{1,128}$/;

/** Authenticates requests against the config's keys (hash lookup, constant per request). */
export interface Authenticator {
  /** True when keys are configured (otherwise every request is the anonymous user). */
  readonly required: boolean;
  authenticate(authorization: string | undefined, endUser: string | undefined): Principal;
}

/** Builds the authenticator from the config's `keys`. */
export function createAuthenticator(config: ResolvedConfig): Authenticator {
  const byHash = new Map<string, KeyConfig>(config.keys.map((k) => [k.hash, k]));
  const required = byHash.size > 0;
  return {
    required,
    authenticate(authorization, endUser) {
      if (!required) {
        return {
          user: "anonymous",
          tier: undefined,
          features: undefined,
          defaultFeature: undefined,
          keyUser: "anonymous",
        };
      }
      const m = authorization ? /^Bearer\s+(\S+)\s*$/i.exec(authorization) : null;
      if (!m?.[1]) throw gatewayError("unauthorized", "missing API key: send Authorization: Bearer <key>");
      const key = byHash.get(hashApiKey(m[1]));
      if (!key) throw gatewayError("unauthorized", "unknown API key");
      let user = key.user;
      if (endUser !== undefined && endUser !== "") {
        if (!key.trusted)
          throw gatewayError("unauthorized", "this API key may not name end users (x-tokenfuse-user)");
        if (!END_USER.test(endUser)) {
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
        tier: key.tier,
        features: key.features,
        defaultFeature: key.defaultFeature,
        keyUser: key.user,
      };
    },
  };
}
