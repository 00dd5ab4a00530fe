import type { ReserveRequest, ScopeCharge, SettleRequest } from "./types.js";

/**
 * Input checks every store runs before touching a counter. Why: a NaN or negative amount written
 * into a shared counter would corrupt every later decision for that scope; bad input must be
 * refused and change nothing.
 */
function assertCount(name: string, v: number): void {
  if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`${name} must be a non-negative integer, got ${v}`);
}

function assertScopes(scopes: readonly ScopeCharge[]): void {
  if (!Array.isArray(scopes)) throw new TypeError("scopes must be an array");
  const seen = new Set<string>();
  for (const s of scopes) {
    if (typeof s.key !== "string" || s.key.length === 0) throw new TypeError("scope key must be a non-empty string");
    if (seen.has(s.key)) throw new RangeError(`scope ${s.key} appears twice in one reservation`);
    seen.add(s.key);
    assertCount(`limit of ${s.key}`, s.limit);
    assertCount(`expireAtMs of ${s.key}`, s.expireAtMs);
  }
}

/** Throws when a reservation request is malformed. */
export function assertReserveRequest(req: ReserveRequest): void {
  if (typeof req.id !== "string" || req.id.length === 0) throw new TypeError("reservation id must be a non-empty string");
  assertCount("tokens", req.tokens);
  assertCount("nowMs", req.nowMs);
  assertCount("ttlMs", req.ttlMs);
  assertScopes(req.scopes);
}

/** Throws when a settlement request is malformed. */
export function assertSettleRequest(req: SettleRequest): void {
  if (typeof req.id !== "string" || req.id.length === 0) throw new TypeError("reservation id must be a non-empty string");
  assertCount("actualTokens", req.actualTokens);
  assertCount("nowMs", req.nowMs);
  assertScopes(req.scopes);
}
