/**
 * Lazy, synchronous loading of the vocabularies shipped by js-tiktoken.
 *
 * Counting is synchronous (it sits inside admission, between parsing and reserving), so the rank
 * data is loaded with `require` on first use of an encoding rather than with a dynamic import. A
 * process that never counts o200k_base never pays its ~2 MB parse. Each table is loaded once per
 * process and shared by every tokenizer of that encoding.
 */

import { createRequire } from "node:module";
import type { BpeEncodingName } from "./pretokenizer.js";
import { parseRankTable, type RankData, type RankTable } from "./rank-table.js";

const require = createRequire(import.meta.url);

/** How long loading an encoding took, for diagnostics and the benchmark. */
export interface RankLoadTiming {
  encoding: BpeEncodingName;
  /** Time to require js-tiktoken's module (JavaScript parse of the data string). */
  requireMs: number;
  /** Time to decode the ranks and build the lookup table. */
  buildMs: number;
}

const tables = new Map<BpeEncodingName, RankTable>();
const timings: RankLoadTiming[] = [];

function requireRankData(encoding: BpeEncodingName): RankData {
  // Literal specifiers, so that bundlers and `npm ls` see exactly which data files are used.
  switch (encoding) {
    case "o200k_base":
      return require("js-tiktoken/ranks/o200k_base") as RankData;
    case "cl100k_base":
      return require("js-tiktoken/ranks/cl100k_base") as RankData;
  }
}

/** The rank table of `encoding`, loaded on first call. */
export function loadRankTable(encoding: BpeEncodingName): RankTable {
  const cached = tables.get(encoding);
  if (cached) return cached;
  const t0 = performance.now();
  const data = requireRankData(encoding);
  const t1 = performance.now();
  const table = parseRankTable(data);
  const t2 = performance.now();
  tables.set(encoding, table);
  timings.push({ encoding, requireMs: t1 - t0, buildMs: t2 - t1 });
  return table;
}

/** Load timings of the encodings loaded so far in this process. */
export function rankLoadTimings(): readonly RankLoadTiming[] {
  return timings;
}
