import { describe, expect, it } from "vitest";
import type { Logger } from "../core/logger.js";
import type { Revisioned } from "../stores/types.js";
import { createPolledTable } from "./polled-table.js";

function recordingLogger(): Logger & { lines: string[] } {
  const lines: string[] = [];
  return {
    lines,
    info: (_o, m = "") => void lines.push(`info ${m}`),
    warn: (_o, m = "") => void lines.push(`warn ${m}`),
    error: (_o, m = "") => void lines.push(`error ${m}`),
  };
}

/** A table read whose answers the test releases one by one, in any order. */
function controlledReads() {
  const pending: Array<{ known: string | undefined; answer: (r: Revisioned<string[]> | Error) => void }> = [];
  return {
    pending,
    read: (known: string | undefined) =>
      new Promise<Revisioned<string[]>>((resolve, reject) => {
        pending.push({ known, answer: (r) => (r instanceof Error ? reject(r) : resolve(r)) });
      }),
  };
}

describe("polled table", () => {
  it("drops the answer of a read that started before a later one that already finished", async () => {
    const reads = controlledReads();
    let builds = 0;
    const table = createPolledTable<string[], string[]>({
      what: "things",
      read: reads.read,
      build: (e) => {
        builds++;
        return e;
      },
      initial: [],
      refreshMs: 0,
      logger: recordingLogger(),
    });
    const poll = table.refresh(); // a background poll, started before an admin write
    const afterWrite = table.refresh(); // the re-read the admin call makes once its write is done
    reads.pending[1]?.answer({ revision: "r2", entries: ["new"] });
    await afterWrite;
    expect(table.current).toEqual(["new"]);
    reads.pending[0]?.answer({ revision: "r1", entries: ["old"] });
    await poll;
    expect(table.current).toEqual(["new"]);
    expect(builds).toBe(1);
  });

  it("asks with the revision it holds, rebuilds only on change, keeps the last state when the store fails (one warning)", async () => {
    const reads = controlledReads();
    const logger = recordingLogger();
    let builds = 0;
    const table = createPolledTable<string[], string[]>({
      what: "things",
      read: reads.read,
      build: (e) => {
        builds++;
        return e;
      },
      initial: [],
      refreshMs: 0,
      logger,
    });
    const step = async (answer: Revisioned<string[]> | Error) => {
      const p = table.refresh();
      const read = reads.pending.at(-1);
      read?.answer(answer);
      await p;
      return read?.known;
    };
    expect(await step({ revision: "r1", entries: ["a"] })).toBeUndefined();
    expect(await step({ revision: "r1" })).toBe("r1");
    expect(builds).toBe(1);
    expect(await step(new Error("down"))).toBe("r1");
    expect(await step(new Error("down"))).toBe("r1");
    expect(table.current).toEqual(["a"]);
    expect(logger.lines.filter((l) => l.startsWith("warn"))).toHaveLength(1);
    await step({ revision: "r2", entries: ["b"] });
    expect(table.current).toEqual(["b"]);
    expect(logger.lines.at(-1)).toMatch(/^info things read from the store again/);
  });

  it("is not loaded until a read succeeds, and reads the whole table now and then whatever the revision", async () => {
    // A store whose entries changed by hand without a new revision (e.g. a key removed with HDEL).
    let entries = ["k1", "k2"];
    let down = true;
    const asked: Array<string | undefined> = [];
    const table = createPolledTable<string[], string[]>({
      what: "things",
      read: async (known) => {
        asked.push(known);
        if (down) throw new Error("store down");
        return known === "r1" ? { revision: "r1" } : { revision: "r1", entries: [...entries] };
      },
      build: (e) => e,
      initial: [],
      refreshMs: 0,
      fullReadMs: 30,
      logger: recordingLogger(),
    });
    await table.refresh();
    expect(table.loaded).toBe(false);
    down = false;
    await table.refresh();
    expect(table.loaded).toBe(true);
    expect(table.current).toEqual(["k1", "k2"]);
    entries = ["k1"];
    await table.refresh(); // revision unchanged: the cheap read
    expect(table.current).toEqual(["k1", "k2"]);
    await new Promise((r) => setTimeout(r, 40));
    await table.refresh(); // past fullReadMs: the whole table again
    expect(table.current).toEqual(["k1"]);
    expect(asked).toEqual([undefined, undefined, "r1", undefined]);
  });
});
