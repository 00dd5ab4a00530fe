/**
 * The vocabulary of a byte-level BPE encoding, stored for allocation-free lookups.
 *
 * Tokens are byte strings; the rank of a token is its id and its merge priority. The table keeps
 * every token's bytes in one flat array and an open-addressing hash index over them, so that the
 * encoder can ask "is bytes[start..end) a token, and of which rank?" straight from a scratch byte
 * buffer, without building a string key per lookup (that costs an allocation and a hash of a fresh
 * string each time, which dominated the profile of a Map-keyed version).
 */

/** Rank returned for a byte sequence that is not a token. */
export const NOT_A_TOKEN = -1;

/** A loaded vocabulary with its lookup index and the per-byte statistics used by lower bounds. */
export interface RankTable {
  /** Number of ordinary tokens (ranks are 0..size-1, contiguous). */
  readonly size: number;
  /** Length in bytes of the longest token. */
  readonly maxTokenBytes: number;
  /**
   * For each byte value b, the largest number of times b occurs in a single token. Every token of
   * an encoding of text holding n copies of b covers at most this many of them, so the text has at
   * least ceil(n / maxByteCount[b]) tokens.
   */
  readonly maxByteCount: Uint16Array;
  /**
   * For each class of {@link BYTE_CLASSES}, the largest number of bytes of that class in a single
   * token (o200k_base: at most 26 ASCII letters, 3 digits, one 4-byte-sequence lead byte, i.e.
   * one emoji or other astral character, per token).
   */
  readonly maxClassCount: Uint16Array;
  /** Rank of `bytes[start..end)`, or {@link NOT_A_TOKEN}. */
  rankOf(bytes: Uint8Array, start: number, end: number): number;
  /** Rank of `bytes[start..end)` given its hash (from {@link hashStep} steps starting at 0). */
  rankOfHashed(bytes: Uint8Array, start: number, end: number, hash: number): number;
  /** `powers[k]` is HASH_MULTIPLIER^k mod 2^32, for k up to maxTokenBytes. */
  readonly powers: Int32Array;
  /** Bytes of the token of rank `rank` (a view, do not modify). */
  tokenBytes(rank: number): Uint8Array;
}

/** Rank data as js-tiktoken ships it: one or more lines `! <firstRank> <base64> <base64> ...`. */
export interface RankData {
  pat_str: string;
  special_tokens: Record<string, number>;
  bpe_ranks: string;
}

/** Multiplier of the polynomial byte hash `h = h * HASH_MULTIPLIER + byte` (mod 2^32). */
export const HASH_MULTIPLIER = 0x01000193;

/**
 * One step of the polynomial byte hash shared by the table and its callers. Being polynomial, the
 * hash of a concatenation is `hash(a) * HASH_MULTIPLIER^len(b) + hash(b)`, so the merger can hash a
 * candidate pair from its two parts' hashes in O(1) (see {@link RankTable.powers}).
 */
export function hashStep(hash: number, byte: number): number {
  return (Math.imul(hash, HASH_MULTIPLIER) + byte) | 0;
}

/**
 * Byte classes whose per-token maxima give lower bounds much tighter than single bytes for the
 * usual long runs: letters, digits, and the lead bytes of 2-, 3- and 4-byte UTF-8 sequences (one
 * lead byte per non-ASCII character). `ranges` are inclusive byte ranges.
 */
export const BYTE_CLASSES: readonly { name: string; ranges: readonly (readonly [number, number])[] }[] = [
  {
    name: "ascii-letter",
    ranges: [
      [0x41, 0x5a],
      [0x61, 0x7a],
    ],
  },
  { name: "ascii-digit", ranges: [[0x30, 0x39]] },
  {
    name: "ascii-punctuation",
    ranges: [
      [0x21, 0x2f],
      [0x3a, 0x40],
      [0x5b, 0x60],
      [0x7b, 0x7e],
    ],
  },
  { name: "utf8-continuation", ranges: [[0x80, 0xbf]] },
  { name: "utf8-lead-2", ranges: [[0xc0, 0xdf]] },
  { name: "utf8-lead-3", ranges: [[0xe0, 0xef]] },
  { name: "utf8-lead-3-cjk", ranges: [[0xe4, 0xe9]] },
  { name: "utf8-lead-4", ranges: [[0xf0, 0xf7]] },
  { name: "non-ascii", ranges: [[0x80, 0xff]] },
];

