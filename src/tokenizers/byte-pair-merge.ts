/**
 * Byte-pair merging of one pre-tokenized piece, with exactly tiktoken's rule: repeatedly merge the
 * adjacent pair of parts whose concatenation has the lowest rank, the leftmost one on ties, until no
 * adjacent pair is a token.
 *
 * tiktoken (and every JavaScript port) rescans all parts for the minimum after each merge, which is
 * quadratic: a piece of 100 000 repeated letters or spaces takes seconds. Here long pieces use a
 * min-heap of candidate pairs keyed by (rank, position) over a doubly linked list of parts, with lazy
 * invalidation, which is O(n log n). The heap pops pairs in the same order as the rescanning loop
 * would pick them (the heap's minimum among live pairs is the global (rank, leftmost) minimum), so
 * the result is identical. Short pieces, the vast majority, use the simple rescanning loop, which is
 * faster below a few dozen bytes.
 */

import type { RankTable } from "./rank-table.js";

/** Pieces longer than this many bytes are merged with the heap. */
export const DEFAULT_HEAP_THRESHOLD = 48;

const NO_PAIR = 0x7fffffff;
/** Heap keys are rank * 2^32 + position: exact in a double while rank < 2^21. */
const POSITION_SPAN = 4294967296;

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
  let heap = new Float64Array(0);
  let ends = new Int32Array(64);
  let merges = 0;

  function ensure(length: number): void {
    if (length + 1 <= capacity) return;
    capacity = Math.max(length + 1, capacity * 2, 64);
    starts = new Int32Array(capacity);
    pairRank = new Int32Array(capacity);
    next = new Int32Array(capacity);
    prev = new Int32Array(capacity);
    heap = new Float64Array(capacity * 2);
  }

  function rankOf(bytes: Uint8Array, from: number, to: number): number {
    const rank = table.rankOf(bytes, from, to);
    return rank < 0 ? NO_PAIR : rank;
  }

  /** Rescanning loop; leaves the part starts in `starts[0..parts]`, `starts[parts] = length`. */
  function mergeSmall(bytes: Uint8Array, length: number): number {
    let parts = length;
    for (let i = 0; i <= length; i++) starts[i] = i;
    for (let i = 0; i + 1 < length; i++) pairRank[i] = rankOf(bytes, i, i + 2);
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
      // Remove the boundary between parts `at` and `at + 1`.
      starts.copyWithin(at + 1, at + 2, parts + 1);
      pairRank.copyWithin(at + 1, at + 2, parts);
      parts--;
      pairRank[at] =
        at + 1 < parts ? rankOf(bytes, starts[at] ?? 0, starts[at + 2] ?? 0) : NO_PAIR;
      if (at > 0) pairRank[at - 1] = rankOf(bytes, starts[at - 1] ?? 0, starts[at + 1] ?? 0);
    }
  }

  /**
   * Heap merge. Part ids are start offsets; `next[id]` is the next part's start (or `length`),
   * -1 once the part has been absorbed by its left neighbour. `pairRank[id]` is the rank of the
   * part joined with its right neighbour; an entry popped from the heap is stale unless the part is
   * alive and its pair still has that rank (a part's right end only grows, and distinct byte strings
   * have distinct ranks, so a pair never returns to an earlier rank).
   */
  function mergeLong(bytes: Uint8Array, length: number): number {
    let size = 0;
    const push = (key: number): void => {
      if (size === heap.length) {
        const grown = new Float64Array(heap.length * 2);
        grown.set(heap);
        heap = grown;
      }
      let i = size++;
      while (i > 0) {
        const parent = (i - 1) >> 1;
        const p = heap[parent] ?? 0;
        if (p <= key) break;
        heap[i] = p;
        i = parent;
      }
      heap[i] = key;
    };
    const pop = (): number => {
      const top = heap[0] ?? 0;
      const last = heap[--size] ?? 0;
      let i = 0;
      for (;;) {
        let child = 2 * i + 1;
        if (child >= size) break;
        const right = child + 1;
        if (right < size && (heap[right] ?? 0) < (heap[child] ?? 0)) child = right;
        const c = heap[child] ?? 0;
        if (c >= last) break;
        heap[i] = c;
        i = child;
      }
      heap[i] = last;
      return top;
    };

    for (let i = 0; i < length; i++) {
      next[i] = i + 1;
      prev[i] = i - 1;
    }
    for (let i = 0; i + 1 < length; i++) {
      const r = rankOf(bytes, i, i + 2);
      pairRank[i] = r;
      if (r !== NO_PAIR) push(r * POSITION_SPAN + i);
    }
    pairRank[length - 1] = NO_PAIR;
    let parts = length;
    while (size > 0) {
      const key = pop();
      const rank = Math.floor(key / POSITION_SPAN);
      const id = key - rank * POSITION_SPAN;
      const right = next[id] ?? -1;
      if (right < 0 || pairRank[id] !== rank) continue;
      merges++;
      parts--;
      const after = next[right] ?? length;
      next[right] = -1;
      next[id] = after;
      if (after < length) {
        prev[after] = id;
        const r = rankOf(bytes, id, next[after] ?? length);
        pairRank[id] = r;
        if (r !== NO_PAIR) push(r * POSITION_SPAN + id);
      } else {
        pairRank[id] = NO_PAIR;
      }
      const before = prev[id] ?? -1;
      if (before >= 0) {
        const r = rankOf(bytes, before, after);
        pairRank[before] = r;
        if (r !== NO_PAIR) push(r * POSITION_SPAN + before);
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
