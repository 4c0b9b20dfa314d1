/**
 * A database file: one block file holding the document trees, the `_local/` tree, the purge
 * trees, the request-id table and the Raft log of one database, and the one commit that a
 * Raft group's driver needs (`stage`).
 *
 * `stage` takes everything of one batch, in this order: truncate the log after an index,
 * append entries, set the hard state and membership, apply committed entries, discard the log
 * up to an index. It does the work synchronously, returns each applied entry's outcome at
 * once, and writes one header whose commit resolves `durable` (an unsynced stage writes none:
 * the next synced stage's header covers it). Stages may follow each other while earlier ones
 * are syncing; they become durable in call order.
 *
 * A stage may hold its applies (`holdApply`). Their outcomes come at once from an open batch in
 * memory. Their tree changes, applied index and hash chain reach the trees later, in
 * `writeHeldApply`. Snapshots, applies that do not hold, compactions, and 64 held entries or
 * 256 held documents write them first. Until then headers record the older applied index, and a
 * crash applies the held entries again from the log, which the driver keeps by discarding no
 * further than `appliedInTrees`.
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
 * durable header. Reads are synchronous and see the applied state, held applies included,
 * which may be ahead of the newest durable header: applied entries are committed in the Raft
 * sense.
 *
 * Compaction (compaction.ts) rebuilds the file in a worker thread and swaps the new file in
 * inside this object, so a driver keeps calling `stage` on it throughout. The swap copies the
 * last changes from the in-memory state in one synchronous step, so it carries everything the
 * Raft group owns as staged so far (term, vote, membership, applied index, discard point,
 * hash chain, request ids, `_local/` documents, the retained log). Stages after the swap go
 * to the new file, and their `durable` waits until the new file is renamed into place and
 * the directory synced. The old block file stays open while snapshots of it are open.
 * `durablePoint()` describes the old file until the new file's first commit is durable, and
 * pins (snapshot-file.ts) read through a descriptor of the file they pinned, so a pin taken
 * before the swap keeps reading its bytes.
 */
import { randomBytes } from 'node:crypto';
import { dirname } from 'node:path';
import type { Entry, HardState, Membership, SnapshotMeta } from '../raft/types.js';
import { BlockFile, type CommitDiscipline } from '../storage/block-file.js';
import { type FileSystem, nodeFileSystem } from '../storage/io.js';
import { assert } from '../util/assert.js';
import { type Logger, silentLogger } from '../util/log.js';
import { ApplyBatch, type PreparedEntry } from './apply.js';
import type { Command } from './commands.js';
import {
  COMPACT_SUFFIX,
  type CompactionHost,
  type CompactionProgress,
  type CompactionResult,
  type CompactOptions,
  Compactor,
  recoverCompactionFiles,
} from './compaction.js';
import { copyDelta, runToEnd } from './compaction-copy.js';
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
  type LogShape,
  logIndexes,
  prepareStoredEntry,
  readEntries,
  readShape,
  storedBounds,
  storeEntry,
} from './log.js';
import { type AppliedEntry, INITIAL_HASH_CHAIN } from './outcome.js';
import { pruneRequests } from './request-table.js';
import { seqOpaque } from './seq.js';
import { SharedDescriptor } from './shared-descriptor.js';
import { EngineSnapshot } from './snapshot.js';
import type { LogPosition, StoredEntry } from './stored-entry.js';
import { type EngineTrees, openTrees, rootsOf, type TreeOptions } from './trees.js';

/** CouchDB's default `revs_limit`. */
export const DEFAULT_REVS_LIMIT = 1000;
/** CouchDB's default `purged_infos_limit`. */
export const DEFAULT_PURGED_INFOS_LIMIT = 1000;
/** Default window, in applied entries, in which a retried request id gets its first outcome. */
export const DEFAULT_REQUEST_RETENTION = 100_000;

