/**
 * Exact token counting for OpenAI's byte-level BPE encodings (o200k_base, cl100k_base).
 *
 * Text is split into pieces by the encoding's pre-tokenizer, lazily, one sticky-regex step at a
 * time, so bounded calls stop as soon as their answer is known. Each piece is encoded to UTF-8 into
 * a scratch buffer; a piece that is itself a token (most words) costs one hash lookup, anything else
 * goes through {@link createBytePairMerger}. Special-token text such as `<|endoftext|>` is counted
 * as ordinary text, as the OpenAI API does for message content.
 */

import { type BytePairMerger, createBytePairMerger } from "./byte-pair-merge.js";
import { bytesLowerBound, provenOverflowPrefix, textLowerBound } from "./lower-bound.js";
import { type BpeEncodingName, createPieceRegExp, needsPinnedClasses } from "./pretokenizer.js";
import { loadRankTable } from "./rank-loader.js";
import type { RankTable } from "./rank-table.js";
import type { TextTokenizer } from "./types.js";
import { encodeUtf8Into, isInsidePair, utf8LengthAt } from "./utf8-scan.js";

/** Pieces of more UTF-8 bytes than this get a lower-bound check before BPE in bounded calls. */
const LONG_PIECE_BYTES = 256;
/** Texts of more UTF-16 units than this get a whole-text lower bound before bounded counting. */
const LOWER_BOUND_SCAN_UNITS = 4096;
/**
 * Truncation merges at most this many bytes of one piece: a longer piece (only pathological input
 * has one, e.g. 100 000 spaces) is cut inside this prefix, so truncation stays fast at the price of
 * keeping fewer tokens than the cap allows in that case.
 */
const TRUNCATE_PIECE_BYTES = 16 * 1024;
/** Truncation first looks at a head of this many UTF-16 units per token of the cap. */
const TRUNCATE_HEAD_UNITS_PER_TOKEN = 16;
/** Scratch buffers above this many bytes are dropped after use instead of being kept. */
const KEEP_SCRATCH_BYTES = 1 << 20;

/** A {@link TextTokenizer} for an exact BPE encoding, with encoding and work counters. */
export interface BpeTextTokenizer extends TextTokenizer {
  readonly encoding: BpeEncodingName;
  readonly exact: true;
  /** Token ids of `text` (ordinary text; special-token strings are not special). */
  encode(text: string): number[];
  /** Number of pieces that needed byte-pair merging so far (work counter for tests and benches). */
  readonly mergedPieces: number;
}

/** Options of {@link createBpeTextTokenizer}. */
export interface BpeTextTokenizerOptions {
  /** Rank table to use instead of the shared lazily loaded one (tests). */
  table?: RankTable;
  /** Byte length above which pieces are merged with the priority queue (tests exercise both paths). */
  heapThreshold?: number;
}

/** A piece of a text, by offsets, with its token count (-1 when unknown). */
interface KnownPiece {
  start: number;
  end: number;
  count: number;
}

interface State {
  table: RankTable;
  merger: BytePairMerger;
  /** The piece regex for `pieceText` (one of the two below). */
  piece: RegExp;
  fast: RegExp;
  /** Created on first need: a text holding a code point the runtime classes otherwise than tiktoken. */
  pinned: RegExp | undefined;
  /** The text `piece` was chosen for (compared by identity first, so a walk over one text checks once). */
  pieceText: string | undefined;
  bytes: Uint8Array;
  histogram: Uint32Array;
}

