/**
 * The mock upstream's ledger: the tokens it really produced, per request and in total, so that tests
 * can compare a store's counters with the truth. Completion tokens of a stream are added as each
 * chunk is handed to the transport, so a reset or aborted stream counts only what was sent.
 */

import type { MockFault } from "./mock-request.js";

/**
 * Where a request stands: `open` while being answered; `completed`; `aborted` (the caller's signal
 * aborted: client gone or timed out); `reset` (the `reset-mid-stream` fault fired); `error` (a
 * `500`/`429` fault, answered before any work).
 */
export type MockRequestStatus = "open" | "completed" | "aborted" | "reset" | "error";

/** One request as the ledger saw it. */
export interface MockLedgerRecord {
  /** The completion id (`chatcmpl-mock-…`), also sent as the `x-request-id` header. */
  id: string;
  model: string;
  stream: boolean;
  n: number;
  fault: MockFault | undefined;
  /** Prompt tokens of an accepted request (0 for a `500`/`429` fault). */
  promptTokens: number;
  /** Completion tokens generated (non-streaming) or actually emitted (streaming), over all choices. */
  completionTokens: number;
  status: MockRequestStatus;
}

/** Totals over every request since the last reset. */
export interface MockLedgerTotals {
  requests: number;
  /** Requests still `open`. */
  open: number;
  promptTokens: number;
  completionTokens: number;
  totalTokens: number;
}

/** A snapshot of the ledger. */
export interface MockLedger {
  totals: MockLedgerTotals;
  /** The most recent records (at most the ledger's `maxRecords`), oldest first; copies. */
  records: MockLedgerRecord[];
}

/** A request's line in the ledger, updated as the request progresses. */
export interface MockLedgerEntry {
  readonly id: string;
  /** Adds completion tokens generated or emitted. */
  addCompletion(tokens: number): void;
  /** Records the final status; only the first call after `open` counts. */
  close(status: Exclude<MockRequestStatus, "open">): void;
}

/** The ledger's book-keeping side, used by the mock upstream. */
export interface MockLedgerBook {
  open(init: Omit<MockLedgerRecord, "completionTokens" | "status">): MockLedgerEntry;
  snapshot(): MockLedger;
  reset(): void;
}

/**
 * The totals and the most recent records. Why a ring of slots and not a Map by id (as before): with
 * a Map, every request past the bound inserted one entry and deleted the oldest, and the mock got
 * three times slower per request within a minute of load (measured: 41 → 132 µs of CPU per request
 * at 100 000 records); a ring overwrites one slot.
 */
interface Book {
  totals: MockLedgerTotals;
  ring: MockLedgerRecord[];
  /** Index of the slot the next record goes to. */
  next: number;
}

function emptyBook(): Book {
  return {
    totals: { requests: 0, open: 0, promptTokens: 0, completionTokens: 0, totalTokens: 0 },
    ring: [],
    next: 0,
  };
}

/** Default number of per-request records kept (totals always cover every request). */
export const DEFAULT_LEDGER_MAX_RECORDS = 100_000;

/**
 * Creates a ledger keeping at most `maxRecords` per-request records. Why the bound: a load test sends
 * millions of requests through one mock; totals stay exact while the oldest records are dropped.
 */
export function createMockLedger(maxRecords = DEFAULT_LEDGER_MAX_RECORDS): MockLedgerBook {
  let book = emptyBook();

  return {
    open(init) {
      // An entry keeps the book it was opened in: after reset() a request still in flight updates
      // the discarded book, never the fresh one.
      const own = book;
      // Spelled out rather than spread: a spread-and-extend literal is slow in V8, and the mock must
      // stay cheap under load (bench/gateway.bench.js).
      const record: MockLedgerRecord = {
        id: init.id,
        model: init.model,
        stream: init.stream,
        n: init.n,
        fault: init.fault,
        promptTokens: init.promptTokens,
        completionTokens: 0,
        status: "open",
      };
      own.totals.requests++;
      own.totals.open++;
      own.totals.promptTokens += init.promptTokens;
      own.totals.totalTokens += init.promptTokens;
      if (maxRecords > 0) {
        own.ring[own.next] = record;
        own.next = (own.next + 1) % maxRecords;
      }
      return {
        id: init.id,
        addCompletion(tokens) {
          record.completionTokens += tokens;
          own.totals.completionTokens += tokens;
          own.totals.totalTokens += tokens;
        },
        close(status) {
          if (record.status !== "open") return;
          record.status = status;
          own.totals.open--;
        },
      };
    },
    snapshot() {
      // Oldest first: once the ring is full, the slot to be overwritten next holds the oldest.
      const { ring, next } = book;
      const ordered = ring.length < maxRecords ? ring : [...ring.slice(next), ...ring.slice(0, next)];
      return { totals: { ...book.totals }, records: ordered.map((r) => ({ ...r })) };
    },
    reset() {
      book = emptyBook();
    },
  };
}
