import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { createMergeQueue, keyPosition, keyRank } from "./merge-queue.js";

describe("merge queue", () => {
  it("pops entries in (rank, position) order, whatever the push order", () => {
    const queue = createMergeQueue(64);
    const operation = fc.oneof(
      fc.record({ push: fc.tuple(fc.integer({ min: 0, max: 63 }), fc.integer({ min: 0, max: 200 })) }),
      fc.constant({ pop: true as const }),
    );
    fc.assert(
      fc.property(fc.array(operation, { maxLength: 300 }), (operations) => {
        queue.reset();
        const reference: [number, number][] = [];
        const popped: [number, number][] = [];
        const expected: [number, number][] = [];
        for (const op of operations) {
          if ("push" in op) {
            reference.push(op.push);
          } else {
            reference.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
            const smallest = reference.shift();
            const key = queue.pop();
            if (smallest === undefined) {
              expect(key).toBe(-1);
            } else {
              expected.push(smallest);
              popped.push([keyRank(key), keyPosition(key)]);
            }
          }
          if ("push" in op) queue.push(op.push[0], op.push[1]);
        }
        expect(popped).toEqual(expected);
      }),
      { numRuns: 500 },
    );
  });

  it("keeps entries pushed in increasing positions per rank out of the heap, in order", () => {
    const queue = createMergeQueue(8);
    for (let p = 0; p < 1_000; p++) queue.push(p % 3, p);
    let last = -1;
    for (let key = queue.pop(); key >= 0; key = queue.pop()) {
      expect(key).toBeGreaterThan(last);
      last = key;
    }
    expect(keyRank(last)).toBe(2);
  });
});
