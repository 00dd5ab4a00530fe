/**
 * The priority queue of candidate merges for long pieces: entries are (rank, position), popped in
 * increasing (rank, position) order, the order tiktoken merges in.
 *
 * A plain binary heap works but a 100 000-byte run pushes ~300 000 entries and each pop walks ~18
 * levels of a heap too big for the cache. Merging goes left to right at each rank, so nearly every
 * entry pushed at a rank has a larger position than the last one pushed at that rank. Such entries
 * are appended to a per-rank FIFO list instead; only the head of each list sits in the heap, and
 * the rare out-of-order entry goes to the heap directly. The heap then holds about one entry per
 * distinct rank in play (a few dozen for a run of one character), and the pop order is unchanged:
 * a list's head is its smallest entry, so the heap's minimum is still the global minimum.
 */

/** Keys are rank * 2^32 + position: exact in a double while rank < 2^21. */
const POSITION_SPAN = 4294967296;

/** A min-priority queue of (rank, position) pairs. */
export interface MergeQueue {
  /** Empties the queue (call before each piece). */
  reset(): void;
  push(rank: number, position: number): void;
  /** Smallest entry as rank * 2^32 + position, or -1 when empty. */
  pop(): number;
}

/** Splits a key returned by {@link MergeQueue.pop}. */
export function keyRank(key: number): number {
  return Math.floor(key / POSITION_SPAN);
}

/** Position of a key returned by {@link MergeQueue.pop}. */
export function keyPosition(key: number): number {
  return key - Math.floor(key / POSITION_SPAN) * POSITION_SPAN;
}

/** Creates a queue for ranks in [0, rankCount). */
export function createMergeQueue(rankCount: number): MergeQueue {
  let heap = new Float64Array(256);
  let size = 0;
  // Per-rank FIFO lists in a node pool.
  const head = new Int32Array(rankCount).fill(-1);
  const tail = new Int32Array(rankCount).fill(-1);
  let nodePosition = new Int32Array(1024);
  let nodeNext = new Int32Array(1024);
  let nodes = 0;
  let touched: number[] = [];

  function heapPush(key: number): void {
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
  }

  function heapPop(): number {
    const top = heap[0] ?? 0;
    const last = heap[--size] ?? 0;
    if (size === 0) return top;
    // Floyd's pop: walk the hole down along the smaller children, then sift the last entry up.
    let i = 0;
    for (;;) {
      let child = 2 * i + 1;
      if (child >= size) break;
      if (child + 1 < size && (heap[child + 1] ?? 0) < (heap[child] ?? 0)) child++;
      heap[i] = heap[child] ?? 0;
      i = child;
    }
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const p = heap[parent] ?? 0;
      if (p <= last) break;
      heap[i] = p;
      i = parent;
    }
    heap[i] = last;
    return top;
  }

  function newNode(position: number): number {
    if (nodes === nodePosition.length) {
      const grownPosition = new Int32Array(nodes * 2);
      grownPosition.set(nodePosition);
      nodePosition = grownPosition;
      const grownNext = new Int32Array(nodes * 2);
      grownNext.set(nodeNext);
      nodeNext = grownNext;
    }
    nodePosition[nodes] = position;
    nodeNext[nodes] = -1;
    return nodes++;
  }

  return {
    reset() {
      for (const rank of touched) {
        head[rank] = -1;
        tail[rank] = -1;
      }
      touched = [];
      size = 0;
      nodes = 0;
      if (nodePosition.length > 1 << 20) {
        nodePosition = new Int32Array(1024);
        nodeNext = new Int32Array(1024);
      }
      if (heap.length > 1 << 20) heap = new Float64Array(256);
    },
    push(rank, position) {
      const last = tail[rank] ?? -1;
      if (last === -1) {
        const node = newNode(position);
        head[rank] = node;
        tail[rank] = node;
        touched.push(rank);
        heapPush(rank * POSITION_SPAN + position);
      } else if (position > (nodePosition[last] ?? 0)) {
        const node = newNode(position);
        nodeNext[last] = node;
        tail[rank] = node;
      } else {
        heapPush(rank * POSITION_SPAN + position);
      }
    },
    pop() {
      if (size === 0) return -1;
      const key = heapPop();
      const rank = Math.floor(key / POSITION_SPAN);
      const position = key - rank * POSITION_SPAN;
      const first = head[rank] ?? -1;
      if (first !== -1 && nodePosition[first] === position) {
        // The list's head left the heap: its successor takes its place there.
        const second = nodeNext[first] ?? -1;
        head[rank] = second;
        if (second === -1) tail[rank] = -1;
        else heapPush(rank * POSITION_SPAN + (nodePosition[second] ?? 0));
      }
      return key;
    },
  };
}