/** The `durable` promise of an unsynced stage, resolved because it waits for nothing. */
const UNSYNCED_DURABLE: Promise<void> = Promise.resolve();
/** A held apply's tree changes are written once it contains this many entries. */
const HELD_APPLY_ENTRIES = 64;
/**
 * They are also written once the held entries write this many documents. Holding pays for
 * entries of one or a few documents each, whose tree changes would otherwise be written entry
 * by entry. Bulk entries already share them, and holding more of them costs memory and time.
 */
const HELD_APPLY_DOCUMENTS = 256;
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
  /** Logger of compactions and recoveries; silent when absent. */
  readonly logger?: Logger;
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
   * Applies into a held batch (see `writeHeldApply`): the outcomes come back at once, and the
   * tree changes wait until the held batch is written. Meanwhile the header keeps the earlier
   * applied index, so a crash applies those entries again and gets the same outcomes.
   */
  readonly holdApply?: boolean;
  /**
   * False when nothing in the batch must be durable before the caller goes on: it appends and
   * truncates nothing and keeps the term and vote (applying, discarding, a new commit index).
   * Such a batch writes no header: its records wait in the file's buffer, the next synced
   * batch's header covers them, and `durable` resolves at once. A crash or a close before that
   * reopens an earlier header, from which a Raft group applies the same entries again.
   */
  readonly sync?: boolean;
}

/** Entries applied with `holdApply` into one open batch. */
interface HeldApply {
  readonly batch: ApplyBatch;
  entries: number;
  /** Documents the held commands write or purge; other commands count one each. */
  documents: number;
}

/** A state with a held batch written into it, and whether that batch requested a compaction. */
interface WrittenHeld {
  readonly state: EngineState;
  readonly compactRequested: boolean;
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

/** The result of `#stage` for one batch, before its header is written. */
interface StagedBatch {
  readonly state: EngineState;
  readonly outcomes: AppliedEntry[];
  /** True when an applied `compact` command requests a compaction of the file. */
  readonly compactRequested: boolean;
}

export type UpdateListener = (updateSeq: number) => void;

/** A durable state of the file ready to ship: its bytes up to `size` through `descriptor`. */
export interface DurableSource {
  readonly size: number;
  readonly meta: SnapshotMeta;
  /** A reference the caller must release. */
  readonly descriptor: SharedDescriptor;
}

export class DatabaseFile {
  readonly #path: string;
  readonly #options: OpenOptions;
  readonly #fileSystem: FileSystem;
  readonly #logger: Logger;
  readonly #cache: CommandCache;
  readonly #listeners = new Set<UpdateListener>();
  /** The block file stages write to. */
  #file: BlockFile;
  /** The block file whose newest durable header is this database's durable state. */
  #durableFile: BlockFile;
  /** A descriptor of `#durableFile` for pins, opened on first use. */
  #descriptor: SharedDescriptor | null = null;
  /** Holders of each open block file: current, durable, and one per open snapshot. */
  readonly #fileHolders = new Map<BlockFile, number>();
  #state: EngineState;
  #failure: unknown;
  #closed = false;
  #compactor: Compactor | null = null;
  #compaction: Promise<CompactionResult> | null = null;
  /** Set while a swap renames the new file into place; later stages wait for it. */
  #swapBarrier: Promise<void> | null = null;
  /** The newest commit of `#file`; the swap waits for it before renaming over the old file. */
  #lastCommit: Promise<void> = Promise.resolve();
  /** Entries applied with `holdApply` whose tree changes are not written yet; null when none. */
  #held: HeldApply | null = null;

  private constructor(
    path: string,
    file: BlockFile,
    fields: HeaderFields,
    trees: EngineTrees,
    options: OpenOptions,
  ) {
    this.#path = path;
    this.#options = options;
    this.#fileSystem = options.fileSystem ?? nodeFileSystem;
    this.#logger = options.logger ?? silentLogger;
    this.#file = file;
    this.#durableFile = file;
    this.#hold(file);
    this.#hold(file);
    this.#cache = new CommandCache(options.commandCacheBytes ?? DEFAULT_COMMAND_CACHE_BYTES);
    this.#state = { fields, trees };
  }