/** `BYTE_CLASS_MASK[b]` has bit c set when byte b belongs to class c of {@link BYTE_CLASSES}. */
export const BYTE_CLASS_MASK: Uint16Array = (() => {
  const mask = new Uint16Array(256);
  BYTE_CLASSES.forEach((byteClass, c) => {
    for (const [lo, hi] of byteClass.ranges)
      for (let b = lo; b <= hi; b++) mask[b] = (mask[b] ?? 0) | (1 << c);
  });
  return mask;
})();

const BASE64_VALUE: Int8Array = (() => {
  const table = new Int8Array(128).fill(-1);
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  for (let i = 0; i < alphabet.length; i++) table[alphabet.charCodeAt(i)] = i;
  return table;
})();

/**
 * Parses js-tiktoken's rank data into a {@link RankTable}.
 *
 * Decoding is a single pass over the base64 text into one byte array (a per-token
 * `Buffer.from(x, "base64")` took ~300 ms for o200k_base; this takes a fraction of that).
 */
export function parseRankTable(data: RankData): RankTable {
  const text = data.bpe_ranks;
  // Decoded size is at most 3/4 of the text; one array for every token's bytes.
  const bytes = new Uint8Array(Math.ceil((text.length * 3) / 4) + 4);
  let starts = new Uint32Array(1 << 16);
  let ranksOfEntry = new Int32Array(1 << 16);
  let entries = 0;
  let written = 0;
  let nextRank = 0;
  let i = 0;
  const n = text.length;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (c === 32 /* space */ || c === 10 /* \n */ || c === 13) {
      i++;
      continue;
    }
    if (c === 33 /* ! */) {
      // "! <rank>": the rank of the next token.
      i++;
      while (i < n && text.charCodeAt(i) === 32) i++;
      let value = 0;
      while (i < n) {
        const d = text.charCodeAt(i) - 48;
        if (d < 0 || d > 9) break;
        value = value * 10 + d;
        i++;
      }
      nextRank = value;
      continue;
    }
    // One base64 token up to the next separator.
    if (entries === starts.length) {
      const grownStarts = new Uint32Array(entries * 2);
      grownStarts.set(starts);
      starts = grownStarts;
      const grownRanks = new Int32Array(entries * 2);
      grownRanks.set(ranksOfEntry);
      ranksOfEntry = grownRanks;
    }
    starts[entries] = written;
    ranksOfEntry[entries] = nextRank++;
    entries++;
    let acc = 0;
    let bits = 0;
    while (i < n) {
      const ch = text.charCodeAt(i);
      if (ch === 32 || ch === 10 || ch === 13) break;
      i++;
      if (ch === 61 /* = */) continue;
      const v = ch < 128 ? (BASE64_VALUE[ch] ?? -1) : -1;
      if (v < 0) throw new Error(`rank data: invalid base64 character at offset ${i - 1}`);
      acc = ((acc << 6) | v) & 0xffffff;
      bits += 6;
      if (bits >= 8) {
        bits -= 8;
        bytes[written++] = (acc >> bits) & 0xff;
      }
    }
  }
  return buildTable(bytes, starts, ranksOfEntry, entries, written);
}

