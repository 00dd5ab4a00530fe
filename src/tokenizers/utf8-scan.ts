/**
 * UTF-8 helpers that work on a slice of a JavaScript string without allocating.
 *
 * Lone surrogates (a high surrogate not followed by a low one, or a low one on its own) are encoded
 * as U+FFFD (EF BF BD), which is what happens to a JavaScript string on its way into tiktoken (and
 * into any HTTP body): `TextEncoder` and `Buffer.from(string)` replace them the same way. A lone
 * surrogate and U+FFFD also fall in the same pre-tokenizer class (neither letter, number nor
 * whitespace), so pieces are split identically and only the bytes need the replacement.
 */

/** Writes the UTF-8 bytes of `text[from..to)` into `out` (must hold 3 bytes per code unit). */
export function encodeUtf8Into(text: string, from: number, to: number, out: Uint8Array): number {
  let n = 0;
  for (let i = from; i < to; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) {
      out[n++] = c;
    } else if (c < 0x800) {
      out[n++] = 0xc0 | (c >> 6);
      out[n++] = 0x80 | (c & 0x3f);
    } else if (c >= 0xd800 && c <= 0xdfff) {
      const d = i + 1 < to ? text.charCodeAt(i + 1) : 0;
      if (c <= 0xdbff && d >= 0xdc00 && d <= 0xdfff) {
        const cp = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
        out[n++] = 0xf0 | (cp >> 18);
        out[n++] = 0x80 | ((cp >> 12) & 0x3f);
        out[n++] = 0x80 | ((cp >> 6) & 0x3f);
        out[n++] = 0x80 | (cp & 0x3f);
        i++;
      } else {
        out[n++] = 0xef;
        out[n++] = 0xbf;
        out[n++] = 0xbd;
      }
    } else {
      out[n++] = 0xe0 | (c >> 12);
      out[n++] = 0x80 | ((c >> 6) & 0x3f);
      out[n++] = 0x80 | (c & 0x3f);
    }
  }
  return n;
}

/**
 * Adds the UTF-8 bytes of `text[from..to)` to a 256-entry histogram and returns their number,
 * without materialising the bytes (used for lower bounds over long text).
 */
export function addUtf8Histogram(text: string, from: number, to: number, histogram: Uint32Array): number {
  let n = 0;
  for (let i = from; i < to; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) {
      histogram[c] = (histogram[c] ?? 0) + 1;
      n += 1;
    } else if (c < 0x800) {
      const a = 0xc0 | (c >> 6);
      const b = 0x80 | (c & 0x3f);
      histogram[a] = (histogram[a] ?? 0) + 1;
      histogram[b] = (histogram[b] ?? 0) + 1;
      n += 2;
    } else if (c >= 0xd800 && c <= 0xdfff) {
      const d = i + 1 < to ? text.charCodeAt(i + 1) : 0;
      if (c <= 0xdbff && d >= 0xdc00 && d <= 0xdfff) {
        const cp = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
        const b0 = 0xf0 | (cp >> 18);
        const b1 = 0x80 | ((cp >> 12) & 0x3f);
        const b2 = 0x80 | ((cp >> 6) & 0x3f);
        const b3 = 0x80 | (cp & 0x3f);
        histogram[b0] = (histogram[b0] ?? 0) + 1;
        histogram[b1] = (histogram[b1] ?? 0) + 1;
        histogram[b2] = (histogram[b2] ?? 0) + 1;
        histogram[b3] = (histogram[b3] ?? 0) + 1;
        n += 4;
        i++;
      } else {
        histogram[0xef] = (histogram[0xef] ?? 0) + 1;
        histogram[0xbf] = (histogram[0xbf] ?? 0) + 1;
        histogram[0xbd] = (histogram[0xbd] ?? 0) + 1;
        n += 3;
      }
    } else {
      const a = 0xe0 | (c >> 12);
      const b = 0x80 | ((c >> 6) & 0x3f);
      const d = 0x80 | (c & 0x3f);
      histogram[a] = (histogram[a] ?? 0) + 1;
      histogram[b] = (histogram[b] ?? 0) + 1;
      histogram[d] = (histogram[d] ?? 0) + 1;
      n += 3;
    }
  }
  return n;
}

/** True when `text[index]` is the low half of a surrogate pair (cutting there would split it). */
export function isInsidePair(text: string, index: number): boolean {
  if (index <= 0 || index >= text.length) return false;
  const c = text.charCodeAt(index);
  const p = text.charCodeAt(index - 1);
  return c >= 0xdc00 && c <= 0xdfff && p >= 0xd800 && p <= 0xdbff;
}

/** True when `text[index]` and `text[index + 1]` form a surrogate pair (one astral code point). */
export function isSurrogatePairAt(text: string, index: number): boolean {
  const c = text.charCodeAt(index);
  if (c < 0xd800 || c > 0xdbff) return false;
  const d = text.charCodeAt(index + 1);
  return d >= 0xdc00 && d <= 0xdfff;
}

/** UTF-8 length of the code point (or lone surrogate, encoded as U+FFFD) starting at `text[index]`. */
export function utf8LengthAt(text: string, index: number): number {
  const c = text.charCodeAt(index);
  if (c < 0x80) return 1;
  if (c < 0x800) return 2;
  return isSurrogatePairAt(text, index) ? 4 : 3;
}
