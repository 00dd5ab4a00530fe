/**
 * Byte-pair merging of one pre-tokenized piece, with exactly tiktoken's rule: repeatedly merge the
 * adjacent pair of parts whose concatenation has the lowest rank, the leftmost one on ties, until no
 * adjacent pair is a token.
 *
 * tiktoken (and every JavaScript port) rescans all parts for the minimum after each merge, which is
 * quadratic: a piece of 100 000 repeated letters or spaces takes seconds. Here long pieces use a
 * priority queue of candidate pairs keyed by (rank, position) (merge-queue.ts) over a doubly linked
 * list of parts, with lazy invalidation, which is O(n log n). The queue pops pairs in the same order
 * as the rescanning loop would pick them (its minimum among live pairs is the global (rank,
 * leftmost) minimum), so the result is identical. Short pieces, the vast majority, use the simple rescanning loop, which is
 * faster below a few dozen bytes.
 */

import { createMergeQueue, keyPosition, keyRank, type MergeQueue } from "./merge-queue.js";
import { hashStep, type RankTable } from "./rank-table.js";

/** Pieces longer than this many bytes are merged with the priority queue, shorter ones by rescanning. */
export const DEFAULT_HEAP_THRESHOLD = 48;

const NO_PAIR = 0x7fffffff;
const PAIR_CACHE_BITS = 16;
const PAIR_CACHE_SHIFT = 32 - PAIR_CACHE_BITS;

/** Merges pieces given as UTF-8 bytes. Keeps scratch buffers between calls; not re-entrant. */
export interface BytePairMerger {
  /** Number of tokens of `bytes[0..length)`. */
  count(bytes: Uint8Array, length: number): number;
  /**
   * Tokenizes `bytes[0..length)` and writes each token's end offset into `ends` (grown when too
   * small; the returned array holds them). Returns the token count as `ends`'s meaningful length.
   */
  tokenEnds(bytes: Uint8Array, length: number): { count: number; ends: Int32Array };
  /** Number of merges run so far (both algorithms); lets tests prove work was not repeated. */
  readonly pieceMerges: number;
}

