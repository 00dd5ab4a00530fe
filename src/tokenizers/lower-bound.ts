/**
 * Cheap, provable lower bounds on the token count of a byte-level BPE encoding.
 *
 * Any encoding of a text is a segmentation of its UTF-8 bytes into vocabulary tokens, and BPE's
 * is one of them. So if every token is at most `maxTokenBytes` long, a text of B bytes has at least
 * ceil(B / maxTokenBytes) tokens; and if no token holds byte b more than `maxByteCount[b]` times, a
 * text with n copies of b has at least ceil(n / maxByteCount[b]) tokens. The second bound is what
 * makes pathological inputs cheap to reject: o200k_base has no token with more than 8 `a`s, so a run
 * of 100 000 `a`s has at least 12 500 tokens, decided without running BPE on it.
 */

import type { RankTable } from "./rank-table.js";
import { addUtf8Histogram } from "./utf8-scan.js";

/** Lower bound from a byte histogram and its total. */
export function histogramLowerBound(table: RankTable, histogram: Uint32Array, totalBytes: number): number {
  let bound = Math.ceil(totalBytes / table.maxTokenBytes);
  const maxByteCount = table.maxByteCount;
  for (let b = 0; b < 256; b++) {
    const n = histogram[b] ?? 0;
    if (n === 0) continue;
    const perToken = maxByteCount[b] ?? 1;
    const needed = Math.ceil(n / perToken);
    if (needed > bound) bound = needed;
  }
  return bound;
}

/** Lower bound on the tokens of `bytes[0..length)`. */
export function bytesLowerBound(table: RankTable, bytes: Uint8Array, length: number, scratch: Uint32Array): number {
  scratch.fill(0);
  for (let i = 0; i < length; i++) {
    const b = bytes[i] ?? 0;
    scratch[b] = (scratch[b] ?? 0) + 1;
  }
  return histogramLowerBound(table, scratch, length);
}

/** Lower bound on the tokens of `text[from..to)`, in one pass over the string. */
export function textLowerBound(
  table: RankTable,
  text: string,
  from: number,
  to: number,
  scratch: Uint32Array,
): number {
  scratch.fill(0);
  const total = addUtf8Histogram(text, from, to, scratch);
  return histogramLowerBound(table, scratch, total);
}