  /**
   * Creates a database file; throws FileExistsError when `path` exists. Leftovers of a
   * compaction at `path` are handled first, as at open (a complete one becomes `path`).
   */
  static async create(path: string, options: CreateOptions): Promise<DatabaseFile> {
    await recoverCompactionFiles(
      path,
      options.fileSystem ?? nodeFileSystem,
      options.logger ?? silentLogger,
    );
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
    return new DatabaseFile(path, file, fields, openTrees(file, emptyRoots, options), options);
  }

  /**
   * Opens a database file at its newest durable header, after recovering what a compaction
   * interrupted by a crash left (compaction.ts).
   */
  static async open(path: string, options: OpenOptions = {}): Promise<DatabaseFile> {
    await recoverCompactionFiles(
      path,
      options.fileSystem ?? nodeFileSystem,
      options.logger ?? silentLogger,
    );
    const file = await BlockFile.open(path, options);
    try {
      const header = decodeHeader(file.header);
      const trees = openTrees(file, header.roots, options);
      return new DatabaseFile(path, file, header.fields, trees, options);
    } catch (error) {
      await file.close();
      throw error;
    }
  }

  /**
   * Opens the database file at `path`, or creates it when neither it nor a complete
   * compaction of it exists.
   */
  static async openOrCreate(path: string, options: CreateOptions): Promise<DatabaseFile> {
    const fileSystem = options.fileSystem ?? nodeFileSystem;
    await recoverCompactionFiles(path, fileSystem, options.logger ?? silentLogger);
    if (await fileSystem.exists(path)) return DatabaseFile.open(path, options);
    return DatabaseFile.create(path, options);
  }

