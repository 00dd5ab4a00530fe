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
 * in an id or a key. Why not one regex (`/[\r\n]|\p{Cs}/u`): these checks run for every key of every
 * reservation and settlement, and two `includes` plus `isWellFormed` cost a fraction of a `u` regex.
 */
function storable(s: string): boolean {
  return !s.includes("\n") && !s.includes("\r") && s.isWellFormed();
}

function assertKey(what: string, key: unknown): void {
  if (typeof key !== "string" || key.length === 0) throw new TypeError(`${what} must be a non-empty string`);
  if (!storable(key))
    throw new TypeError(`${what} ${JSON.stringify(key)} contains a line break or an unpaired surrogate`);
}

function assertScopes(scopes: readonly ScopeCharge[]): void {
  if (!Array.isArray(scopes)) throw new TypeError("scopes must be an array");
  // A request has a handful of scopes: comparing pairs is cheaper than building a Set each time.
  const seen = scopes.length > 8 ? new Set<string>() : undefined;
  for (let i = 0; i < scopes.length; i++) {
    const s = scopes[i] as ScopeCharge;
    assertKey("scope key", s.key);
    let twice = false;
    if (seen) {
      twice = seen.has(s.key);
      seen.add(s.key);
    } else {
      for (let j = 0; j < i && !twice; j++) twice = (scopes[j] as ScopeCharge).key === s.key;
    }
    if (twice) throw new RangeError(`scope ${s.key} appears twice in one reservation`);
    assertCount(`limit of ${s.key}`, s.limit);
    assertCount(`expireAtMs of ${s.key}`, s.expireAtMs);
  }
}

function assertId(id: string): void {
  // Ids are part of stored records and keys: bounded, and no line breaks (the record separator).
  if (typeof id !== "string" || id.length === 0 || id.length > 256 || !storable(id)) {
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
  if (req.abandon !== undefined && typeof req.abandon !== "boolean")
    throw new TypeError("abandon must be a boolean");
  if (req.generatedId !== undefined && typeof req.generatedId !== "boolean")
    throw new TypeError("generatedId must be a boolean");
  if (req.abandon && (req.actualTokens !== 0 || req.spend))
    throw new RangeError("an abandoned reservation charges nothing: actualTokens must be 0 and spend absent");
}
