/**
 * A database file: one block file holding the document trees, the `_local/` tree, the purge
 * trees, the request-id table and the Raft log of one database, and the one commit that a
 * Raft group's driver needs (`stage`).
 *
 * `stage` takes everything of one batch, in this order: truncate the log after an index,
 * append entries, set the hard state and membership, apply committed entries, discard the log
 * up to an index. It does the work synchronously, returns each applied entry's outcome at
 * once, and writes one header whose commit resolves `durable`. Stages may follow each other
 * while earlier ones are syncing; they become durable in call order.
 *
 * Invariants, asserted:
 * - the applied index and the trees it produced change in the same header, so after a crash
 *   an entry is either applied with its effects or not at all;
 * - applies are contiguous from the applied index + 1, each of an entry already appended (or,
 *   for standalone use, a command given directly at an index the log does not hold);
 * - truncation never removes an applied entry;
 * - discards never pass the applied index, and the header keeps the index and term of the last
 *   discarded entry, so numbering never restarts.
 *
 * A failed write or fsync (or a bug caught mid-stage) is fatal for the handle: later stages
 * and snapshots throw that error, and the file must be reopened, which recovers the newest
 * durable header. Reads are synchronous and see the applied state, which may be ahead of the
 * newest durable header: applied entries are committed in the Raft sense.
 */
import { randomBytes } from 'node:crypto';
import type { Entry, HardState, Membership, SnapshotMeta } from '../raft/types.js';
import { BlockFile, type CommitDiscipline } from '../storage/block-file.js';
import type { FileSystem } from '../storage/io.js';
import { assert } from '../util/assert.js';
import { ApplyBatch, type PreparedEntry } from './apply.js';
import type { Command } from './commands.js';
import {
  decodeHeader,
  encodeHeader,
  type HeaderFields,
  TREE_NAMES,
  type TreeRoots,
  UUID_BYTES,
} from './header.js';
import {
  CommandCache,
  DEFAULT_COMMAND_CACHE_BYTES,
  logIndexes,
  prepareStoredEntry,
  readEntries,
  storedBounds,
  storeEntry,
} from './log.js';
import { type AppliedEntry, INITIAL_HASH_CHAIN } from './outcome.js';
import { pruneRequests } from './request-table.js';
import { seqOpaque } from './seq.js';
import { EngineSnapshot } from './snapshot.js';
import type { LogPosition, StoredEntry } from './stored-entry.js';
import { type EngineTrees, openTrees, rootsOf, type TreeOptions } from './trees.js';

/** CouchDB's default `revs_limit`. */
export const DEFAULT_REVS_LIMIT = 1000;
/** CouchDB's default `purged_infos_limit`. */
export const DEFAULT_PURGED_INFOS_LIMIT = 1000;
/** Default window, in applied entries, in which a retried request id gets its first outcome. */
export const DEFAULT_REQUEST_RETENTION = 100_000;

const NO_POSITION: LogPosition = Object.freeze({ index: 0, term: 0 });
const EMPTY_MEMBERSHIP: Membership = Object.freeze({
  voters: [],
  learners: [],
  votersOutgoing: [],
});

export interface OpenOptions extends TreeOptions {
  readonly fileSystem?: FileSystem;
  readonly discipline?: CommitDiscipline;
  /** Memory for decoded commands between append and apply; 64 MiB when absent. */
  readonly commandCacheBytes?: number;
}

export interface CreateOptions extends OpenOptions {
  /** The database's name, recorded in the header. */
  readonly name: string;
  /** 32 lowercase hex digits, the same for every replica; random when absent. */
  readonly uuid?: string;
  readonly revsLimit?: number;
  readonly purgedInfosLimit?: number;
  /**
   * Window, in applied entries, in which a retried request id gets its first outcome back. 0
   * records no request ids. Fixed at creation, because every replica must use the same window.
   */
  readonly requestRetention?: number;
  readonly membership?: Membership;
}

/** One entry to apply: an entry of the log, or a command applied without one. */
export interface ApplyItem {
  readonly index: number;
  readonly term: number;
  /** Standalone use: the command itself; the log must not hold an entry at `index`. */
  readonly command?: Command;
}