/** Creates a merger for one vocabulary. `heapThreshold` is exposed for tests of both paths. */
export function createBytePairMerger(
  table: RankTable,
  heapThreshold: number = DEFAULT_HEAP_THRESHOLD,
): BytePairMerger {
  let capacity = 0;
  // Simple path: part starts and pair ranks as parallel arrays.
  let starts = new Int32Array(0);
  let pairRank = new Int32Array(0);
  // Heap path: linked list of parts, identified by their start offset.
  let next = new Int32Array(0);
  let prev = new Int32Array(0);
  let partHash = new Int32Array(0);
  let pairHash = new Int32Array(0);
  let partRank = new Int32Array(0);
  let lastPairHash = 0;
  let queue: MergeQueue | undefined;
  // Direct-mapped cache of (left rank, right rank) → rank of the concatenation (NO_PAIR if none),
  // 64 Ki entries (1 MiB): it saves a probe of the 8 MiB vocabulary table, the main cost on CJK.
  const pairCacheLeft = new Int32Array(1 << PAIR_CACHE_BITS).fill(-1);
  const pairCacheRight = new Int32Array(1 << PAIR_CACHE_BITS);
  const pairCacheRank = new Int32Array(1 << PAIR_CACHE_BITS);
  const pairCacheHash = new Int32Array(1 << PAIR_CACHE_BITS);
  // Every single byte is a token in these vocabularies; a part starts as one.
  const byteRank = new Int32Array(256);
  for (let b = 0; b < 256; b++) {
    const rank = table.rankOf(Uint8Array.of(b), 0, 1);
    if (rank < 0) throw new Error(`vocabulary has no token for byte ${b}`);
    byteRank[b] = rank;
  }
  let ends = new Int32Array(64);
  let merges = 0;

  function ensure(length: number): void {
    if (length + 1 <= capacity) return;
    capacity = Math.max(length + 1, capacity * 2, 64);
    starts = new Int32Array(capacity);
    pairRank = new Int32Array(capacity);
    next = new Int32Array(capacity);
    prev = new Int32Array(capacity);
    partHash = new Int32Array(capacity);
    pairHash = new Int32Array(capacity);
    partRank = new Int32Array(capacity);
  }

  /**
   * Rank of the concatenation of two parts, tokens of ranks `left` and `right` spanning
   * `bytes[from..to)`, through the rank-pair cache; `hash` is the bytes' hash when the caller has
   * it, else undefined. Sets `lastPairHash` when the pair is a token.
   */
  function pairRankOf(
    left: number,
    right: number,
    bytes: Uint8Array,
    from: number,
    to: number,
    hash: number | undefined,
  ): number {
    if (to - from > table.maxTokenBytes) return NO_PAIR;
    const slot = (Math.imul(left, 0x9e3779b1) ^ Math.imul(right, 0x85ebca6b)) >>> PAIR_CACHE_SHIFT;
    if (pairCacheLeft[slot] === left && pairCacheRight[slot] === right) {
      lastPairHash = pairCacheHash[slot] ?? 0;
      return pairCacheRank[slot] ?? NO_PAIR;
    }
    let h = hash ?? 0;
    if (hash === undefined) for (let k = from; k < to; k++) h = hashStep(h, bytes[k] ?? 0);
    const found = table.rankOfHashed(bytes, from, to, h);
    const rank = found < 0 ? NO_PAIR : found;
    pairCacheLeft[slot] = left;
    pairCacheRight[slot] = right;
    pairCacheRank[slot] = rank;
    pairCacheHash[slot] = h;
    lastPairHash = h;
    return rank;
  }

  /**
   * Rescanning loop; leaves the part starts in `starts[0..parts]`, `starts[parts] = length`.
   * `partRank[i]` is the rank of part i.
   */
  function mergeSmall(bytes: Uint8Array, length: number): number {
    let parts = length;
    for (let i = 0; i < length; i++) {
      starts[i] = i;
      partRank[i] = byteRank[bytes[i] ?? 0] ?? 0;
    }
    starts[length] = length;
    for (let i = 0; i + 1 < length; i++) {
      pairRank[i] = pairRankOf(partRank[i] ?? 0, partRank[i + 1] ?? 0, bytes, i, i + 2, undefined);
    }
    pairRank[length - 1] = NO_PAIR;
    for (;;) {
      let best = NO_PAIR;
      let at = -1;
      for (let i = 0; i + 1 < parts; i++) {
        const r = pairRank[i] ?? NO_PAIR;
        if (r < best) {
          best = r;
          at = i;
        }
      }
      if (at < 0) return parts;
      merges++;
      // Remove the boundary between parts `at` and `at + 1` (plain loops: for these short arrays
      // they beat the per-call cost of copyWithin).
      for (let i = at + 1; i < parts; i++) {
        starts[i] = starts[i + 1] ?? length;
        pairRank[i] = pairRank[i + 1] ?? NO_PAIR;
        partRank[i] = partRank[i + 1] ?? 0;
      }
      parts--;
      partRank[at] = best;
      pairRank[at] =
        at + 1 < parts
          ? pairRankOf(best, partRank[at + 1] ?? 0, bytes, starts[at] ?? 0, starts[at + 2] ?? 0, undefined)
          : NO_PAIR;
      if (at > 0) {
        pairRank[at - 1] = pairRankOf(
          partRank[at - 1] ?? 0,
          best,
          bytes,
          starts[at - 1] ?? 0,
          starts[at + 1] ?? 0,
          undefined,
        );
      }
    }
  }

  /**
   * Heap merge. Part ids are start offsets; `next[id]` is the next part's start (or `length`),
   * -1 once the part has been absorbed by its left neighbour. `pairRank[id]` is the rank of the
   * part joined with its right neighbour; an entry popped from the heap is stale unless the part is
   * alive and its pair still has that rank (a part's right end only grows, and distinct byte strings
   * have distinct ranks, so a pair never returns to an earlier rank). `partHash[id]` is the
   * polynomial hash of the part, so a pair's hash costs O(1) instead of a pass over its bytes, and
   * `partRank[id]` its rank.
   */
  function mergeLong(bytes: Uint8Array, length: number): number {
    const maxTokenBytes = table.maxTokenBytes;
    const powers = table.powers;
    queue ??= createMergeQueue(table.size);
    const q = queue;
    q.reset();
    /**
     * Rank of part `a` joined with the part starting at `b` (which ends at `bEnd`). Parts are
     * tokens, so the answer depends only on their two ranks: a small direct-mapped cache keyed by
     * the rank pair answers the pairs that recur (all of them, in a run of one character) without
     * hashing or comparing bytes.
     */
    const pairOf = (a: number, b: number, bEnd: number): number => {
      if (bEnd - a > maxTokenBytes) return NO_PAIR;
      const hash = (Math.imul(partHash[a] ?? 0, powers[bEnd - b] ?? 0) + (partHash[b] ?? 0)) | 0;
      const rank = pairRankOf(partRank[a] ?? 0, partRank[b] ?? 0, bytes, a, bEnd, hash);
      if (rank !== NO_PAIR) pairHash[a] = lastPairHash;
      return rank;
    };

    for (let i = 0; i < length; i++) {
      next[i] = i + 1;
      prev[i] = i - 1;
      const b = bytes[i] ?? 0;
      partHash[i] = b;
      partRank[i] = byteRank[b] ?? 0;
    }
    for (let i = 0; i + 1 < length; i++) {
      const r = pairOf(i, i + 1, i + 2);
      pairRank[i] = r;
      if (r !== NO_PAIR) q.push(r, i);
    }
    pairRank[length - 1] = NO_PAIR;
    let parts = length;
    for (let key = q.pop(); key >= 0; key = q.pop()) {
      const rank = keyRank(key);
      const id = keyPosition(key);
      const right = next[id] ?? -1;
      if (right < 0 || pairRank[id] !== rank) continue;
      merges++;
      parts--;
      partHash[id] = pairHash[id] ?? 0;
      partRank[id] = rank;
      const after = next[right] ?? length;
      next[right] = -1;
      next[id] = after;
      if (after < length) {
        prev[after] = id;
        const r = pairOf(id, after, next[after] ?? length);
        pairRank[id] = r;
        if (r !== NO_PAIR) q.push(r, id);
      } else {
        pairRank[id] = NO_PAIR;
      }
      const before = prev[id] ?? -1;
      if (before >= 0) {
        const r = pairOf(before, id, after);
        pairRank[before] = r;
        if (r !== NO_PAIR) q.push(r, before);
      }
    }
    return parts;
  }

  function merge(bytes: Uint8Array, length: number): { parts: number; long: boolean } {
    ensure(length);
    if (length <= heapThreshold) return { parts: mergeSmall(bytes, length), long: false };
    return { parts: mergeLong(bytes, length), long: true };
  }

  return {
    count(bytes, length) {
      if (length <= 1) return length;
      ensure(length);
      return length <= heapThreshold ? mergeSmall(bytes, length) : mergeLong(bytes, length);
    },
    tokenEnds(bytes, length) {
      if (ends.length < length + 1) ends = new Int32Array(Math.max(length + 1, ends.length * 2));
      if (length === 0) return { count: 0, ends };
      if (length === 1) {
        ends[0] = 1;
        return { count: 1, ends };
      }
      const { parts, long } = merge(bytes, length);
      if (!long) {
        for (let i = 0; i < parts; i++) ends[i] = starts[i + 1] ?? length;
      } else {
        let id = 0;
        for (let i = 0; i < parts; i++) {
          id = next[id] ?? length;
          ends[i] = id;
        }
      }
      return { count: parts, ends };
    },
    get pieceMerges() {
      return merges;
    },
  };
}