/** Creates an exact tokenizer for `encoding`; its vocabulary loads on first use. */
export function createBpeTextTokenizer(
  encoding: BpeEncodingName,
  options: BpeTextTokenizerOptions = {},
): BpeTextTokenizer {
  let state: State | undefined;
  let mergedPieces = 0;

  function init(): State {
    if (state) return state;
    const table = options.table ?? loadRankTable(encoding);
    const fast = createPieceRegExp(encoding);
    state = {
      table,
      merger: createBytePairMerger(table, options.heapThreshold),
      piece: fast,
      fast,
      pinned: undefined,
      pieceText: undefined,
      bytes: new Uint8Array(1024),
      histogram: new Uint32Array(256),
    };
    return state;
  }

  /** UTF-8 of `text[from..to)` into the scratch buffer; returns its length. */
  function encodeSlice(s: State, text: string, from: number, to: number): number {
    const need = (to - from) * 3;
    if (s.bytes.length < need) s.bytes = new Uint8Array(Math.max(need, s.bytes.length * 2));
    return encodeUtf8Into(text, from, to, s.bytes);
  }

  function releaseScratch(s: State): void {
    if (s.bytes.length > KEEP_SCRATCH_BYTES) s.bytes = new Uint8Array(1024);
    s.pieceText = undefined; // not kept alive between calls
  }

  /** End of the piece starting at `at`. */
  function pieceEnd(s: State, text: string, at: number): number {
    if (text !== s.pieceText) {
      // Why per text: pretokenizer.ts `needsPinnedClasses` (the runtime's Unicode may differ).
      s.pieceText = text;
      if (needsPinnedClasses(text)) {
        if (s.pinned === undefined) s.pinned = createPieceRegExp(encoding, true);
        s.piece = s.pinned;
      } else {
        s.piece = s.fast;
      }
    }
    s.piece.lastIndex = at;
    if (!s.piece.test(text) || s.piece.lastIndex <= at) {
      // Unreachable for any string (see createPieceRegExp); failing loudly beats looping forever.
      throw new Error(`tokenizer ${encoding}: no piece matches at offset ${at}`);
    }
    return s.piece.lastIndex;
  }

  /** Tokens of the piece already encoded in the scratch buffer. */
  function countEncoded(s: State, length: number): number {
    if (s.table.rankOf(s.bytes, 0, length) >= 0) return 1;
    mergedPieces++;
    return s.merger.count(s.bytes, length);
  }

  function countText(text: string): number {
    const s = init();
    let count = 0;
    for (let at = 0; at < text.length; ) {
      const end = pieceEnd(s, text, at);
      count += countEncoded(s, encodeSlice(s, text, at, end));
      at = end;
    }
    releaseScratch(s);
    return count;
  }

  function countTextUpTo(text: string, limit: number): number {
    if (limit === Number.POSITIVE_INFINITY) return countText(text);
    const cap = Number.isFinite(limit) && limit > 0 ? Math.floor(limit) : 0;
    return countUpTo(text, cap, undefined);
  }

  /**
   * Bounded count. `known` is a piece (by offsets) whose count the caller already has: truncation
   * verifies its candidate prefix without merging the cut piece a second time.
   */
  function countUpTo(text: string, cap: number, known: KnownPiece | undefined): number {
    const over = cap + 1;
    if (text.length === 0) return 0;
    const s = init();
    // Every UTF-16 unit is at least one UTF-8 byte, so this bound costs nothing to check.
    if (Math.ceil(text.length / s.table.maxTokenBytes) > cap) return over;
    if (text.length > LOWER_BOUND_SCAN_UNITS && text.length > 2 * cap) {
      if (textLowerBound(s.table, text, 0, text.length, s.histogram) > cap) return over;
    }
    let count = 0;
    for (let at = 0; at < text.length; ) {
      const end = pieceEnd(s, text, at);
      if (known !== undefined && at === known.start && end === known.end) {
        count += known.count;
      } else {
        const length = encodeSlice(s, text, at, end);
        // Why: BPE cost grows with the piece; never feed a long piece to it when a cheap bound
        // already proves the cap is exceeded (a 500 kB run of one character is one piece).
        if (
          length > LONG_PIECE_BYTES &&
          count + bytesLowerBound(s.table, s.bytes, length, s.histogram) > cap
        ) {
          releaseScratch(s);
          return over;
        }
        count += countEncoded(s, length);
      }
      if (count > cap) {
        releaseScratch(s);
        return over;
      }
      at = end;
    }
    releaseScratch(s);
    return count;
  }

  /**
   * Walks whole pieces of `text` while they fit in `cap` tokens. Returns the piece starts walked,
   * where the walk stopped, the tokens counted, and the end of the overflowing piece (-1 when the
   * whole text fits). Pieces longer than {@link TRUNCATE_PIECE_BYTES} are not merged whole: they end
   * the walk and get cut.
   */
  function walkFitting(
    s: State,
    text: string,
    cap: number,
  ): { boundaries: number[]; at: number; overflowEnd: number; count: number } {
    const boundaries: number[] = [];
    let count = 0;
    for (let at = 0; at < text.length; ) {
      const end = pieceEnd(s, text, at);
      // Units are a lower bound on bytes: a piece this long is cut without encoding it whole.
      if (end - at > TRUNCATE_PIECE_BYTES) return { boundaries, at, overflowEnd: end, count };
      const length = encodeSlice(s, text, at, end);
      if (length > TRUNCATE_PIECE_BYTES) return { boundaries, at, overflowEnd: end, count };
      if (length > LONG_PIECE_BYTES && count + bytesLowerBound(s.table, s.bytes, length, s.histogram) > cap) {
        return { boundaries, at, overflowEnd: end, count };
      }
      const tokens = countEncoded(s, length);
      if (count + tokens > cap) return { boundaries, at, overflowEnd: end, count };
      count += tokens;
      boundaries.push(at);
      at = end;
    }
    return { boundaries, at: text.length, overflowEnd: -1, count };
  }

  /** Offset in `text` after the code points of `text[from..)` that fit in `byteBudget` UTF-8 bytes. */
  function unitsForBytes(text: string, from: number, byteBudget: number): number {
    let at = from;
    let used = 0;
    while (at < text.length) {
      const bytes = utf8LengthAt(text, at);
      if (used + bytes > byteBudget) break;
      used += bytes;
      at += bytes === 4 ? 2 : 1;
    }
    return at;
  }

  /**
   * Where to cut inside the overflowing piece `text[at..end)` to keep at most `remaining` tokens,
   * and the count of the kept part.
   */
  function cutInsidePiece(s: State, text: string, at: number, end: number, remaining: number): KnownPiece {
    // Only a bounded prefix of the piece can matter: `remaining` tokens cover at most
    // remaining * maxTokenBytes bytes (hence as many UTF-16 units), and merging is capped.
    let stop = Math.min(end, at + (remaining + 1) * s.table.maxTokenBytes, at + TRUNCATE_PIECE_BYTES);
    if (stop < end && isInsidePair(text, stop)) stop--;
    const stretch = text.slice(at, stop);
    const limitEnd = at + provenOverflowPrefix(s.table, stretch, remaining);
    const length = encodeSlice(s, text, at, limitEnd);
    mergedPieces++;
    const { count, ends } = s.merger.tokenEnds(s.bytes, length);
    const take = Math.min(remaining, count);
    if (take === 0) return { start: at, end: at, count: 0 };
    const cut = unitsForBytes(text, at, ends[take - 1] ?? 0);
    // The kept bytes are exactly `take` whole tokens when the cut fell on a token end; otherwise the
    // count is unknown and left to the verification.
    const exactCut = encodedLength(text, at, cut) === (ends[take - 1] ?? 0);
    return { start: at, end: cut, count: exactCut ? take : -1 };
  }

  /** UTF-8 length of `text[from..to)`. */
  function encodedLength(text: string, from: number, to: number): number {
    let n = 0;
    for (let i = from; i < to; ) {
      const bytes = utf8LengthAt(text, i);
      n += bytes;
      i += bytes === 4 ? 2 : 1;
    }
    return n;
  }

  function truncateText(text: string, maxTokens: number): string {
    const cap = Number.isFinite(maxTokens) ? Math.max(0, Math.floor(maxTokens)) : Number.MAX_SAFE_INTEGER;
    if (cap === 0 || text.length === 0) return "";
    const s = init();
    // Why: the work must be bounded by `cap`, not by the text. First look at a head of a size that
    // holds `cap` tokens of any ordinary text; only if it all fits, extend the head to the point
    // where the byte bounds prove that no longer prefix can fit.
    let headEnd = Math.min(text.length, TRUNCATE_HEAD_UNITS_PER_TOKEN * cap + 1024);
    if (isInsidePair(text, headEnd)) headEnd--;
    let head = headEnd < text.length ? text.slice(0, headEnd) : text;
    let walk = walkFitting(s, head, cap);
    if (walk.overflowEnd < 0 && head !== text) {
      headEnd = provenOverflowPrefix(s.table, text, cap);
      head = headEnd < text.length ? text.slice(0, headEnd) : text;
      walk = walkFitting(s, head, cap);
    }
    if (walk.overflowEnd < 0 && head === text) {
      releaseScratch(s);
      return text;
    }
    const candidates: KnownPiece[] = [];
    const remaining = cap - walk.count;
    if (walk.overflowEnd >= 0 && remaining > 0) {
      candidates.push(cutInsidePiece(s, head, walk.at, walk.overflowEnd, remaining));
    }
    // Fallbacks, longest first: the overflowing piece's start, then 1, 2, 4... pieces further back.
    candidates.push({ start: walk.at, end: walk.at, count: 0 });
    for (let back = 1; back <= walk.boundaries.length; back *= 2) {
      const end = walk.boundaries[walk.boundaries.length - back] ?? 0;
      candidates.push({ start: end, end, count: 0 });
    }
    releaseScratch(s);
    for (const candidate of candidates) {
      // Why: a cut is never allowed to split a surrogate pair (it would send a lone surrogate).
      if (candidate.end <= 0 || isInsidePair(text, candidate.end)) continue;
      const prefix = text.slice(0, candidate.end);
      // Why: pieces near the cut can split differently in the prefix than in the whole text (the
      // `\s+(?!\S)` lookahead) and BPE of a cut piece need not reuse the piece's tokens, so only the
      // exact count of the prefix itself decides.
      const known = candidate.count > 0 ? candidate : undefined;
      if (countUpTo(prefix, cap, known) <= cap) return prefix;
    }
    return "";
  }

  function encode(text: string): number[] {
    const s = init();
    const ids: number[] = [];
    for (let at = 0; at < text.length; ) {
      const end = pieceEnd(s, text, at);
      const length = encodeSlice(s, text, at, end);
      const whole = s.table.rankOf(s.bytes, 0, length);
      if (whole >= 0) {
        ids.push(whole);
      } else {
        mergedPieces++;
        const { count, ends } = s.merger.tokenEnds(s.bytes, length);
        let start = 0;
        for (let i = 0; i < count; i++) {
          const stop = ends[i] ?? length;
          ids.push(s.table.rankOf(s.bytes, start, stop));
          start = stop;
        }
      }
      at = end;
    }
    releaseScratch(s);
    return ids;
  }

  return {
    encoding,
    exact: true,
    countText,
    countTextUpTo,
    truncateText,
    encode,
    get mergedPieces() {
      return mergedPieces;
    },
  };
}