export interface StageBatch {
  /** Removes every log entry after this index (a follower's conflicting tail). */
  readonly truncateAfter?: number;
  /**
   * Entries to append, contiguous. When the first overlaps the log, the log is first
   * truncated after the entry before it, as a Raft `Ready` requires.
   */
  readonly append?: readonly Entry[];
  readonly hardState?: HardState;
  readonly membership?: Membership;
  /** Entries to apply, contiguous from the applied index + 1. */
  readonly apply?: readonly ApplyItem[];
  /** Discards the log up to and including this index (at most the applied index). */
  readonly discardUpTo?: number;
  /**
   * False when nothing in the batch must be durable before the caller goes on: it appends and
   * truncates nothing and keeps the term and vote (applying, discarding, a new commit index).
   * Its header is then written without an fsync, and `durable` resolves once it is written; the
   * next synced batch makes it durable. A crash before that reopens an earlier header, from
   * which a Raft group applies the same entries again.
   */
  readonly sync?: boolean;
}

export interface StageResult {
  /** The outcome of each applied entry, in order. */
  readonly outcomes: readonly AppliedEntry[];
  /** Resolves once the batch's header is durable; rejects with the file's failure. */
  readonly durable: Promise<void>;
}

/** The log's extent: entries `firstIndex..lastIndex` are retained. */
export interface LogExtent {
  readonly firstIndex: number;
  readonly lastIndex: number;
  readonly lastTerm: number;
}

interface EngineState {
  readonly fields: HeaderFields;
  readonly trees: EngineTrees;
}

export type UpdateListener = (updateSeq: number) => void;

export class DatabaseFile {
  readonly #file: BlockFile;
  readonly #cache: CommandCache;
  readonly #listeners = new Set<UpdateListener>();
  #state: EngineState;
  #failure: unknown;
  #closed = false;

  private constructor(
    file: BlockFile,
    fields: HeaderFields,
    trees: EngineTrees,
    options: OpenOptions,
  ) {
    this.#file = file;
    this.#cache = new CommandCache(options.commandCacheBytes ?? DEFAULT_COMMAND_CACHE_BYTES);
    this.#state = { fields, trees };
  }

  /** Creates a database file; throws FileExistsError when `path` exists. */
  static async create(path: string, options: CreateOptions): Promise<DatabaseFile> {
    const uuid = options.uuid ?? randomBytes(UUID_BYTES).toString('hex');
    const fields: HeaderFields = {
      uuid,
      name: options.name,
      updateSeq: 0,
      purgeSeq: 0,
      purgedInfosLimit: options.purgedInfosLimit ?? DEFAULT_PURGED_INFOS_LIMIT,
      revsLimit: options.revsLimit ?? DEFAULT_REVS_LIMIT,
      compactedSeq: 0,
      requestRetention: options.requestRetention ?? DEFAULT_REQUEST_RETENTION,
      security: null,
      hardState: { term: 0, vote: '', commit: 0 },
      membership: options.membership ?? EMPTY_MEMBERSHIP,
      applied: NO_POSITION,
      discarded: NO_POSITION,
      hashChain: INITIAL_HASH_CHAIN,
    };
    assert(fields.revsLimit >= 1, 'revs_limit is at least 1');
    const emptyRoots = Object.fromEntries(TREE_NAMES.map((name) => [name, null])) as TreeRoots;
    const header = encodeHeader({ fields, roots: emptyRoots });
    const file = await BlockFile.create(path, header, options);
    return new DatabaseFile(file, fields, openTrees(file, emptyRoots, options), options);
  }

  /** Opens a database file at its newest durable header. */
  static async open(path: string, options: OpenOptions = {}): Promise<DatabaseFile> {
    const file = await BlockFile.open(path, options);
    try {
      const header = decodeHeader(file.header);
      return new DatabaseFile(file, header.fields, openTrees(file, header.roots, options), options);
    } catch (error) {
      await file.close();
      throw error;
    }
  }

  get path(): string {
    return this.#file.path;
  }

  get name(): string {
    return this.#state.fields.name;
  }

  get uuid(): string {
    return this.#state.fields.uuid;
  }

  get hardState(): HardState {
    return this.#state.fields.hardState;
  }

  get membership(): Membership {
    return this.#state.fields.membership;
  }

  /** The last applied entry. */
  get applied(): LogPosition {
    return this.#state.fields.applied;
  }

  /** The last entry discarded from the log. */
  get discarded(): LogPosition {
    return this.#state.fields.discarded;
  }

  /** The outcome hash chain after the applied index. */
  get hashChain(): Buffer {
    return this.#state.fields.hashChain;
  }

  get updateSeq(): number {
    return this.#state.fields.updateSeq;
  }