  get path(): string {
    return this.#path;
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

  /** The outcome hash chain after the last applied entry, held ones included. */
  get hashChain(): Buffer {
    return this.#held?.batch.hashChain ?? this.#state.fields.hashChain;
  }

  /** The update sequence after the last applied entry, held ones included. */
  get updateSeq(): number {
    return this.#held?.batch.updateSeq ?? this.#state.fields.updateSeq;
  }

  /** The index of the last entry whose changes are in the trees: held applies not included. */
  get appliedInTrees(): number {
    return this.#state.fields.applied.index;
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

  /** Reads the terms and payload lengths of the retained entries `from..to`, both included. */
  readLogShape(from: number, to: number): LogShape {
    this.#checkUsable();
    return readShape(this.#state.trees.log, from, to);
  }

  /**
   * Opens a read snapshot of the applied state. Its reads are synchronous; close it, because
   * it keeps its block file open across a compaction swap.
   */
  snapshot(): EngineSnapshot {
    this.#checkUsable();
    this.writeHeldApply();
    const { fields, trees } = this.#state;
    const file = this.#file;
    this.#hold(file);
    return new EngineSnapshot(file, fields, trees, seqOpaque(fields.uuid), {
      compactRunning: this.#compactor !== null,
      onClose: () => this.#release(file),
    });
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
    let staged: StagedBatch;
    try {
      staged = this.#stage(batch);
    } catch (error) {
      this.#failure ??= error;
      throw error;
    }
    this.#state = staged.state;
    let durable: Promise<void> = UNSYNCED_DURABLE;
    if (sync) {
      const header = encodeHeader({
        fields: staged.state.fields,
        roots: rootsOf(staged.state.trees),
      });
      const committed = this.#file.commit(header);
      this.#lastCommit = committed;
      const barrier = this.#swapBarrier;
      durable = barrier === null ? committed : committed.then(() => barrier);
      durable.catch((error: unknown) => {
        this.#failure ??= error;
      });
    }
    if (staged.outcomes.length > 0) this.#notify(this.updateSeq);
    if (staged.compactRequested) this.#compactInBackground();
    return { outcomes: staged.outcomes, durable };
  }

  /**
   * Writes the tree changes of the entries applied with `holdApply` (see `StageBatch`), as an
   * unsynced stage: the next synced stage's header covers them. Reads, compactions and applies
   * without `holdApply` do this first, so they always see every applied entry.
   */
  writeHeldApply(): void {
    if (this.#held === null) return;
    this.#checkUsable();
    let written: WrittenHeld;
    try {
      written = this.#writeHeldInto(this.#state);
    } catch (error) {
      this.#failure ??= error;
      throw error;
    }
    this.#state = written.state;
    if (written.compactRequested) this.#compactInBackground();
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
    const { fields } = decodeHeader(this.#durableFile.header);
    return {
      size: this.#durableFile.committedEnd,
      meta: {
        index: fields.applied.index,
        term: fields.applied.term,
        membership: fields.membership,
      },
    };
  }

  /**
   * Returns the newest durable state with a descriptor that reads exactly the file that state
   * lives in, even if a swap renames another file over the path later. Release the descriptor.
   */
  durableSource(): DurableSource {
    const point = this.durablePoint();
    this.#descriptor ??= SharedDescriptor.open(this.#path);
    return { ...point, descriptor: this.#descriptor.acquire() };
  }

  /** The running compaction's progress, or null. */
  get compaction(): CompactionProgress | null {
    return this.#compactor?.progress ?? null;
  }

  /** Returns the running compaction's outcome, or null when none runs. */
  compactionDone(): Promise<CompactionResult> | null {
    return this.#compaction;
  }

  /**
   * Compacts the file online (compaction.ts) and resolves once the new file is in place;
   * joins the running compaction when there is one.
   */
  compact(options: CompactOptions = {}): Promise<CompactionResult> {
    this.#checkUsable();
    if (this.#compaction !== null) return this.#compaction;
    const compactor = new Compactor(this.#compactionHost(), options);
    this.#compactor = compactor;
    const running = compactor.run().finally(() => {
      if (this.#compactor === compactor) {
        this.#compactor = null;
        this.#compaction = null;
      }
    });
    this.#compaction = running;
    return running;
  }

  /**
   * Stops a running compaction, waits for commits in flight, then closes the file. A swap
   * already renaming the new file into place is finished first.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    // Held applies are in no header yet: the next open applies their entries again.
    this.#held = null;
    this.#listeners.clear();
    this.#cache.clear();
    this.#compactor?.abort();
    await this.#compaction?.catch(() => undefined);
    await this.#swapBarrier?.catch(() => undefined);
    this.#descriptor?.release();
    this.#descriptor = null;
    const files = [...this.#fileHolders.keys()];
    this.#fileHolders.clear();
    for (const file of files) await file.close();
  }

  #checkUsable(): void {
    if (this.#failure !== undefined) throw this.#failure;
    assert(!this.#closed, () => `database file ${this.path} is closed`);
  }

  #hold(file: BlockFile): void {
    this.#fileHolders.set(file, (this.#fileHolders.get(file) ?? 0) + 1);
  }

  /** Drops one holder of `file`, and closes the file when no holder is left. */
  #release(file: BlockFile): void {
    const holders = this.#fileHolders.get(file);
    if (holders === undefined) return;
    if (holders > 1) {
      this.#fileHolders.set(file, holders - 1);
      return;
    }
    this.#fileHolders.delete(file);
    file.close().catch((error: unknown) => {
      this.#logger.warn({ path: file.path, err: error }, 'closing a replaced block file failed');
    });
  }

  /** Starts a compaction a `compact` command asked for; its failure is logged by it. */
  #compactInBackground(): void {
    if (this.#compaction !== null) return;
    this.compact().catch(() => undefined);
  }

  #compactionHost(): CompactionHost {
    return {
      path: this.#path,
      fileSystem: this.#fileSystem,
      nodeSizeBytes: this.#options.nodeSizeBytes,
      logger: this.#logger,
      sizeBytes: () => this.#file.end,
      durableHeader: () => Uint8Array.from(this.#durableFile.header),
      backlogSince: (header) => this.#backlogSince(header),
      finish: (targetPath, copied) => this.#finishCompaction(targetPath, copied),
    };
  }

  #backlogSince(header: Uint8Array): number {
    const copied = decodeHeader(header).fields;
    const live = this.#state.fields;
    const entries = Math.max(0, this.logExtent().lastIndex - copied.applied.index);
    return live.updateSeq - copied.updateSeq + (live.purgeSeq - copied.purgeSeq) + entries;
  }

  /** Opens the compacted file, switches to it and renames it into place (see the header). */
  async #finishCompaction(targetPath: string, copied: Uint8Array): Promise<number> {
    const target = await BlockFile.open(targetPath, {
      fileSystem: this.#fileSystem,
      discipline: this.#options.discipline,
    });
    let committed: Promise<void>;
    try {
      this.#checkUsable();
      this.writeHeldApply();
      committed = this.#switchTo(target, copied);
    } catch (error) {
      await target.close().catch(() => undefined);
      throw error;
    }
    const swap = this.#completeSwap(target, targetPath, committed);
    this.#swapBarrier = swap;
    try {
      await swap;
    } catch (error) {
      this.#failure ??= error;
      throw error;
    } finally {
      if (this.#swapBarrier === swap) this.#swapBarrier = null;
    }
    return target.end;
  }

  /**
   * Copies the changes since `copied` from the in-memory state into `target`, commits it and
   * makes it the file stages write to, all in one synchronous step.
   */
  #switchTo(target: BlockFile, copied: Uint8Array): Promise<void> {
    const held = decodeHeader(copied);
    const live = this.#file;
    const liveCommitted = this.#lastCommit;
    const targetHeader = decodeHeader(target.header);
    const result = runToEnd(
      copyDelta(
        { file: live, fields: held.fields, trees: openTrees(live, held.roots, this.#options) },
        { file: live, fields: this.#state.fields, trees: this.#state.trees },
        {
          file: target,
          trees: openTrees(target, targetHeader.roots, this.#options),
          fields: targetHeader.fields,
        },
      ),
    );
    const targetCommitted = target.commit(
      encodeHeader({ fields: result.fields, roots: rootsOf(result.trees) }),
    );
    this.#lastCommit = targetCommitted;
    // The old file's commits still in flight finish before the renames, so no write to the
    // old file follows the swap (the target already contains their state).
    const committed = Promise.all([targetCommitted, liveCommitted]).then(() => undefined);
    this.#hold(target);
    this.#file = target;
    this.#state = { fields: result.fields, trees: result.trees };
    // Cached commands point at records of the old file; applying reads the new log instead.
    this.#cache.clear();
    this.#release(live);
    return committed;
  }

  /** Once the new file's first commit is durable: moves pins to it and renames it in place. */
  async #completeSwap(target: BlockFile, targetPath: string, committed: Promise<void>) {
    await committed;
    const descriptor = SharedDescriptor.open(targetPath);
    const previous = this.#durableFile;
    this.#hold(target);
    this.#durableFile = target;
    this.#release(previous);
    this.#descriptor?.release();
    this.#descriptor = descriptor;
    const complete = `${this.#path}${COMPACT_SUFFIX}`;
    const directory = dirname(this.#path);
    await this.#fileSystem.rename(targetPath, complete);
    await this.#fileSystem.syncDirectory(directory);
    await this.#fileSystem.rename(complete, this.#path);
    await this.#fileSystem.syncDirectory(directory);
  }

  #stage(batch: StageBatch): StagedBatch {
    let fields = this.#state.fields;
    const appended = new Map<number, PreparedEntry>();
    let trees: EngineTrees = {
      ...this.#state.trees,
      log: this.#changeLog(batch, fields, appended),
    };
    if (batch.hardState !== undefined) fields = { ...fields, hardState: batch.hardState };
    if (batch.membership !== undefined) fields = { ...fields, membership: batch.membership };

    let outcomes: AppliedEntry[] = [];
    let compactRequested = false;
    if (batch.apply !== undefined && batch.apply.length > 0 && batch.holdApply === true) {
      outcomes = this.#applyHeld(batch.apply, { fields, trees }, appended);
    } else if (batch.apply !== undefined && batch.apply.length > 0) {
      const written = this.#writeHeldInto({ fields, trees });
      const applied = this.#apply(batch.apply, written.state, appended);
      ({ fields, trees } = applied.state);
      outcomes = applied.outcomes;
      compactRequested = written.compactRequested || applied.compactRequested;
    }
    // A compaction starts as soon as its command is applied, as CouchDB's `_compact` does, so a
    // held batch that requested one is written now.
    const held = this.#held;
    if (
      held !== null &&
      (held.entries >= HELD_APPLY_ENTRIES ||
        held.documents >= HELD_APPLY_DOCUMENTS ||
        held.batch.compactRequested)
    ) {
      const written = this.#writeHeldInto({ fields, trees });
      ({ fields, trees } = written.state);
      compactRequested ||= written.compactRequested;
    }
    if (batch.discardUpTo !== undefined)
      ({ fields, trees } = this.#discard(batch.discardUpTo, fields, trees));
    // A held batch writes the request trees it started from, so pruning waits until it is written.
    if (this.#held === null) trees = pruneRequests(trees, fields);
    return { state: { fields, trees }, outcomes, compactRequested };
  }

  /** Applies `items` into the held batch, opening one on `state` if none is open. */
  #applyHeld(
    items: readonly ApplyItem[],
    state: EngineState,
    appended: Map<number, PreparedEntry>,
  ): AppliedEntry[] {
    const prepared = items.map((item) => this.#prepare(item, state.trees, appended));
    this.#held ??= {
      batch: new ApplyBatch({ file: this.#file, trees: state.trees, fields: state.fields }),
      entries: 0,
      documents: 0,
    };
    const held = this.#held;
    held.batch.prefetch(prepared);
    const outcomes = items.map((item, i) => {
      const outcome = held.batch.apply({ index: item.index, term: item.term }, prepared[i]!);
      this.#cache.delete(item.index);
      return outcome;
    });
    held.entries += items.length;
    for (const { command } of prepared) {
      held.documents +=
        command?.kind === 'documents' || command?.kind === 'purge' ? command.docs.length : 1;
    }
    return outcomes;
  }

  /**
   * Returns `state` with the held batch's tree changes and applied fields, and closes the held
   * batch. The log tree, the hard state, the membership and the discard point stay those of
   * `state`, since only stages change them.
   */
  #writeHeldInto(state: EngineState): WrittenHeld {
    const held = this.#held;
    if (held === null) return { state, compactRequested: false };
    this.#held = null;
    const finished = held.batch.finish();
    const { trees, fields } = finished;
    const merged: EngineState = {
      trees: {
        ...state.trees,
        byId: trees.byId,
        bySeq: trees.bySeq,
        local: trees.local,
        purge: trees.purge,
        purgeSeq: trees.purgeSeq,
        requests: trees.requests,
        requestIndex: trees.requestIndex,
      },
      fields: {
        ...state.fields,
        updateSeq: fields.updateSeq,
        revsLimit: fields.revsLimit,
        security: fields.security,
        applied: fields.applied,
        hashChain: fields.hashChain,
        purgeSeq: fields.purgeSeq,
        purgedInfosLimit: fields.purgedInfosLimit,
      },
    };
    return {
      state: { fields: merged.fields, trees: pruneRequests(merged.trees, merged.fields) },
      compactRequested: held.batch.compactRequested,
    };
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
  ): { state: EngineState; outcomes: AppliedEntry[]; compactRequested: boolean } {
    const prepared = items.map((item) => this.#prepare(item, state.trees, appended));
    const batch = new ApplyBatch({ file: this.#file, trees: state.trees, fields: state.fields });
    batch.prefetch(prepared);
    const outcomes = items.map((item, i) => {
      const outcome = batch.apply({ index: item.index, term: item.term }, prepared[i]!);
      this.#cache.delete(item.index);
      return outcome;
    });
    return { state: batch.finish(), outcomes, compactRequested: batch.compactRequested };
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
