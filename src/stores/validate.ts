import type { ReserveRequest, ScopeCharge, SettleRequest } from "./types.js";

/**
 * Input checks every store runs before touching a counter. Why: a NaN or negative amount written
 * into a shared counter would corrupt every later decision for that scope; bad input must be
 * refused and change nothing.
 */
function assertCount(name: string, v: number): void {
  if (!Number.isSafeInteger(v) || v < 0)
    throw new RangeError(`${name} must be a non-negative integer, got ${v}`);
}

/**
 * Line breaks separate the parts of a stored reservation record, and a lone UTF-16 surrogate has no
 * UTF-8 form (it would be stored as U+FFFD, or refused by Redis's JSON decoder): neither may appear
 * in an id or a key. In `u` mode, `\p{Cs}` matches only unpaired surrogates.
 */
const UNSTORABLE = /[\r\n]|\p{Cs}/u;

function assertKey(what: string, key: unknown): void {
  if (typeof key !== "string" || key.length === 0) throw new TypeError(`${what} must be a non-empty string`);
  if (UNSTORABLE.test(key))
    throw new TypeError(`${what} ${JSON.stringify(key)} contains a line break or an unpaired surrogate`);
}

function assertScopes(scopes: readonly ScopeCharge[]): void {
  if (!Array.isArray(scopes)) throw new TypeError("scopes must be an array");
  const seen = new Set<string>();
  for (const s of scopes) {
    assertKey("scope key", s.key);
    if (seen.has(s.key)) throw new RangeError(`scope ${s.key} appears twice in one reservation`);
    seen.add(s.key);
    assertCount(`limit of ${s.key}`, s.limit);
    assertCount(`expireAtMs of ${s.key}`, s.expireAtMs);
  }
}

function assertId(id: string): void {
  // Ids are part of stored records and keys: bounded, and no line breaks (the record separator).
  if (typeof id !== "string" || id.length === 0 || id.length > 256 || UNSTORABLE.test(id)) {
    throw new TypeError(
      "reservation id must be a string of 1 to 256 characters without line breaks or unpaired surrogates",
    );
  }
}

/** Throws when a reservation request is malformed. */
export function assertReserveRequest(req: ReserveRequest): void {
  assertId(req.id);
  assertCount("tokens", req.tokens);
  assertCount("nowMs", req.nowMs);
  assertCount("ttlMs", req.ttlMs);
  assertScopes(req.scopes);
}

/** Throws when a settlement request is malformed. */
export function assertSettleRequest(req: SettleRequest): void {
  assertId(req.id);
  assertCount("actualTokens", req.actualTokens);
  assertCount("reservedTokens", req.reservedTokens);
  if (req.spend) {
    assertCount("spend.costNanoUsd", req.spend.costNanoUsd);
    assertCount("spend.inputTokens", req.spend.inputTokens);
    assertCount("spend.outputTokens", req.spend.outputTokens);
    for (const c of req.spend.counters) {
      assertKey("spend counter key", c.key);
      assertCount(`expireAtMs of ${c.key}`, c.expireAtMs);
    }
  }
  assertCount("nowMs", req.nowMs);
  assertScopes(req.scopes);
}