  /** Counters of the underlying block file. */
  get fileStats(): BlockFile['stats'] {
    return this.#file.stats;
  }

  /** Returns the snapshot metadata this file gives a follower: the applied point. */
  snapshotMeta(): SnapshotMeta {
    const { applied, membership } = this.#state.fields;
    return { index: applied.index, term: applied.term, membership };
  }

  /** Returns the retained log's first and last index, and the term of the last entry. */
  logExtent(): LogExtent {
    const { fields, trees } = this.#state;
    const bounds = storedBounds(trees.log);
    const last = bounds?.last ?? fields.discarded;
    return { firstIndex: fields.discarded.index + 1, lastIndex: last.index, lastTerm: last.term };
  }

  /** Returns the term of entry `index`, or undefined unless it is retained or the last discarded. */
  term(index: number): number | undefined {
    const { fields, trees } = this.#state;
    if (index === fields.discarded.index) return fields.discarded.term;
    return trees.log.get(index)?.term;
  }

  /** Reads the retained entries `from..to`, both included, with their payloads as appended. */
  readLogEntries(from: number, to: number): Entry[] {
    this.#checkUsable();
    return readEntries(this.#file, this.#state.trees.log, from, to);
  }

  /** Opens a read snapshot of the applied state. Its reads are synchronous. */
  snapshot(): EngineSnapshot {
    this.#checkUsable();
    const { fields, trees } = this.#state;
    return new EngineSnapshot(this.#file, fields, trees, seqOpaque(fields.uuid));
  }

  /** Calls `listener` with the new update sequence after each stage that applied entries. */
  onUpdate(listener: UpdateListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * Does everything of one batch (see `StageBatch` and the file header) and writes one header.
   * Returns the applied entries' outcomes at once; `durable` resolves once the header is
   * durable. Throws the handle's failure, or an InvariantError for a broken rule.
   */
  stage(batch: StageBatch): StageResult {
    this.#checkUsable();
    const sync = batch.sync !== false;
    if (!sync) this.#checkUnsyncedBatch(batch);
    let staged: { state: EngineState; outcomes: AppliedEntry[] };
    try {
      staged = this.#stage(batch);
    } catch (error) {
      this.#failure ??= error;
      throw error;
    }
    this.#state = staged.state;
    const header = encodeHeader({
      fields: staged.state.fields,
      roots: rootsOf(staged.state.trees),
    });
    const durable = this.#file.commit(header, { sync });
    durable.catch((error: unknown) => {
      this.#failure ??= error;
    });
    if (staged.outcomes.length > 0) this.#notify(staged.state.fields.updateSeq);
    return { outcomes: staged.outcomes, durable };
  }

  #checkUnsyncedBatch(batch: StageBatch): void {
    assert(
      (batch.append?.length ?? 0) === 0 && batch.truncateAfter === undefined,
      'an unsynced batch appends and truncates nothing',
    );
    const current = this.#state.fields.hardState;
    assert(
      batch.hardState === undefined ||
        (batch.hardState.term === current.term && batch.hardState.vote === current.vote),
      'an unsynced batch keeps the term and vote',
    );
  }

  /**
   * Returns the newest durable state as a snapshot point: the file's bytes up to the end of its
   * newest durable header, which never change, and the Raft position that header records.
   */
  durablePoint(): { size: number; meta: SnapshotMeta } {
    this.#checkUsable();
    const { fields } = decodeHeader(this.#file.header);
    return {
      size: this.#file.committedEnd,
      meta: {
        index: fields.applied.index,
        term: fields.applied.term,
        membership: fields.membership,
      },
    };
  }

  /** Waits for commits in flight, then closes the file. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#listeners.clear();
    this.#cache.clear();
    await this.#file.close();
  }

  #checkUsable(): void {
    if (this.#failure !== undefined) throw this.#failure;
    assert(!this.#closed, () => `database file ${this.path} is closed`);
  }

  #stage(batch: StageBatch): { state: EngineState; outcomes: AppliedEntry[] } {
    let fields = this.#state.fields;
    const appended = new Map<number, PreparedEntry>();
    let trees: EngineTrees = {
      ...this.#state.trees,
      log: this.#changeLog(batch, fields, appended),
    };
    if (batch.hardState !== undefined) fields = { ...fields, hardState: batch.hardState };
    if (batch.membership !== undefined) fields = { ...fields, membership: batch.membership };

    let outcomes: AppliedEntry[] = [];
    if (batch.apply !== undefined && batch.apply.length > 0) {
      const applied = this.#apply(batch.apply, { fields, trees }, appended);
      ({ fields, trees } = applied.state);
      outcomes = applied.outcomes;
    }
    if (batch.discardUpTo !== undefined)
      ({ fields, trees } = this.#discard(batch.discardUpTo, fields, trees));
    trees = pruneRequests(trees, fields);
    return { state: { fields, trees }, outcomes };
  }

  /** Truncates and appends in one tree change; prepared commands go to `appended`. */
  #changeLog(batch: StageBatch, fields: HeaderFields, appended: Map<number, PreparedEntry>) {
    const log = this.#state.trees.log;
    const entries = batch.append ?? [];
    let lastIndex = storedBounds(log)?.last.index ?? fields.discarded.index;
    let truncateAfter = batch.truncateAfter;
    const firstAppended = entries[0]?.index;
    if (firstAppended !== undefined && firstAppended <= lastIndex) {
      truncateAfter = Math.min(truncateAfter ?? firstAppended - 1, firstAppended - 1);
    }
    let removals: number[] = [];
    if (truncateAfter !== undefined) {
      assert(
        truncateAfter >= fields.applied.index,
        () =>
          `truncation after ${truncateAfter} would remove applied entries up to ${fields.applied.index}`,
      );
      removals = logIndexes(log, truncateAfter + 1, lastIndex);
      lastIndex = Math.min(lastIndex, truncateAfter);
      this.#cache.deleteAfter(truncateAfter);
    }
    const inserts: Array<[number, StoredEntry]> = [];
    for (const entry of entries) {
      assert(entry.index === lastIndex + 1, () => `append of ${entry.index} after ${lastIndex}`);
      lastIndex = entry.index;
      const { stored, prepared } = storeEntry(this.#file, entry);
      inserts.push([entry.index, stored]);
      appended.set(entry.index, prepared);
      this.#cache.add(entry.index, entry.term, prepared, entry.data.byteLength);
    }
    if (removals.length === 0 && inserts.length === 0) return log;
    return log.modify({ remove: removals, insert: inserts });
  }

  #apply(
    items: readonly ApplyItem[],
    state: EngineState,
    appended: Map<number, PreparedEntry>,
  ): { state: EngineState; outcomes: AppliedEntry[] } {
    const prepared = items.map((item) => this.#prepare(item, state.trees, appended));
    const batch = new ApplyBatch({ file: this.#file, trees: state.trees, fields: state.fields });
    batch.prefetch(prepared);
    const outcomes = items.map((item, i) => {
      const outcome = batch.apply({ index: item.index, term: item.term }, prepared[i]!);
      this.#cache.delete(item.index);
      return outcome;
    });
    return { state: batch.finish(), outcomes };
  }

  #prepare(
    item: ApplyItem,
    trees: EngineTrees,
    appended: Map<number, PreparedEntry>,
  ): PreparedEntry {
    const stored = trees.log.get(item.index);
    if (item.command !== undefined) {
      assert(stored === undefined, () => `the log holds entry ${item.index}`);
      return { command: item.command, formatError: null, segmentRefs: null };
    }
    assert(stored !== undefined, () => `apply of ${item.index}, which the log does not hold`);
    assert(
      stored.term === item.term,
      () => `apply of ${item.index} at term ${item.term}, but the log holds term ${stored.term}`,
    );
    return (
      appended.get(item.index) ??
      this.#cache.get(item.index, item.term) ??
      prepareStoredEntry(this.#file, stored)
    );
  }

  #discard(upTo: number, fields: HeaderFields, trees: EngineTrees): EngineState {
    if (upTo <= fields.discarded.index) return { fields, trees };
    assert(
      upTo <= fields.applied.index,
      () => `discard up to ${upTo} passes the applied index ${fields.applied.index}`,
    );
    const last = trees.log.get(upTo);
    assert(last !== undefined, () => `discard up to ${upTo}, which the log does not hold`);
    const removals = logIndexes(trees.log, fields.discarded.index + 1, upTo);
    const log = trees.log.modify({ remove: removals });
    return {
      fields: { ...fields, discarded: { index: upTo, term: last.term } },
      trees: { ...trees, log },
    };
  }

  #notify(updateSeq: number): void {
    if (this.#listeners.size === 0) return;
    queueMicrotask(() => {
      for (const listener of this.#listeners) listener(updateSeq);
    });
  }
}
