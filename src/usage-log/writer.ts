/**
 * The usage log writer: one JSON line per decision and settlement, appended to a file (or stdout)
 * off the request path. The engine's observer only formats a line and encodes it into a 64 KiB chunk
 * (about 2 µs for both lines of a request); chunks go to the OS with one asynchronous `fs.writev` at a
 * time (libuv's thread pool), when one is full or 100 ms after the first unwritten line, and at
 * `flush()` / `close()`. Measured: bench/usage-log.bench.js.
 *
 * Failure is explicit and never reaches a request: a failed write (disk full, file gone, EPIPE) loses
 * its batch, is counted, and is logged once until writes succeed again; a disk slower than the
 * traffic fills a bounded buffer, past which lines are dropped and counted (memory stays bounded).
 */
import { accessSync, closeSync, constants, openSync, statSync, writev } from "node:fs";
import { dirname, isAbsolute, resolve as resolvePath } from "node:path";
import { ConfigError } from "../config/config-error.js";
import type { ResolvedConfig, UsageLogConfig } from "../config/types.js";
import type { EngineEvents } from "../core/engine.js";
import type { Logger } from "../core/logger.js";
import { decisionLine, settleLine } from "./record.js";

/** Counters of a usage log (gateway metrics read them at scrape time). */
export interface UsageLogStats {
  /** Lines handed to the OS. */
  writtenLines: number;
  /** Failed write calls. */
  writeErrors: number;
  /** Lines lost with a failed write. */
  failedLines: number;
  /** Lines dropped because the buffer was full (the destination was slower than the traffic). */
  droppedLines: number;
  /** Lines that arrived after the log was closed (dropped; said once in the log). */
  closedLines: number;
  /** Lines that could not be formatted (an unexpected error; dropped, never failing a request). */
  errorLines: number;
}

/** Stats with every count at zero. */
export function noUsageLogStats(): UsageLogStats {
  return {
    writtenLines: 0,
    writeErrors: 0,
    failedLines: 0,
    droppedLines: 0,
    closedLines: 0,
    errorLines: 0,
  };
}

/** A usage log: feed it engine events, flush and close it on shutdown. */
export interface UsageLog {
  /** The engine observer that writes one line per decision and per settlement. */
  readonly events: EngineEvents;
  /** Where it writes: `stdout` or the file's absolute path. */
  readonly destination: string;
  stats(): UsageLogStats;
  /** Resolves once every line written before the call has been handed to the OS (or failed). */
  flush(): Promise<void>;
  /** Opens the file again (after logrotate moved it away); nothing for stdout. */
  reopen(): void;
  /** Flushes, then closes the file. Lines written afterwards are dropped. Idempotent. */
  close(): Promise<void>;
}

/** Tuning of {@link openUsageLog} (the defaults suit production; tests shrink them). */
export interface UsageLogOptions {
  logger: Logger;
  /** Size of a chunk; a full chunk is written at once (bytes, default 64 KiB). */
  chunkBytes?: number;
  /** A chunk not yet full is written this long after its first line (ms, default 100). */
  flushIntervalMs?: number;
  /** Bytes buffered at most; lines past it are dropped and counted (default 16 MiB). */
  maxBufferBytes?: number;
}

const NEWLINE = Buffer.from("\n");

/** Why an `fs.writev` may be retried as is: the destination (a pipe) is momentarily full. */
const RETRYABLE = new Set(["EAGAIN", "EWOULDBLOCK", "EBUSY"]);
const RETRY_DELAY_MS = 20;

/** What is left of `bufs` after a write of `n` bytes (a partial write continues with it). */
export function unwritten(bufs: readonly Buffer[], n: number): Buffer[] {
  let rest = n;
  let i = 0;
  while (i < bufs.length && rest >= (bufs[i] as Buffer).length) rest -= (bufs[i++] as Buffer).length;
  const left = bufs.slice(i);
  if (left.length > 0) left[0] = (left[0] as Buffer).subarray(rest);
  return left;
}

/** Why a usage log path cannot be appended to, from the error code of an open or access call. */
function openProblem(code: string): string {
  return code === "ENOENT"
    ? "its directory does not exist"
    : code === "EISDIR"
      ? "it is a directory"
      : code === "EACCES" || code === "EPERM" || code === "EROFS"
        ? "permission denied"
        : code === "ENOTDIR"
          ? "a part of the path is not a directory"
          : "it cannot be opened";
}

function cannotOpen(code: string, written: string): ConfigError {
  // The path itself is not echoed (config errors never contain string values from the file).
  return new ConfigError([
    {
      path: "usage_log.path",
      message: `cannot open the usage log for appending: ${openProblem(code)} (${code})${isAbsolute(written) ? "" : `; a relative path is resolved against the working directory, ${process.cwd()}`}`,
    },
  ]);
}

/**
 * What `openUsageLog` would refuse, checked without creating or changing anything (`tokenfuse
 * check`): throws the same ConfigError when the file could not be opened for appending.
 */
