/**
 * Shared vectors for the store arithmetic. Each vector is a script of operations with the exact
 * results every Store must produce; the memory store and the Redis store run the same list.
 */

/** A scope in a vector: its limit and window end, relative to t=0. */
export interface VectorScope {
  limit: number;
  resetAtMs: number;
}

export type VectorStep =
  | {
      op: "reserve";
      id: string;
      tokens: number;
      scopes: string[];
      at: number;
      ttl?: number;
      expect:
        | { ok: true; duplicate?: boolean; committed?: number[] }
        | { ok: false; scopeIndex: number; committed?: number };
    }
  | {
      op: "settle";
      id: string;
      actual: number;
      scopes: string[];
      at: number;
      /** Settle as abandoned (SettleRequest.abandon). */
      abandon?: boolean;
      expect: string;
    }
  | { op: "read"; keys: string[]; at: number; expect: Array<[used: number, reserved: number]> };

export interface StoreVector {
  name: string;
  scopes: Record<string, VectorScope>;
  steps: VectorStep[];
}

const day = { limit: 1000, resetAtMs: 86_400_000 };
const minute = { limit: 300, resetAtMs: 60_000 };

export const STORE_VECTORS: StoreVector[] = [
  {
    name: "an abandoned reservation is released and not remembered: the same id is a new request",
    scopes: { u: day, g: minute },
    steps: [
      { op: "reserve", id: "a", tokens: 200, scopes: ["u", "g"], at: 0, expect: { ok: true } },
      { op: "settle", id: "a", actual: 0, scopes: ["u", "g"], at: 1, abandon: true, expect: "settled" },
      {
        op: "read",
        keys: ["u", "g"],
        at: 2,
        expect: [
          [0, 0],
          [0, 0],
        ],
      },
      // Abandoned twice (a resent release): nothing is live, nothing changes.
      { op: "settle", id: "a", actual: 0, scopes: ["u", "g"], at: 3, abandon: true, expect: "expired" },
      {
        op: "reserve",
        id: "a",
        tokens: 200,
        scopes: ["u", "g"],
        at: 4,
        expect: { ok: true, duplicate: false, committed: [200, 200] },
      },
      { op: "settle", id: "a", actual: 150, scopes: ["u", "g"], at: 5, expect: "settled" },
      // Once settled, an abandon changes nothing.
      { op: "settle", id: "a", actual: 0, scopes: ["u", "g"], at: 6, abandon: true, expect: "duplicate" },
      {
        op: "read",
        keys: ["u", "g"],
        at: 7,
        expect: [
          [150, 0],
          [150, 0],
        ],
      },
    ],
  },
  {
    name: "reserve then settle below the reservation releases the rest",
    scopes: { u: day, g: minute },
    steps: [
      {
        op: "reserve",
        id: "a",
        tokens: 250,
        scopes: ["u", "g"],
        at: 0,
        expect: { ok: true, committed: [250, 250] },
      },
      {
        op: "read",
        keys: ["u", "g"],
        at: 1,
        expect: [
          [0, 250],
          [0, 250],
        ],
      },
      { op: "settle", id: "a", actual: 120, scopes: ["u", "g"], at: 2, expect: "settled" },
      {
        op: "read",
        keys: ["u", "g"],
        at: 3,
        expect: [
          [120, 0],
          [120, 0],
        ],
      },
    ],
  },
  {
    name: "all or nothing: one full scope refuses the whole reservation",
    scopes: { u: day, g: minute },
    steps: [
      { op: "reserve", id: "a", tokens: 200, scopes: ["u", "g"], at: 0, expect: { ok: true } },
      {
        op: "reserve",
        id: "b",
        tokens: 150,
        scopes: ["u", "g"],
        at: 1,
        expect: { ok: false, scopeIndex: 1, committed: 200 },
      },
      {
        op: "read",
        keys: ["u", "g"],
        at: 2,
        expect: [
          [0, 200],
          [0, 200],
        ],
      },
      { op: "reserve", id: "c", tokens: 100, scopes: ["u", "g"], at: 3, expect: { ok: true } },
      {
        op: "read",
        keys: ["u", "g"],
        at: 4,
        expect: [
          [0, 300],
          [0, 300],
        ],
      },
    ],
  },
  {
    name: "exact fit is admitted, one more token is not",
    scopes: { u: day },
    steps: [
      { op: "reserve", id: "a", tokens: 999, scopes: ["u"], at: 0, expect: { ok: true } },
      { op: "reserve", id: "b", tokens: 2, scopes: ["u"], at: 0, expect: { ok: false, scopeIndex: 0 } },
      { op: "reserve", id: "c", tokens: 1, scopes: ["u"], at: 0, expect: { ok: true } },
      { op: "read", keys: ["u"], at: 0, expect: [[0, 1000]] },
    ],
  },
  {
    name: "reserve and settle are idempotent by id",
    scopes: { u: day },
    steps: [
      { op: "reserve", id: "a", tokens: 100, scopes: ["u"], at: 0, expect: { ok: true } },
      { op: "reserve", id: "a", tokens: 100, scopes: ["u"], at: 1, expect: { ok: true, duplicate: true } },
      { op: "read", keys: ["u"], at: 2, expect: [[0, 100]] },
      { op: "settle", id: "a", actual: 80, scopes: ["u"], at: 3, expect: "settled" },
      { op: "settle", id: "a", actual: 80, scopes: ["u"], at: 4, expect: "duplicate" },
      { op: "reserve", id: "a", tokens: 100, scopes: ["u"], at: 5, expect: { ok: true, duplicate: true } },
      { op: "read", keys: ["u"], at: 6, expect: [[80, 0]] },
    ],
  },
  {
    name: "settle with zero releases everything",
    scopes: { u: day },
    steps: [
      { op: "reserve", id: "a", tokens: 400, scopes: ["u"], at: 0, expect: { ok: true } },
      { op: "settle", id: "a", actual: 0, scopes: ["u"], at: 1, expect: "settled" },
      { op: "read", keys: ["u"], at: 2, expect: [[0, 0]] },
    ],
  },
  {
    name: "an unsettled reservation expires by itself; a late settlement still charges the actual usage",
    scopes: { u: day },
    steps: [
      { op: "reserve", id: "a", tokens: 600, scopes: ["u"], at: 0, ttl: 1000, expect: { ok: true } },
      { op: "reserve", id: "b", tokens: 600, scopes: ["u"], at: 999, expect: { ok: false, scopeIndex: 0 } },
      { op: "read", keys: ["u"], at: 1000, expect: [[0, 0]] },
      { op: "reserve", id: "c", tokens: 600, scopes: ["u"], at: 1001, ttl: 5000, expect: { ok: true } },
      { op: "settle", id: "a", actual: 300, scopes: ["u"], at: 1002, expect: "expired" },
      { op: "read", keys: ["u"], at: 1003, expect: [[300, 600]] },
      { op: "settle", id: "a", actual: 300, scopes: ["u"], at: 1004, expect: "duplicate" },
      { op: "read", keys: ["u"], at: 1005, expect: [[300, 600]] },
    ],
  },
  {
    name: "actual usage above the reservation is charged in full (never under-counted)",
    scopes: { u: day },
    steps: [
      { op: "reserve", id: "a", tokens: 100, scopes: ["u"], at: 0, expect: { ok: true } },
      { op: "settle", id: "a", actual: 130, scopes: ["u"], at: 1, expect: "settled" },
      { op: "read", keys: ["u"], at: 2, expect: [[130, 0]] },
    ],
  },
  {
    name: "a reservation larger than the whole limit is refused and changes nothing",
    scopes: { u: day, g: minute },
    steps: [
      {
        op: "reserve",
        id: "a",
        tokens: 1001,
        scopes: ["u", "g"],
        at: 0,
        expect: { ok: false, scopeIndex: 0 },
      },
      {
        op: "read",
        keys: ["u", "g"],
        at: 1,
        expect: [
          [0, 0],
          [0, 0],
        ],
      },
    ],
  },
  {
    name: "settled usage counts against later reservations",
    scopes: { u: day },
    steps: [
      { op: "reserve", id: "a", tokens: 700, scopes: ["u"], at: 0, expect: { ok: true } },
      { op: "settle", id: "a", actual: 650, scopes: ["u"], at: 1, expect: "settled" },
      { op: "reserve", id: "b", tokens: 351, scopes: ["u"], at: 2, expect: { ok: false, scopeIndex: 0 } },
      { op: "reserve", id: "c", tokens: 350, scopes: ["u"], at: 3, expect: { ok: true, committed: [1000] } },
      { op: "read", keys: ["u"], at: 4, expect: [[650, 350]] },
    ],
  },
  {
    name: "a zero-token reservation expires without disturbing later reservations",
    scopes: { u: day },
    steps: [
      {
        op: "reserve",
        id: "z",
        tokens: 0,
        scopes: ["u"],
        at: 0,
        ttl: 10,
        expect: { ok: true, committed: [0] },
      },
      { op: "reserve", id: "a", tokens: 5, scopes: ["u"], at: 20, expect: { ok: true, committed: [5] } },
      { op: "read", keys: ["u"], at: 21, expect: [[0, 5]] },
      { op: "settle", id: "z", actual: 0, scopes: ["u"], at: 22, expect: "expired" },
      { op: "settle", id: "a", actual: 5, scopes: ["u"], at: 23, expect: "settled" },
      { op: "read", keys: ["u"], at: 24, expect: [[5, 0]] },
    ],
  },
];
