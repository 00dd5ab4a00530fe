/**
 * An LRU cache of token counts keyed by content, bounded by the total length of its keys.
 *
 * A conversation is sent again with every turn; caching each message's count by its content makes
 * the cost of counting a request grow with its new text, not with its history. Keys come in two
 * parts: the primary key is the message text itself (the string the request already holds, so
 * building the key copies nothing; see {@link fingerprint} for how it is looked up cheaply) and the
 * secondary key holds the small rest (encoding, role, name, tool fields). The bound is on
 * characters of keys, so memory stays predictable whatever the message sizes; an entry larger than
 * the whole bound is simply not cached.
 */

/** Default bound: 32 Mi characters of cached keys. */
export const DEFAULT_CACHE_MAX_CHARS = 32 * 1024 * 1024;

/** A cached count: tokens, and whether the count is exact. */
export interface CachedCount {
  tokens: number;
  exact: boolean;
}

/** Counters of a {@link TokenCountCache}, for tests and diagnostics. */
export interface TokenCountCacheStats {
  hits: number;
  misses: number;
  evictions: number;
  /** Primary keys held. */
  entries: number;
  /** Characters of keys held (primary and secondary). */
  chars: number;
  maxChars: number;
}

/** LRU of token counts keyed by (primary, secondary) strings. */
export interface TokenCountCache {
  get(primary: string, secondary: string): CachedCount | undefined;
  /** Stores a complete count. Bounded counts that stopped early must not be stored. */
  set(primary: string, secondary: string, count: CachedCount): void;
  clear(): void;
  stats(): TokenCountCacheStats;
}

/**
 * Counts under one primary key; values pack `tokens * 2 + exact` so entries allocate nothing more.
 * Buckets whose keys share a fingerprint are chained.
 */
interface Bucket {
  key: string;
  counts: Map<string, number>;
  next: Bucket | undefined;
}

/**
 * At most this many keys share one fingerprint; inserting another drops the chain's oldest. Why:
 * the fingerprint reads only a key's length and ends, so a client can send any number of messages
 * that differ only in the middle; unbounded, every lookup walked all of them (a reviewer's flood of
 * such messages took a request from 78 ms to 1 s and blocked the event loop). Real messages rarely
 * share length and both ends; with the cap a lookup compares at most this many keys.
 */
export const MAX_CHAIN = 8;

/** Characters sampled from each end of a key for its fingerprint. */
const FINGERPRINT_SAMPLE = 32;

/**
 * The map key of a primary key: a small integer from its length and up to 32 characters at each
 * end. Hashing a string costs about 2 ns per character in V8, and a message arriving in a new
 * request is a new string whose hash is not cached yet: for a long conversation that was most of
 * the cost of a fully cached count. Looking up by fingerprint and then comparing whole keys with
 * `===` (memory speed, or identity when the caller reuses its strings) avoids it. Keys with the
 * same fingerprint are chained, never confused.
 */
function fingerprint(key: string): number {
  const n = key.length;
  let h = n;
  const head = Math.min(n, FINGERPRINT_SAMPLE);
  for (let i = 0; i < head; i++) h = (Math.imul(h, 31) + key.charCodeAt(i)) | 0;
  for (let i = Math.max(head, n - FINGERPRINT_SAMPLE); i < n; i++)
    h = (Math.imul(h, 31) + key.charCodeAt(i)) | 0;
  // Keep it a small integer (Smi), the cheapest kind of Map key.
  return h >>> 2;
}

/** Creates a cache holding at most `maxChars` characters of keys. */
export function createTokenCountCache(options: { maxChars?: number } = {}): TokenCountCache {
  const maxChars = Math.max(0, Math.floor(options.maxChars ?? DEFAULT_CACHE_MAX_CHARS));
  // Map iteration order is insertion order: the first chain is the least recently used.
  const chains = new Map<number, Bucket>();
  let entries = 0;
  let chars = 0;
  let hits = 0;
  let misses = 0;
  let evictions = 0;

  function bucketChars(bucket: Bucket): number {
    let n = bucket.key.length;
    for (const secondary of bucket.counts.keys()) n += secondary.length;
    return n;
  }

  /** Drops the buckets of a chain beyond {@link MAX_CHAIN} (the oldest: new ones go in front). */
  function dropBeyondCap(head: Bucket): void {
    let last = head;
    for (let i = 1; i < MAX_CHAIN; i++) {
      if (last.next === undefined) return;
      last = last.next;
    }
    for (let b = last.next; b !== undefined; b = b.next) {
      chars -= bucketChars(b);
      entries--;
      evictions++;
    }
    last.next = undefined;
  }

  /** Moves a chain to the most recently used end. */
  function touch(print: number, head: Bucket): void {
    chains.delete(print);
    chains.set(print, head);
  }

  return {
    get(primary, secondary) {
      const print = fingerprint(primary);
      const head = chains.get(print);
      let bucket = head;
      while (bucket !== undefined && bucket.key !== primary) bucket = bucket.next;
      const packed = bucket?.counts.get(secondary);
      if (head === undefined || packed === undefined) {
        misses++;
        return undefined;
      }
      hits++;
      touch(print, head);
      return { tokens: Math.floor(packed / 2), exact: packed % 2 === 1 };
    },
    set(primary, secondary, count) {
      const packed = count.tokens * 2 + (count.exact ? 1 : 0);
      const print = fingerprint(primary);
      let head = chains.get(print);
      let bucket = head;
      while (bucket !== undefined && bucket.key !== primary) bucket = bucket.next;
      if (bucket === undefined) {
        if (primary.length + secondary.length > maxChars) return;
        bucket = { key: primary, counts: new Map(), next: head };
        head = bucket;
        chars += primary.length;
        entries++;
        dropBeyondCap(head);
      }
      if (!bucket.counts.has(secondary)) chars += secondary.length;
      bucket.counts.set(secondary, packed);
      touch(print, head ?? bucket);
      while (chars > maxChars) {
        const oldest = chains.entries().next();
        if (oldest.done) break;
        const [oldestPrint, oldestHead] = oldest.value;
        chains.delete(oldestPrint);
        for (let b: Bucket | undefined = oldestHead; b !== undefined; b = b.next) {
          chars -= bucketChars(b);
          entries--;
          evictions++;
        }
      }
    },
    clear() {
      chains.clear();
      chars = 0;
      entries = 0;
    },
    stats() {
      return { hits, misses, evictions, entries, chars, maxChars };
    },
  };
}