export function checkUsageLogPath(target: UsageLogConfig | undefined): void {
  if (target?.kind !== "file") return;
  const path = resolvePath(target.path);
  let code: string | undefined;
  try {
    if (statSync(path).isDirectory()) code = "EISDIR";
    else accessSync(path, constants.W_OK);
  } catch (e) {
    code = (e as NodeJS.ErrnoException).code ?? "error";
    if (code === "ENOENT") {
      // No file yet: it is created in its directory, which must exist and be writable.
      try {
        const dir = dirname(path);
        if (!statSync(dir).isDirectory()) code = "ENOTDIR";
        else {
          accessSync(dir, constants.W_OK);
          code = undefined;
        }
      } catch (e2) {
        code = (e2 as NodeJS.ErrnoException).code ?? "error";
      }
    }
  }
  if (code !== undefined) throw cannotOpen(code, target.path);
}

/**
 * Opens a file for appending, or throws a ConfigError naming `usage_log.path` and the reason.
 * `written` is the path as the config wrote it (to explain how a relative one was resolved).
 */
function openForAppend(path: string, written: string): number {
  try {
    return openSync(path, "a", 0o640);
  } catch (e) {
    throw cannotOpen((e as NodeJS.ErrnoException).code ?? "error", written);
  }
}

/**
 * Opens the usage log the config names. Throws {@link ConfigError} (`usage_log.path: …`) when the file
 * cannot be opened for appending, so a bad path stops the process at start, not at the first request.
 */
