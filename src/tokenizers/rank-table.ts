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
  readonly maxByteCount: Uint8Array;
  /** Rank of `bytes[start..end)`, or {@link NOT_A_TOKEN}. */
  rankOf(bytes: Uint8Array, start: number, end: number): number;
  /** Rank of the byte sequence whose polynomial hash was computed by the caller with {@link hashStep}. */
  rankOfHashed(bytes: Uint8Array, start: number, end: number, hash: number): number;
  /** Bytes of the token of rank `rank` (a view, do not modify). */
  tokenBytes(rank: number): Uint8Array;
}

/** Rank data as js-tiktoken ships it: one or more lines `! <firstRank> <base64> <base64> ...`. */
export interface RankData {
  pat_str: string;
  special_tokens: Record<string, number>;
  bpe_ranks: string;
}

/** Initial value of the polynomial byte hash. */
export const HASH_SEED = 0x811c9dc5 | 0;

/**
 * One step of the polynomial byte hash shared by the table and its callers (who hash while they
 * encode UTF-8, so the whole-piece lookup costs no second pass over the bytes).
 */
export function hashStep(hash: number, byte: number): number {
  return (Math.imul(hash, 0x01000193) ^ byte) | 0;
}

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

  let bits = 1;
  while (1 << bits < size * 2) bits++;
  const mask = (1 << bits) - 1;
  const shift = 32 - bits;
  // slots hold rank + 1; 0 marks an empty slot. Load factor stays below 1/2.
  const slots = new Int32Array(1 << bits);
  let maxTokenBytes = 0;
  const maxByteCount = new Uint8Array(256);
  const counts = new Uint8Array(256);
  for (let r = 0; r < size; r++) {
    const s = start[r] ?? 0;
    const e = start[r + 1] ?? 0;
    if (e - s > maxTokenBytes) maxTokenBytes = e - s;
    let h = HASH_SEED;
    for (let k = s; k < e; k++) {
      const b = bytes[k] ?? 0;
      h = hashStep(h, b);
      const c = (counts[b] ?? 0) + 1;
      counts[b] = c;
      if (c > (maxByteCount[b] ?? 0)) maxByteCount[b] = c;
    }
    for (let k = s; k < e; k++) counts[bytes[k] ?? 0] = 0;
    let slot = Math.imul(h, 0x9e3779b1) >>> shift;
    while ((slots[slot] ?? 0) !== 0) slot = (slot + 1) & mask;
    slots[slot] = r + 1;
  }

  function rankOfHashed(probe: Uint8Array, from: number, to: number, hash: number): number {
    const length = to - from;
    let slot = Math.imul(hash, 0x9e3779b1) >>> shift;
    for (;;) {
      const entry = slots[slot] ?? 0;
      if (entry === 0) return NOT_A_TOKEN;
      const rank = entry - 1;
      const s = start[rank] ?? 0;
      if ((start[rank + 1] ?? 0) - s === length) {
        let k = 0;
        while (k < length && bytes[s + k] === probe[from + k]) k++;
        if (k === length) return rank;
      }
      slot = (slot + 1) & mask;
    }
  }

  return {
    size,
    maxTokenBytes,
    maxByteCount,
    rankOfHashed,
    rankOf(probe, from, to) {
      if (to - from > maxTokenBytes || to <= from) return NOT_A_TOKEN;
      let h = HASH_SEED;
      for (let k = from; k < to; k++) h = hashStep(h, probe[k] ?? 0);
      return rankOfHashed(probe, from, to, h);
    },
    tokenBytes(rank) {
      return bytes.subarray(start[rank] ?? 0, start[rank + 1] ?? 0);
    },
  };
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