function buildTable(
  flat: Uint8Array,
  entryStarts: Uint32Array,
  entryRanks: Int32Array,
  entries: number,
  totalBytes: number,
): RankTable {
  let size = 0;
  for (let e = 0; e < entries; e++) size = Math.max(size, (entryRanks[e] ?? 0) + 1);
  if (size !== entries) {
    // Why: the encoder maps ranks to ids 1:1 and sizes arrays by rank; a gap would mean a vocabulary
    // this code has not been checked against, so refuse it rather than count wrongly.
    throw new Error(`rank data: ranks are not contiguous (${entries} tokens, highest rank ${size - 1})`);
  }
  const { start, bytes } = layOutByRank(flat, entryStarts, entryRanks, entries, totalBytes, size);

  const { maxTokenBytes, maxByteCount, maxClassCount } = vocabularyStatistics(bytes, start, size);

  let bits = 1;
  while (1 << bits < size * 2) bits++;
  const mask = (1 << bits) - 1;
  const shift = 32 - bits;
  // Open addressing, load factor below 1/2, one 16-byte record per slot so that a probe touches a
  // single cache line: [hash, (rank + 1) | length << 20, first 4 bytes, next 4 bytes]. Tokens of up
  // to 8 bytes (nearly every candidate pair) are compared inside the record; longer ones against
  // the token bytes. rank + 1 = 0 marks an empty slot.
  const slots = new Int32Array(4 << bits);
  for (let r = 0; r < size; r++) {
    const s = start[r] ?? 0;
    const e = start[r + 1] ?? 0;
    let h = 0;
    for (let k = s; k < e; k++) h = hashStep(h, bytes[k] ?? 0);
    let slot = slotOf(h, shift);
    while ((slots[4 * slot + 1] ?? 0) !== 0) slot = (slot + 1) & mask;
    slots[4 * slot] = h;
    slots[4 * slot + 1] = (r + 1) | ((e - s) << 20);
    slots[4 * slot + 2] = packBytes(bytes, s, Math.min(e, s + 4));
    slots[4 * slot + 3] = packBytes(bytes, Math.min(e, s + 4), Math.min(e, s + 8));
  }

  function rankOfHashed(probe: Uint8Array, from: number, to: number, hash: number): number {
    const length = to - from;
    const tag = length << 20;
    let lo = 0;
    let hi = 0;
    if (length <= 8) {
      lo = packBytes(probe, from, Math.min(to, from + 4));
      hi = packBytes(probe, Math.min(to, from + 4), to);
    }
    let slot = slotOf(hash, shift);
    for (;;) {
      const record = 4 * slot;
      const entry = slots[record + 1] ?? 0;
      if (entry === 0) return NOT_A_TOKEN;
      if (slots[record] === hash && (entry & 0xfff00000) === tag) {
        const rank = (entry & 0xfffff) - 1;
        if (length <= 8) {
          if (slots[record + 2] === lo && slots[record + 3] === hi) return rank;
        } else {
          const s = start[rank] ?? 0;
          let k = 0;
          while (k < length && bytes[s + k] === probe[from + k]) k++;
          if (k === length) return rank;
        }
      }
      slot = (slot + 1) & mask;
    }
  }

  const powers = new Int32Array(maxTokenBytes + 1);
  powers[0] = 1;
  for (let k = 1; k <= maxTokenBytes; k++) powers[k] = Math.imul(powers[k - 1] ?? 0, HASH_MULTIPLIER);

  return {
    size,
    maxTokenBytes,
    maxByteCount,
    maxClassCount,
    powers,
    rankOfHashed,
    rankOf(probe, from, to) {
      if (to - from > maxTokenBytes || to <= from) return NOT_A_TOKEN;
      let h = 0;
      for (let k = from; k < to; k++) h = hashStep(h, probe[k] ?? 0);
      return rankOfHashed(probe, from, to, h);
    },
    tokenBytes(rank) {
      return bytes.subarray(start[rank] ?? 0, start[rank + 1] ?? 0);
    },
  };
}