export function openUsageLog(
  target: UsageLogConfig,
  config: ResolvedConfig,
  options: UsageLogOptions,
): UsageLog {
  const { logger } = options;
  const chunkBytes = options.chunkBytes ?? 64 * 1024;
  const flushIntervalMs = options.flushIntervalMs ?? 100;
  const maxBufferBytes = options.maxBufferBytes ?? 16 * 1024 * 1024;
  const path = target.kind === "file" ? resolvePath(target.path) : undefined;
  const written = target.kind === "file" ? target.path : "";
  let fd = path === undefined ? 1 : openForAppend(path, written);
  const destination = path ?? "stdout";

  const stats = noUsageLogStats();
  /** Bytes of the batch being written: still held in memory, so still counted against the bound. */
  let inFlightBytes = 0;
  /** Full chunks waiting to be written, then the one being filled (`cur`, `curLen` bytes used). */
  let sealed: Buffer[] = [];
  let cur: Buffer | undefined;
  let curLen = 0;
  /** Bytes and lines waiting (sealed chunks and `cur`). */
  let pendingBytes = 0;
  let pendingLines = 0;
  let writing = false;
  let timer: NodeJS.Timeout | undefined;
  let immediate: NodeJS.Immediate | undefined;
  let closed = false;
  let fdClosed = false;
  /** The last write failed after part of its batch reached the file: start the next on a new line. */
  let torn = false;
  /** Failing since the last success (logged once, then once more when writes resume). */
  let failing = false;
  let lostSinceFailing = 0;
  let droppingLogged = false;
  let reopenWanted = false;
  let waiters: Array<() => void> = [];

  function push(line: string): void {
    if (closed) {
      stats.closedLines++;
      if (stats.closedLines === 1)
        logger.warn(
          { destination },
          "usage log: a line arrived after the log was closed and was dropped (a settlement that outlived the shutdown wait)",
        );
      return;
    }
    // UTF-8 takes at most 3 bytes per UTF-16 unit: a line that may not fit starts a new chunk.
    const worst = line.length * 3;
    if (cur === undefined || curLen + worst > cur.length) {
      seal();
      cur = Buffer.allocUnsafeSlow(Math.max(chunkBytes, worst));
    }
    const n = cur.write(line, curLen);
    if (pendingBytes + inFlightBytes + n > maxBufferBytes) {
      stats.droppedLines++; // not counted in: curLen stays, the bytes are overwritten
      if (!droppingLogged) {
        droppingLogged = true;
        logger.error(
          { destination, bufferedBytes: pendingBytes },
          "usage log: the destination is slower than the traffic and the buffer is full; dropping lines (counted in tokenfuse_usage_log_dropped_lines_total)",
        );
      }
      return;
    }
    curLen += n;
    pendingBytes += n;
    pendingLines++;
    if (writing) return;
    if (sealed.length > 0) {
      // Not inline: handing a batch to the OS would land on the request that happened to fill it.
      if (immediate === undefined) immediate = setImmediate(kick);
    } else if (timer === undefined) {
      timer = setTimeout(kick, flushIntervalMs);
      timer.unref();
    }
  }

  /** Moves the chunk being filled to the sealed ones. */
  function seal(): void {
    if (cur !== undefined && curLen > 0) sealed.push(cur.subarray(0, curLen));
    cur = undefined;
    curLen = 0;
  }

  function settleWaiters(): void {
    if (writing || pendingLines > 0 || waiters.length === 0) return;
    const w = waiters;
    waiters = [];
    for (const resolve of w) resolve();
  }

  function kick(): void {
    if (timer !== undefined) {
      clearTimeout(timer);
      timer = undefined;
    }
    if (immediate !== undefined) {
      clearImmediate(immediate);
      immediate = undefined;
    }
    if (writing || pendingLines === 0 || fdClosed) {
      settleWaiters();
      return;
    }
    seal();
    const bufs = torn ? [NEWLINE, ...sealed] : sealed;
    const lines = pendingLines;
    torn = false;
    sealed = [];
    inFlightBytes = pendingBytes;
    pendingBytes = 0;
    pendingLines = 0;
    writing = true;
    writeAll(bufs, lines, false);
  }

  /** Writes `bufs` whole (continuing after partial writes); `started`: some bytes already went out. */
  function writeAll(bufs: Buffer[], lines: number, started: boolean): void {
    if (path === undefined) {
      // stdout: through process.stdout, never fs on fd 1. Why: fd 1 is often a blocking pipe; a
      // write on libuv's thread pool then blocks a pool thread for as long as the reader stalls,
      // and nothing (close, exit) can get past it. process.stdout is non-blocking for pipes, and
      // it keeps our chunks whole and in order among the application's own writes to stdout.
      process.stdout.write(bufs.length === 1 ? (bufs[0] as Buffer) : Buffer.concat(bufs), (err) => {
        if (err) failed(err as NodeJS.ErrnoException, lines, false);
        else succeeded(lines);
      });
      return;
    }
    writev(fd, bufs, null, (err, n) => {
      if (err) {
        if (err.code !== undefined && RETRYABLE.has(err.code)) {
          // Not unref'd: a close() waiting for this batch must keep the process alive until it is out.
          setTimeout(() => writeAll(bufs, lines, started), RETRY_DELAY_MS);
          return;
        }
        failed(err, lines, started);
        return;
      }
      const left = unwritten(bufs, n);
      if (left.length > 0) {
        writeAll(left, lines, started || n > 0);
        return;
      }
      succeeded(lines);
    });
  }

  function succeeded(lines: number): void {
    stats.writtenLines += lines;
    if (failing) {
      failing = false;
      logger.info(
        { destination, lostLines: lostSinceFailing },
        "usage log: writes succeed again; lines were lost while they failed",
      );
    }
    done();
  }

  function failed(err: NodeJS.ErrnoException, lines: number, partly: boolean): void {
    stats.writeErrors++;
    stats.failedLines += lines;
    if (partly) torn = true;
    if (!failing) {
      failing = true;
      lostSinceFailing = 0;
      // Logged once per failure episode, not per write: a full disk must not flood the log too.
      logger.error(
        { destination, code: err.code, err: err.message },
        "usage log: write failed; lines are lost until writes succeed again (counted in tokenfuse_usage_log_write_errors_total)",
      );
    }
    lostSinceFailing += lines;
    done();
  }

  function done(): void {
    writing = false;
    inFlightBytes = 0;
    if (reopenWanted) doReopen();
    if (pendingLines === 0) {
      droppingLogged = false; // caught up: a later overflow is a new episode, logged again
      settleWaiters();
      return;
    }
    // More arrived while writing: write it now when it is worth a call or someone waits, else later.
    // (This runs in a write callback, on no request's path.)
    if (sealed.length > 0 || waiters.length > 0 || closed) kick();
    else if (timer === undefined) {
      timer = setTimeout(kick, flushIntervalMs);
      timer.unref();
    }
  }

  function doReopen(): void {
    reopenWanted = false;
    if (path === undefined || fdClosed) return;
    let next: number;
    try {
      next = openForAppend(path, written);
    } catch (e) {
      logger.error(
        { destination, err: (e as Error).message },
        "usage log: could not reopen the file; still writing to the one already open",
      );
      return;
    }
    const old = fd;
    fd = next;
    torn = false;
    try {
      closeSync(old);
    } catch {
      // Already gone: nothing to release.
    }
    logger.info({ destination }, "usage log reopened");
  }

  const events: EngineEvents = {
    decision(e) {
      // Never let the log fail a request: an unexpected error here is counted as a lost line.
      try {
        push(decisionLine(e, config));
      } catch {
        stats.errorLines++;
      }
    },
    settled(e) {
      try {
        push(settleLine(e));
      } catch {
        stats.errorLines++;
      }
    },
  };

  function flush(): Promise<void> {
    if (!writing && pendingLines === 0) return Promise.resolve();
    return new Promise<void>((resolve) => {
      waiters.push(resolve);
      kick();
    });
  }

  return {
    events,
    destination,
    stats: () => ({ ...stats }),
    flush,
    reopen() {
      if (path === undefined || closed) return;
      if (writing) reopenWanted = true;
      else doReopen();
    },
    async close() {
      if (closed) {
        await flush();
        return;
      }
      closed = true;
      await flush();
      if (timer !== undefined) clearTimeout(timer);
      if (immediate !== undefined) clearImmediate(immediate);
      if (path !== undefined && !fdClosed) {
        fdClosed = true;
        try {
          closeSync(fd);
        } catch {
          // Closing a descriptor that is already unusable releases nothing more.
        }
      }
    },
  };
}
