/**
 * Splits a log into lines without ever holding more than `maxBytes` of one line. Why not readline:
 * it has no length limit, so a tail of NULs with no newline (what a file system can leave after a
 * power loss) becomes one string of the whole tail, and past V8's string limit the process dies.
 */
import type { Readable } from "node:stream";

/** One line: its text (without `\n` or `\r\n`), or, when longer than the cap, its length only. */
export type LogLine = { text: string } | { tooLongBytes: number };

/** The default cap: a usage log line is well under 2 KiB. */
export const MAX_LINE_BYTES = 1024 * 1024;

/** Yields the lines of `input` (a byte stream); a line over `maxBytes` is skipped, not read whole. */
export async function* splitLines(input: Readable, maxBytes = MAX_LINE_BYTES): AsyncGenerator<LogLine> {
  let parts: Buffer[] = [];
  let held = 0;
  /** Bytes of the current line when it is over the cap (its bytes are dropped as they come). */
  let over = -1;
  const line = (last: Buffer): LogLine => {
    let b = parts.length === 0 ? last : Buffer.concat([...parts, last]);
    parts = [];
    held = 0;
    if (b.length > 0 && b[b.length - 1] === 0x0d) b = b.subarray(0, b.length - 1);
    return { text: b.toString("utf8") };
  };
  for await (const chunk of input as AsyncIterable<Buffer>) {
    let pos = 0;
    while (pos < chunk.length) {
      const nl = chunk.indexOf(0x0a, pos);
      const end = nl === -1 ? chunk.length : nl;
      const piece = chunk.subarray(pos, end);
      if (over >= 0) over += piece.length;
      else if (held + piece.length > maxBytes) {
        over = held + piece.length;
        parts = [];
        held = 0;
      }
      if (nl === -1) {
        if (over < 0) {
          parts.push(piece);
          held += piece.length;
        }
        break;
      }
      if (over >= 0) {
        yield { tooLongBytes: over };
        over = -1;
      } else yield line(piece);
      pos = nl + 1;
    }
  }
  if (over >= 0) yield { tooLongBytes: over };
  else if (held > 0) yield line(Buffer.alloc(0));
}
