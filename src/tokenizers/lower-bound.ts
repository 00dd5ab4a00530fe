/**
 * Cheap, provable lower bounds on the token count of a byte-level BPE encoding.
 *
 * Any encoding of a text is a segmentation of its UTF-8 bytes into vocabulary tokens, and BPE's is
 * one of them. So if every token is at most `maxTokenBytes` long, a text of B bytes has at least
 * ceil(B / maxTokenBytes) tokens; and if no token holds more than M bytes of some class (a single
 * byte value, or a class such as "ASCII letter" or "lead byte of a 4-byte character"), a text with
 * n bytes of that class has at least ceil(n / M) tokens. These bounds hold for any stretch of text,
 * whatever its pieces, which is what lets bounded counting reject pathological input without BPE:
 * o200k_base has no token with more than 8 `a`s, 26 ASCII letters, or one emoji.
 */

import { BYTE_CLASS_MASK, BYTE_CLASSES, type RankTable } from "./rank-table.js";
import { addUtf8Histogram, encodeUtf8Into, isSurrogatePairAt } from "./utf8-scan.js";

/** Lower bound from a 256-entry byte histogram and its total. */
export function histogramLowerBound(table: RankTable, histogram: Uint32Array, totalBytes: number): number {
  let bound = Math.ceil(totalBytes / table.maxTokenBytes);
  const classCounts = new Float64Array(BYTE_CLASSES.length);
  for (let b = 0; b < 256; b++) {
    const n = histogram[b] ?? 0;
    if (n === 0) continue;
    const needed = Math.ceil(n / (table.maxByteCount[b] ?? 1));
    if (needed > bound) bound = needed;
    for (let m = BYTE_CLASS_MASK[b] ?? 0, c = 0; m !== 0; m >>= 1, c++) {
      if ((m & 1) !== 0) classCounts[c] = (classCounts[c] ?? 0) + n;
    }
  }
  for (let c = 0; c < classCounts.length; c++) {
    const n = classCounts[c] ?? 0;
    if (n === 0) continue;
    const needed = Math.ceil(n / Math.max(1, table.maxClassCount[c] ?? 1));
    if (needed > bound) bound = needed;
  }
  return bound;
}

/** Lower bound on the tokens of `bytes[0..length)`. */
export function bytesLowerBound(
  table: RankTable,
  bytes: Uint8Array,
  length: number,
  scratch: Uint32Array,
): number {
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

/**
 * The shortest prefix length of `text` that provably has more than `cap` tokens, or `text.length`
 * when no prefix is proven so. No prefix at least this long fits in `cap` tokens, so truncation
 * never needs to look past it; the scan stops there, so its cost is bounded by `cap`, not by the
 * length of the text.
 */
export function provenOverflowPrefix(table: RankTable, text: string, cap: number): number {
  const byteLimit = new Float64Array(256);
  for (let b = 0; b < 256; b++) byteLimit[b] = cap * (table.maxByteCount[b] ?? 1);
  const classLimit = new Float64Array(BYTE_CLASSES.length);
  for (let c = 0; c < classLimit.length; c++) classLimit[c] = cap * Math.max(1, table.maxClassCount[c] ?? 1);
  const totalLimit = cap * table.maxTokenBytes;
  const histogram = new Uint32Array(256);
  const classCounts = new Uint32Array(BYTE_CLASSES.length);
  const bytes = new Uint8Array(8);
  let total = 0;
  for (let i = 0; i < text.length; ) {
    const units = isSurrogatePairAt(text, i) ? 2 : 1;
    const n = encodeUtf8Into(text, i, i + units, bytes);
    i += units;
    total += n;
    let over = total > totalLimit;
    for (let k = 0; k < n; k++) {
      const b = bytes[k] ?? 0;
      const count = (histogram[b] ?? 0) + 1;
      histogram[b] = count;
      if (count > (byteLimit[b] ?? 0)) over = true;
      for (let m = BYTE_CLASS_MASK[b] ?? 0, cl = 0; m !== 0; m >>= 1, cl++) {
        if ((m & 1) === 0) continue;
        const classCount = (classCounts[cl] ?? 0) + 1;
        classCounts[cl] = classCount;
        if (classCount > (classLimit[cl] ?? 0)) over = true;
      }
    }
    if (over) return i;
  }
  return text.length;
}
