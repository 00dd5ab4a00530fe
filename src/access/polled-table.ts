import type { Logger } from "../core/logger.js";
import { pollEvery } from "../core/poll.js";
import type { Revisioned } from "../stores/types.js";

/** Options of {@link createPolledTable}. */
export interface PolledTableOptions<E, T> {
  /** What the table holds, for log lines ("user tiers"). */
  what: string;
  /** Reads the table from the store (entries omitted when `knownRevision` is current). */
  read(knownRevision: string | undefined): Promise<Revisioned<E>>;
  /** Builds the snapshot the hot path reads from freshly read entries. */
  build(entries: E, unreadable: readonly string[]): T;
  /** The snapshot before the first read. */
  initial: T;
  /** How often to re-read a shared store (ms); 0 disables polling (the memory store). */
  refreshMs: number;
  /** At least this often (ms) a refresh reads the whole table, whatever its revision (default 60 s). */
  fullReadMs?: number;
  logger: Logger;
}

/** At least this often (ms) a poll reads the whole table, not only its revision. */
const FULL_READ_MS = 60_000;

/** A store table mirrored in memory: read synchronously on the hot path, refreshed in the background. */
export interface PolledTable<T> {
  /** The latest snapshot; never waits on the store. */
  readonly current: T;
  /** True once the table has been read from the store at least once (until then `current` is `initial`). */
  readonly loaded: boolean;
  /**
   * Re-reads the store now. Never rejects: when the store cannot be read the last snapshot is kept
   * (and the failure logged once, not at every poll, until a read succeeds again).
   */
  refresh(): Promise<void>;
  close(): void;
}

/**
 * Keeps a snapshot of a store table, as the switch board does for the feature switches: each poll
 * reads the table's revision (one small read) and the whole table only when it changed.
 *
 * Why reads are numbered: a poll that started before a write can finish after the re-read that an
 * admin call made once its write was done; applying the older answer last would undo the change in
 * this process until the next poll. Only the answer of the latest started read that has finished
 * is applied; older ones are dropped.
 */
export function createPolledTable<E, T>(opts: PolledTableOptions<E, T>): PolledTable<T> {
  let current = opts.initial;
  let loaded = false;
  let revision: string | undefined;
  /** Date.now() of the last full read: one is made at least every FULL_READ_MS whatever the revision. */
  let fullReadAt = Number.NEGATIVE_INFINITY;
  let started = 0;
  let applied = 0;
  let failing = false;

  const refresh = async (): Promise<void> => {
    const seq = ++started;
    // A full read now and then, whatever the revision says: an entry changed in the store without
    // a new revision (by hand, e.g. a key removed with HDEL) is then seen within a minute.
    const full = Date.now() - fullReadAt >= (opts.fullReadMs ?? FULL_READ_MS);
    let r: Revisioned<E>;
    try {
      r = await opts.read(full ? undefined : revision);
    } catch (e) {
      if (!failing) {
        failing = true;
        opts.logger.warn(
          { err: e instanceof Error ? e.message : String(e) },
          `could not read ${opts.what} from the store; keeping the last known state`,
        );
      }
      return;
    }
    if (failing) {
      failing = false;
      opts.logger.info({}, `${opts.what} read from the store again`);
    }
    if (seq < applied) return;
    applied = seq;
    if (r.entries === undefined) return;
    current = opts.build(r.entries, r.unreadable ?? []);
    revision = r.revision;
    loaded = true;
    if (full) fullReadAt = Date.now();
  };

  // Polls never pile up; a read an admin call asks for (refresh()) is never skipped, since it has
  // to start after that call's write.
  const stop = pollEvery(opts.refreshMs, refresh);
  return {
    get current() {
      return current;
    },
    get loaded() {
      return loaded;
    },
    refresh,
    close: stop,
  };
}
