/** A call waiting for its batch: what was asked and how to answer it. */
export interface Pending<Q, R> {
  req: Q;
  resolve: (r: R) => void;
  reject: (e: unknown) => void;
}

/** What a {@link Batcher} needs from its store. */
export interface BatchSender<Q, R> {
  /** At most this many calls share one script call. */
  maxBatch: number;
  /**
   * How many batches may be on the wire at once; the waiting calls are split evenly over the free
   * slots. Why 2: with one batch in flight, Node and Redis took turns (each ~50 % busy at 64 in
   * flight, measured from /proc): every waiting caller rode in the one batch, so Redis idled while
   * Node parsed the reply and built the next one. Two halves overlap the two sides (~1.7× the
   * throughput); 4 and 8 were no faster and cost more per call, since each batch has a fixed cost
   * on both sides (docs/bench-redis.md).
   */
  maxInFlight: number;
  /**
   * Optional: how much a call adds to its batch's arithmetic (e.g. the sum of its token counts).
   * A batch is cut before the total would pass Number.MAX_SAFE_INTEGER, so every sum the script
   * makes on Lua doubles stays exact. A call always fits in a batch of its own.
   */
  weigh?: (req: Q) => number;
  /**
   * Writes one batch to the connection, in queue order, and later calls `done(batch, error?)`
   * exactly once with the reply's results handed to each caller, or the error that failed them all.
   */
  send: (batch: Array<Pending<Q, R>>, done: (batch: Array<Pending<Q, R>>, e?: unknown) => void) => void;
}

/**
 * Queues calls and hands them to the store in batches: a call made while `maxInFlight` batches are
 * on the wire waits for the next free slot and shares that slot's one script call with the calls
 * that waited with it. A lone call (nothing on the wire) is sent in the same macrotask, one
 * microtask later. Order is kept: batches are handed to `send` in queue order, and `send` writes
 * them to the one connection in that order, where Redis runs them in that order.
 * Callbacks, not async functions: at one call in flight every promise step is on its latency.
 */
export class Batcher<Q, R> {
  private readonly queue: Array<Pending<Q, R>> = [];
  private inFlight = 0;
  private scheduled = false;
  private readonly finished = (batch: Array<Pending<Q, R>>, e?: unknown): void => {
    this.inFlight--;
    if (this.queue.length > 0) this.flush();
    if (e === undefined) return;
    for (const p of batch) p.reject(e);
  };

  constructor(private readonly sender: BatchSender<Q, R>) {}

  /** Queues a call; its promise is settled from its batch's reply. */
  add(req: Q): Promise<R> {
    return new Promise((resolve, reject) => {
      this.queue.push({ req, resolve, reject });
      if (this.inFlight < this.sender.maxInFlight && !this.scheduled) {
        this.scheduled = true;
        queueMicrotask(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.scheduled = false;
    while (this.queue.length > 0 && this.inFlight < this.sender.maxInFlight) {
      const slots = this.sender.maxInFlight - this.inFlight;
      const n = Math.min(this.sender.maxBatch, Math.ceil(this.queue.length / slots), this.fitting());
      const batch = this.queue.splice(0, n);
      this.inFlight++;
      this.sender.send(batch, this.finished);
    }
  }

  /** How many of the waiting calls, from the front, keep the batch's weight exact (at least 1). */
  private fitting(): number {
    const weigh = this.sender.weigh;
    if (!weigh) return this.queue.length;
    let total = 0;
    const n = Math.min(this.queue.length, this.sender.maxBatch);
    for (let i = 0; i < n; i++) {
      total += weigh((this.queue[i] as Pending<Q, R>).req);
      if (total > Number.MAX_SAFE_INTEGER) return Math.max(1, i);
    }
    return n;
  }
}