/** Up to 4 bytes as one little-endian int (missing bytes are 0; lengths are compared apart). */
function packBytes(bytes: Uint8Array, from: number, to: number): number {
  let packed = 0;
  for (let k = to - 1; k >= from; k--) packed = (packed << 8) | (bytes[k] ?? 0);
  return packed;
}

/**
 * Longest token, and for each byte value and byte class the most occurrences in one token (for
 * the lower bounds of lower-bound.ts).
 */
function vocabularyStatistics(
  bytes: Uint8Array,
  start: Uint32Array,
  size: number,
): { maxTokenBytes: number; maxByteCount: Uint16Array; maxClassCount: Uint16Array } {
  let maxTokenBytes = 0;
  const maxByteCount = new Uint16Array(256);
  const counts = new Uint16Array(256);
  const maxClassCount = new Uint16Array(BYTE_CLASSES.length);
  const classCounts = new Uint16Array(BYTE_CLASSES.length);
  for (let r = 0; r < size; r++) {
    const s = start[r] ?? 0;
    const e = start[r + 1] ?? 0;
    if (e - s > maxTokenBytes) maxTokenBytes = e - s;
    for (let k = s; k < e; k++) {
      const b = bytes[k] ?? 0;
      const c = (counts[b] ?? 0) + 1;
      counts[b] = c;
      if (c > (maxByteCount[b] ?? 0)) maxByteCount[b] = c;
      for (let m = BYTE_CLASS_MASK[b] ?? 0, cl = 0; m !== 0; m >>= 1, cl++) {
        if ((m & 1) !== 0) classCounts[cl] = (classCounts[cl] ?? 0) + 1;
      }
    }
    for (let k = s; k < e; k++) counts[bytes[k] ?? 0] = 0;
    for (let cl = 0; cl < classCounts.length; cl++) {
      const c = classCounts[cl] ?? 0;
      if (c > (maxClassCount[cl] ?? 0)) maxClassCount[cl] = c;
      classCounts[cl] = 0;
    }
  }
  return { maxTokenBytes, maxByteCount, maxClassCount };
}

/** Home slot of a hash: multiplicative mixing, then the top bits (the low bits of a polynomial hash are weak). */
function slotOf(hash: number, shift: number): number {
  return Math.imul(hash ^ (hash >>> 15), 0x9e3779b1) >>> shift;
}

/** Token bytes in rank order: `bytes[start[r]..start[r+1])` is the token of rank r. */
function layOutByRank(
  flat: Uint8Array,
  entryStarts: Uint32Array,
  entryRanks: Int32Array,
  entries: number,
  totalBytes: number,
  size: number,
): { start: Uint32Array; bytes: Uint8Array } {
  const start = new Uint32Array(size + 1);
  let ordered = true;
  for (let e = 0; e < entries; e++) {
    if (entryRanks[e] !== e) {
      ordered = false;
      break;
    }
  }
  if (ordered) {
    // The shipped data lists tokens in rank order: the decoded bytes are already laid out.
    start.set(entryStarts.subarray(0, entries));
    start[entries] = totalBytes;
    return { start, bytes: flat.subarray(0, totalBytes) };
  }
  const lengthOfRank = new Uint32Array(size);
  for (let e = 0; e < entries; e++) {
    const to = e + 1 < entries ? (entryStarts[e + 1] ?? 0) : totalBytes;
    lengthOfRank[entryRanks[e] ?? 0] = to - (entryStarts[e] ?? 0);
  }
  for (let r = 0; r < size; r++) start[r + 1] = (start[r] ?? 0) + (lengthOfRank[r] ?? 0);
  const bytes = new Uint8Array(totalBytes);
  for (let e = 0; e < entries; e++) {
    const to = e + 1 < entries ? (entryStarts[e + 1] ?? 0) : totalBytes;
    bytes.set(flat.subarray(entryStarts[e] ?? 0, to), start[entryRanks[e] ?? 0] ?? 0);
  }
  return { start, bytes };
}
