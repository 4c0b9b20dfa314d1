/**
 * The driver of one Raft group: it runs a `RawNode` over one database file and follows the
 * core's driver contract (src/raft/index.ts).
 *
 * Each persist round takes every Ready produced since the previous round and writes it as one
 * commit of the database file: the appended entries, the hard state, the apply of the committed
 * entries with the new applied index and hash chain, and the discard of entries past the
 * retention point. A round that only applies (no entries, no truncation, no discard, the same
 * term and vote) writes no header and no fsync: the applied state can be rebuilt from the log,
 * and the next synced round's header covers it. A write then costs the leader one commit, not
 * two. Messages
 * that may leave at once are sent as soon as a Ready is taken. The round's staging waits until
 * the transport has written them, so the leader's disk write overlaps the followers' round
 * trip. The rest leave after the commit is durable. A follower defers the apply of committed
 * entries to its next tick and then applies them in one batch (`#deferApply`). A follower's
 * round that both syncs and applies is split: the synced part first, then the apply while its
 * fsync runs, so the apply's work overlaps the fsync instead of delaying it. While one commit
 * syncs, the next round collects everything that arrives meanwhile, so one fsync serves many
 * proposals (group commit).
 *
 * Proposals resolve when their entry is applied, before the local commit that applied it is
 * synced: the entry is committed, so it is durable on a majority, and applying is deterministic,
 * so a crash re-applies it from the log with the same outcome.
 *
 * What the driver does not do: routing messages between nodes (the node does), deciding which
 * databases exist, or forwarding client requests.
 */

import { performance } from 'node:perf_hooks';
import type { GroupMetrics } from '../ops/metrics.js';
import type {
  ConfChangeResult,
  ConfChangeStep,
  Entry,
  HardState,
  Membership,
  Message,
  NodeId,
  PlantedBug,
  RaftLogger,
  Ready,
  SnapshotMeta,
  Status,
  TransferResult,
} from '../raft/index.js';
import { NO_NODE, RawNode } from '../raft/index.js';
import { assert } from '../util/assert.js';
import { errors } from '../util/couch-error.js';
import type { Logger } from '../util/log.js';
import { LogStore, type RetainedShape } from './log-store.js';

/** The durable Raft state a database file holds, read when the group opens. */
export interface GroupFileState {
  readonly hardState: HardState;
  readonly appliedIndex: number;
  readonly appliedTerm: number;
  /** The last discarded entry (0, 0 when none was). */
  readonly discardedIndex: number;
  readonly discardedTerm: number;
  readonly membership: Membership;
}

/** One commit of the database file, as the driver requests it. */
export interface GroupCommit {
  /** Remove log entries after this index before appending (a follower's conflicting tail). */
  readonly truncateAfter?: number;
  readonly append: readonly Entry[];
  readonly hardState?: HardState;
  /** Committed entries to apply, contiguous from the applied index + 1. */
  readonly apply: readonly Entry[];
  /** The membership as of the last applied entry, when the applied entries changed it. */
  readonly membership?: Membership;
  readonly discardUpTo?: number;
  /**
   * Apply into the file's held batch: the outcomes come back at once, and the tree changes are
   * written later (`GroupFile.writeHeldApply`). The log keeps those entries meanwhile.
   */
  readonly holdApply?: boolean;
  /**
   * False when the commit appends and truncates nothing and keeps the term and vote: nothing
   * in it must be durable before the driver goes on, so the file may skip its fsync.
   */
  readonly sync: boolean;
}

/** The part of a database file the driver uses; the engine's `DatabaseFile` provides it. */
export interface GroupFile<Outcome> {
  raftState(): GroupFileState;
  /** Entries [from, to), payloads equal to what was appended. */
  readLogEntries(from: number, to: number): Entry[];
  /** Returns the terms and payload lengths of every retained entry, after the discard point. */
  readRetainedShape(): RetainedShape;
  /**
   * Stages one commit synchronously and returns the outcome of each applied entry, in order,
   * and a promise that resolves once the commit is durable (rejects if it cannot be).
   */
  stage(commit: GroupCommit): { outcomes: readonly Outcome[]; durable: Promise<void> };
  /** Writes the tree changes of held applies (see `GroupCommit.holdApply`), unsynced. */
  writeHeldApply(): void;
  /**
   * The index of the last applied entry whose changes are in the trees. A discard stays at or
   * below it, so the log keeps every entry a crash would apply again.
   */
  appliedInTrees(): number;
  /** The outcome hash chain after the applied index, hex. */
  hashChain(): string;
}

export interface GroupOptions<Outcome> {
  /** This node's id. */
  readonly node: NodeId;
  /** A name for logs: the database name. */
  readonly name: string;
  readonly file: GroupFile<Outcome>;
  readonly send: (to: NodeId, message: Message) => void;
  readonly random: () => number;
  readonly logger: Logger;
  readonly retentionEntries: number;
  readonly retentionBytes: number;
  /** Payload bytes of retained entries kept in memory; older ones are read from the file. */
  readonly logCacheBytes?: number;
  readonly electionTicks?: number;
  readonly heartbeatTicks?: number;
  /** Test-only: bugs planted in the core to prove that fault runs catch them. */
  readonly plantedBugs?: readonly PlantedBug[];
  /** RaftConfig.lazyCommit, on by default. */
  readonly lazyCommit?: boolean;
  /**
   * A follower applies committed entries in batches (see `#deferApply`), on by default. Off for
   * a group whose applies other nodes wait for, such as the catalog.
   */
  readonly batchFollowerApplies?: boolean;
  /**
   * Applies go into the file's held batch, whose tree changes are written every
   * HELD_APPLY_WRITE_TICKS ticks or sooner (see `GroupCommit.holdApply`). On by default, and
   * off for the catalog, whose applies other code reads at once.
   */
  readonly holdApplies?: boolean;
  /** Counters and histograms of Raft events (ops/metrics.ts); none when absent. */
  readonly metrics?: GroupMetrics;
  /** Called once when the file fails to commit: the group must not acknowledge anything more. */
  readonly onFatal: (error: unknown) => void;
  /**
   * Fetches a snapshot from `from` and installs it as this group's file (keeping `hardState`),
   * returning the new file and the snapshot it holds; rejects when that fails.
   */
  readonly installSnapshot: (
    requested: SnapshotMeta,
    from: NodeId,
    hardState: HardState,
  ) => Promise<{ file: GroupFile<Outcome>; meta: SnapshotMeta }>;
  /** Called when a request starts to wait for a leader while none is known. */
  readonly onLeaderAwaited?: () => void;
}

/** The outcome of a proposal is not known: the entry may or may not be applied. */
export class UnknownOutcomeError extends Error {
  override readonly name = 'UnknownOutcomeError';
}

/** The proposal was never appended here because this node does not lead; `leader` may help. */
export class NotLeaderError extends Error {
  override readonly name = 'NotLeaderError';
  constructor(readonly leader: NodeId) {
    super(leader === NO_NODE ? 'no leader is known' : `the leader is ${leader}`);
  }
}

/** The proposal's entry was replaced by another leader's entry: it will never be applied. */
export class DroppedProposalError extends Error {
  override readonly name = 'DroppedProposalError';
}

interface ProposalWaiter<Outcome> {
  readonly term: number;
  /** `performance.now()` when proposed, for the commit latency metric. */
  readonly proposedAt: number;
  resolve(outcome: Outcome): void;
  reject(error: Error): void;
}

interface LeaderWaiter {
  readonly wanted: NodeId | undefined;
  resolve(leader: NodeId): void;
}

interface ReadWaiter {
  readonly deadline: number;
  resolve(): void;
  reject(error: Error): void;
}

const DEFAULT_LOG_CACHE_BYTES = 4 * 1024 * 1024;
/** Discard in steps of at least this many entries, so the raft tree is not rewritten per commit. */
const DISCARD_STEP_ENTRIES = 64;
/**
 * Ticks between writes of the file's held applies: with 100 ms ticks, a database with about
 * ten writes a second writes its trees once for about ten entries. A crash applies the held
 * entries again from the log.
 */
const HELD_APPLY_WRITE_TICKS = 10;
/** A follower applies once this many committed entries wait, without waiting for the tick. */
export const DEFERRED_APPLY_ENTRIES = 256;
/** A follower also applies once the deferred entries' payloads reach this many bytes. */
export const DEFERRED_APPLY_BYTES = 4 * 1024 * 1024;
/** A read round that got no read state by then is asked again (the core never reports a loss). */
const READ_RETRY_MS = 500;
const MS_PER_SECOND = 1000;

export class RaftGroup<Outcome> {
  readonly raw: RawNode;
  readonly store: LogStore;
  readonly #options: GroupOptions<Outcome>;
  readonly #log: Logger;

  #file: GroupFile<Outcome>;
  #pending: Ready[] = [];
  #persisting = false;
  /** A snapshot install in progress; persisting waits for it. */
  #installing: Promise<void> | null = null;
  #snapshotsReceived = 0;
  #scheduled = false;
  #failed: unknown = null;
  #closed = false;
  #membership: Membership;
  #appliedIndex: number;
  /** Committed entries whose apply a follower deferred to a later round, in log order. */
  #deferred: Entry[] = [];
  /** Payload bytes of `#deferred`. */
  #deferredBytes = 0;
  /** Set by a tick: the next round applies the deferred entries. */
  #applyDeferred = false;
  /** Ticks since the file's held applies were last written (see HELD_APPLY_WRITE_TICKS). */
  #ticksSinceHeldWrite = 0;

  readonly #proposals = new Map<number, ProposalWaiter<Outcome>>();
  /** Reads waiting for the next read round. */
  #readQueue: ReadWaiter[] = [];
  /** Reads of rounds sent to the core, by context. */
  readonly #readRounds = new Map<string, { waiters: ReadWaiter[]; sentAt: number }>();
  /** Reads whose read index is known, waiting for the applied index to reach it. */
  #readsByIndex: { index: number; waiters: ReadWaiter[] }[] = [];
  #readCounter = 0;
  #leaderWaiters: LeaderWaiter[] = [];
  #lastRole = '';
  #lastLeader: NodeId = NO_NODE;
  /** `performance.now()` of the last durable append of new entries, or -Infinity. */
  #lastNewEntryAtMs = Number.NEGATIVE_INFINITY;

  constructor(options: GroupOptions<Outcome>) {
    this.#options = options;
    this.#log = options.logger;
    this.#file = options.file;
    const state = options.file.raftState();
    const snapshot: SnapshotMeta = {
      index: state.discardedIndex,
      term: state.discardedTerm,
      membership: state.membership,
    };
    this.#membership = state.membership;
    this.#appliedIndex = state.appliedIndex;
    this.store = new LogStore(
      state.hardState,
      snapshot,
      options.file.readRetainedShape(),
      (from, to) => this.#file.readLogEntries(from, to),
      options.logCacheBytes ?? DEFAULT_LOG_CACHE_BYTES,
    );
    this.raw = new RawNode(
      {
        id: options.node,
        membership: state.membership,
        applied: state.appliedIndex,
        random: options.random,
        quiesce: true,
        lazyCommit: options.lazyCommit ?? true,
        ...(options.electionTicks === undefined ? {} : { electionTicks: options.electionTicks }),
        ...(options.heartbeatTicks === undefined ? {} : { heartbeatTicks: options.heartbeatTicks }),
        ...(options.plantedBugs === undefined ? {} : { plantedBugs: options.plantedBugs }),
        logger: raftLogger(options.logger),
      },
      this.store,
    );
  }

  get name(): string {
    return this.#options.name;
  }

  get appliedIndex(): number {
    return this.#appliedIndex;
  }

  /**
   * `performance.now()` when new entries were last appended durably here, or -Infinity. New
   * means not yet committed when they arrived: writes being made now, not a follower catching
   * up on old ones after a restart.
   */
  get lastNewEntryAtMs(): number {
    return this.#lastNewEntryAtMs;
  }

  get failed(): boolean {
    return this.#failed !== null;
  }

  /** True when nothing is in flight, so the group can be closed. */
  get idle(): boolean {
    return (
      !this.#persisting &&
      this.#installing === null &&
      this.#pending.length === 0 &&
      this.#proposals.size === 0 &&
      this.#readQueue.length === 0 &&
      this.#readRounds.size === 0 &&
      this.#readsByIndex.length === 0 &&
      this.#deferred.length === 0 &&
      !this.raw.hasReady()
    );
  }

  status(): Status {
    return this.raw.status();
  }

  hashChain(): string {
    return this.#file.hashChain();
  }

  /** Proposals appended here that are neither applied nor failed yet. */
  get pendingProposals(): number {
    return this.#proposals.size;
  }

  /** Snapshots this node installed for this group since the group opened. */
  get snapshotsReceived(): number {
    return this.#snapshotsReceived;
  }

  tick(): void {
    if (this.#closed || this.failed) return;
    this.raw.tick();
    this.#retryStaleReadRounds();
    this.#ticksSinceHeldWrite += 1;
    if (this.#ticksSinceHeldWrite >= HELD_APPLY_WRITE_TICKS) {
      this.#ticksSinceHeldWrite = 0;
      try {
        this.#file.writeHeldApply();
      } catch (error) {
        this.#fail(error);
        return;
      }
    }
    // Entries in a round not yet built are covered too, so none waits past the next tick.
    if (this.#deferred.length > 0 || this.#pending.length > 0 || this.#persisting) {
      this.#applyDeferred = true;
    }
    this.#schedule();
  }

  step(message: Message): void {
    if (this.#closed || this.failed) return;
    this.raw.step(message);
    this.#schedule();
  }

  campaign(): void {
    if (this.#closed || this.failed) return;
    this.raw.campaign();
    this.#schedule();
  }

  /** Drops the known leader because its node is gone, so this node grants pre-votes and may campaign. */
  forgetLeader(): void {
    if (this.#closed || this.failed) return;
    this.raw.forgetLeader();
    this.#schedule();
  }

  /** Proposes a membership change on this leader; see `RawNode.proposeConfChange`. */
  proposeConfChange(steps: readonly ConfChangeStep[]): ConfChangeResult {
    if (this.#closed || this.failed) return { ok: false, reason: 'not_leader', leader: NO_NODE };
    const result = this.raw.proposeConfChange(steps);
    this.#schedule();
    return result;
  }

  /** Starts a leadership transfer to `to` on this leader; see `RawNode.transferLeader`. */
  transferLeader(to: NodeId): TransferResult {
    if (this.#closed || this.failed) return { ok: false, reason: 'not_leader', leader: NO_NODE };
    const result = this.raw.transferLeader(to);
    this.#schedule();
    return result;
  }

  /**
   * Proposes `data` and resolves with its outcome once applied here. Rejects with
   * `NotLeaderError` when the entry was not appended, `DroppedProposalError` when another entry
   * took its place, and `UnknownOutcomeError` when this node cannot tell (it stopped leading and
   * the entry was not applied here before `deadline`).
   */
  propose(data: Uint8Array, deadline: number): Promise<Outcome> {
    if (this.failed || this.#closed) {
      return Promise.reject(new NotLeaderError(NO_NODE));
    }
    const result = this.raw.propose(data);
    if (!result.ok) {
      this.#options.metrics?.proposalFailed('not_leader');
      return Promise.reject(new NotLeaderError(result.leader));
    }
    this.#schedule();
    return new Promise<Outcome>((resolve, reject) => {
      const timer = setTimeout(
        () => {
          if (this.#proposals.get(result.index) !== waiter) return;
          this.#proposals.delete(result.index);
          this.#options.metrics?.proposalFailed('timeout');
          reject(new UnknownOutcomeError('the write was not applied before the timeout'));
        },
        Math.max(0, deadline - Date.now()),
      );
      const waiter: ProposalWaiter<Outcome> = {
        term: result.term,
        proposedAt: performance.now(),
        resolve: (outcome) => {
          clearTimeout(timer);
          resolve(outcome);
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      };
      this.#proposals.set(result.index, waiter);
    });
  }

  /**
   * Resolves once this node has applied everything committed before the call, as confirmed by
   * the leader (ReadIndex), so a read of the local file afterwards is linearizable.
   */
  readBarrier(deadline: number): Promise<void> {
    if (this.failed || this.#closed) {
      return Promise.reject(errors.unavailable('the database group is closed on this node'));
    }
    if (this.raw.leader === NO_NODE) this.#options.onLeaderAwaited?.();
    return new Promise<void>((resolve, reject) => {
      this.#readQueue.push({ deadline, resolve, reject });
      this.#schedule();
    });
  }

  /**
   * Resolves with the leader once one is known (once `wanted` leads, when given), or with the
   * leader known at `deadline`.
   */
  waitForLeader(deadline: number, wanted?: NodeId): Promise<NodeId> {
    const leader = this.raw.status().leader;
    const found = wanted === undefined ? leader !== NO_NODE : leader === wanted;
    if (found || Date.now() >= deadline) return Promise.resolve(leader);
    if (leader === NO_NODE) this.#options.onLeaderAwaited?.();
    return new Promise((resolve) => {
      const waiter = {
        wanted,
        resolve: (found: NodeId) => {
          clearTimeout(timer);
          resolve(found);
        },
      };
      const timer = setTimeout(() => {
        this.#leaderWaiters = this.#leaderWaiters.filter((other) => other !== waiter);
        resolve(this.raw.status().leader);
      }, deadline - Date.now());
      this.#leaderWaiters.push(waiter);
    });
  }

  /** Stops the group: pending proposals get an unknown outcome, pending reads fail. */
  async close(): Promise<void> {
    this.#closed = true;
    while (this.#persisting || this.#installing !== null) {
      await new Promise((resolve) => setImmediate(resolve));
    }
    this.#failAll(() => new UnknownOutcomeError('the database group closed on this node'));
  }

  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      this.#process();
    });
  }

  #process(): void {
    if (this.failed || this.#closed) return;
    this.#startReadRound();
    let sent = false;
    while (this.raw.hasReady()) {
      const ready = this.raw.ready();
      for (const message of ready.messages) this.#options.send(message.to, message);
      sent ||= ready.messages.length > 0;
      for (const state of ready.readStates) this.#onReadState(state.index, state.context);
      this.#options.metrics?.entriesCommitted(ready.committedEntries.length);
      this.#pending.push(ready);
    }
    this.#noticeLeadership();
    if (this.#installing !== null) return;
    if (this.#persisting || (this.#pending.length === 0 && !this.#deferredDue())) return;
    this.#persisting = true;
    if (sent) {
      // The transport writes a turn's messages from an immediate queued by the first send.
      // An immediate queued now runs after that one, so the peers get this round's entries
      // before the staging work starts.
      setImmediate(() => void this.#persist());
    } else {
      void this.#persist();
    }
  }

  async #persist(): Promise<void> {
    if (this.failed || this.#closed) {
      this.#persisting = false;
      return;
    }
    const batch = this.#pending;
    this.#pending = [];
    const commit = this.#buildCommit(batch);
    const stagedAt = performance.now();
    const [first, second] = this.#splitApply(batch, commit);
    const durable: Array<Promise<void>> = [];
    if (!this.#stagePart(first, durable)) return;
    if (second !== undefined) {
      // The synced part is written and its fsync dispatched, so the apply runs during the fsync.
      await new Promise((resolve) => setImmediate(resolve));
      if (this.#closed) {
        this.#persisting = false;
        return;
      }
      if (!this.#stagePart(second, durable)) return;
    }
    try {
      await Promise.all(durable);
    } catch (error) {
      this.#fail(error);
      return;
    }
    this.#options.metrics?.commitDurable((performance.now() - stagedAt) / MS_PER_SECOND);
    this.#afterDurable(batch, commit);
    this.#persisting = false;
    if (!this.#closed) this.#process();
  }

  /** Stages one commit and resolves what its apply decided. Returns false after a failure. */
  #stagePart(commit: GroupCommit, durable: Array<Promise<void>>): boolean {
    try {
      const staged = this.#file.stage(commit);
      this.#options.metrics?.entriesApplied(commit.apply.length);
      durable.push(staged.durable);
      this.#appliedIndex = commit.apply.at(-1)?.index ?? this.#appliedIndex;
      this.#resolveProposals(commit.apply, staged.outcomes);
      this.#resolveReads();
      return true;
    } catch (error) {
      this.#fail(error);
      return false;
    }
  }

  /**
   * Splits a follower's round that both syncs new entries and applies older ones (their
   * commit index arrives with the next append). The leader waits for the follower's fsync, not
   * for its apply, so the apply goes in a second, unsynced stage, done while the fsync runs.
   * The leader keeps one commit: its applies resolve client requests when staged, before the
   * fsync, and one commit per round saves a header and a write. A round that discards keeps one
   * commit too, since a discard must not be durable before the apply of what it discards, and
   * so does a round that installs a snapshot.
   */
  #splitApply(
    batch: readonly Ready[],
    commit: GroupCommit,
  ): [GroupCommit] | [GroupCommit, GroupCommit] {
    if (
      !commit.sync ||
      batch.some((ready) => ready.snapshot !== null) ||
      commit.apply.length === 0 ||
      commit.discardUpTo !== undefined ||
      this.#lastRole === 'leader'
    ) {
      return [commit];
    }
    const { apply, membership, holdApply, ...synced } = commit;
    return [
      { ...synced, apply: [] },
      {
        append: [],
        apply,
        ...(membership === undefined ? {} : { membership }),
        ...(holdApply === undefined ? {} : { holdApply }),
        sync: false,
      },
    ];
  }

  #buildCommit(batch: readonly Ready[]): GroupCommit {
    let append: Entry[] = [];
    let truncateAfter: number | undefined;
    let hardState: HardState | undefined;
    let membership: Membership | undefined;
    let apply: Entry[] = [];
    for (const ready of batch) {
      if (ready.entries.length > 0) {
        const first = ready.entries[0]!.index;
        const appendedFrom = append[0]?.index ?? Number.POSITIVE_INFINITY;
        if (first < appendedFrom + append.length) {
          // The new entries overwrite part of what this batch appends or the durable log.
          if (first <= appendedFrom) {
            append = [];
            if (first <= this.store.lastIndex()) truncateAfter = first - 1;
          } else {
            append.length = first - appendedFrom;
          }
        }
        append.push(...ready.entries);
      }
      if (ready.hardState !== null) hardState = ready.hardState;
      if (ready.appliedMembership !== null) membership = ready.appliedMembership;
      apply.push(...ready.committedEntries);
    }
    apply = this.#deferApply(batch, apply, membership !== undefined, append.length > 0);
    if (
      truncateAfter === undefined &&
      append.length > 0 &&
      append[0]!.index <= this.store.lastIndex()
    ) {
      truncateAfter = append[0]!.index - 1;
    }
    const discardUpTo = this.#discardPoint(apply.at(-1)?.index ?? this.#appliedIndex, append);
    // A discard is synced too: the core may then offer a snapshot at the discard point, and a
    // snapshot ships the file only up to its last synced header.
    const stored = this.store.hardState();
    const sync =
      append.length > 0 ||
      truncateAfter !== undefined ||
      discardUpTo !== undefined ||
      (hardState !== undefined &&
        (hardState.term !== stored.term || hardState.vote !== stored.vote)) ||
      batch.some((ready) => ready.snapshot !== null);
    // A round that changes the membership or installs a snapshot writes its applies at once, so
    // the header's membership and applied index stay those of one point in the log.
    const holdApply =
      (this.#options.holdApplies ?? true) &&
      membership === undefined &&
      batch.every((ready) => ready.snapshot === null);
    const commit: GroupCommit = { append, apply, sync, holdApply };
    return {
      ...commit,
      ...(truncateAfter === undefined ? {} : { truncateAfter }),
      ...(hardState === undefined ? {} : { hardState }),
      ...(membership === undefined ? {} : { membership }),
      ...(discardUpTo === undefined ? {} : { discardUpTo }),
    };
  }

  /**
   * Returns the entries this round applies: none when a follower defers them, else the
   * deferred ones followed by `apply`. No client waits for a follower's apply, because a read
   * waits for the applied index anyway and the leader replies from its own apply. One round per
   * tick rewrites each B+tree path once for all its entries. The entries are durable in the log
   * meanwhile, and a crash replays them.
   *
   * The deferred entries are applied at the next tick, at `DEFERRED_APPLY_ENTRIES` or
   * `DEFERRED_APPLY_BYTES`, as soon as a read waits, and in a round that installs a snapshot,
   * changes the membership or runs in another role. A node with proposals of its own (a leader
   * that stepped down) applies at once, so their outcomes are not held back. So does a round
   * that appends nothing: no write arrives to batch with, and its commit index came from the
   * leader's tick, so waiting for this node's tick would make a lone write wait two ticks.
   */
  #deferApply(
    batch: readonly Ready[],
    apply: Entry[],
    changesMembership: boolean,
    appending: boolean,
  ): Entry[] {
    const applyBytes = payloadBytes(apply);
    const defer =
      (this.#options.batchFollowerApplies ?? true) &&
      appending &&
      this.#lastRole === 'follower' &&
      !this.#applyDeferred &&
      !changesMembership &&
      this.#readsByIndex.length === 0 &&
      this.#proposals.size === 0 &&
      this.#deferred.length + apply.length < DEFERRED_APPLY_ENTRIES &&
      this.#deferredBytes + applyBytes < DEFERRED_APPLY_BYTES &&
      !batch.some((ready) => ready.snapshot !== null);
    if (defer) {
      this.#deferred.push(...apply);
      this.#deferredBytes += applyBytes;
      return [];
    }
    this.#applyDeferred = false;
    if (this.#deferred.length === 0) return apply;
    const all = this.#deferred;
    this.#deferred = [];
    this.#deferredBytes = 0;
    all.push(...apply);
    return all;
  }

  /** Returns true when deferred entries must be applied even though no Ready waits. */
  #deferredDue(): boolean {
    return (
      this.#deferred.length > 0 &&
      (this.#applyDeferred || this.#lastRole !== 'follower' || this.#readsByIndex.length > 0)
    );
  }

  /**
   * The retention rule: entries no follower needs may go; entries a follower still needs stay
   * within the entry and byte caps, and past either cap they go (that follower then needs a
   * snapshot). A follower keeps entries within the caps, since it may lead later.
   */
  #discardPoint(applied: number, appending: readonly Entry[]): number | undefined {
    const status = this.raw.status();
    const first = this.store.firstIndex();
    const last = Math.max(this.store.lastIndex(), appending.at(-1)?.index ?? 0);
    const capPoint = Math.max(
      this.store.capPoint(this.#options.retentionEntries, this.#options.retentionBytes),
      last - this.#options.retentionEntries,
    );
    let point = capPoint;
    if (status.role === 'leader') {
      let needed = applied;
      for (const [peer, progress] of status.progress) {
        if (peer !== this.#options.node) needed = Math.min(needed, progress.match);
      }
      point = Math.max(capPoint, needed);
    }
    // A retention cap past the held applies writes them first, so that the cap still holds.
    if (capPoint > this.#file.appliedInTrees()) this.#file.writeHeldApply();
    point = Math.min(point, applied, this.store.lastIndex(), this.#file.appliedInTrees());
    if (point < first) return undefined;
    const forced = capPoint >= first;
    if (!forced && point - (first - 1) < DISCARD_STEP_ENTRIES) return undefined;
    return point;
  }

  #afterDurable(batch: readonly Ready[], commit: GroupCommit): void {
    if (commit.append.length > 0) this.store.append(commit.append);
    if (commit.hardState !== undefined) this.store.setHardState(commit.hardState);
    const lastAppended = commit.append.at(-1)?.index ?? 0;
    if (lastAppended > this.store.hardState().commit) this.#lastNewEntryAtMs = performance.now();
    if (commit.membership !== undefined) this.#membership = commit.membership;
    if (commit.discardUpTo !== undefined) this.store.discard(commit.discardUpTo, this.#membership);
    for (const ready of batch) {
      for (const message of ready.messagesAfterPersist) this.#options.send(message.to, message);
      this.raw.advance(ready);
      if (ready.snapshot !== null) {
        this.#installing = this.#install(ready.snapshot, ready.snapshotFrom);
      }
    }
    this.#resolveReads();
  }

  /**
   * Installs a snapshot the core asked for. Persisting pauses meanwhile: Readies taken during
   * the install are written to the new file after it.
   */
  async #install(requested: SnapshotMeta, from: NodeId): Promise<void> {
    this.#log.info({ index: requested.index, from }, 'installing snapshot');
    try {
      const hardState = this.store.hardState();
      const installed = await this.#options.installSnapshot(requested, from, hardState);
      this.#file = installed.file;
      this.store.reset(hardState, installed.meta);
      this.#membership = installed.meta.membership;
      this.#appliedIndex = installed.meta.index;
      this.raw.snapshotInstalled(installed.meta);
      this.#snapshotsReceived++;
      this.#options.metrics?.snapshotInstalled();
      this.#log.info({ index: installed.meta.index, from }, 'snapshot installed');
    } catch (error) {
      this.#log.warn({ err: error, from }, 'snapshot install failed');
      if (!this.#closed) this.raw.snapshotFailed();
    } finally {
      this.#installing = null;
      this.#resolveReads();
      if (!this.#closed) this.#schedule();
    }
  }

  #resolveProposals(applied: readonly Entry[], outcomes: readonly Outcome[]): void {
    assert(applied.length === outcomes.length, 'one outcome per applied entry');
    for (let i = 0; i < applied.length; i++) {
      const entry = applied[i]!;
      const waiter = this.#proposals.get(entry.index);
      if (waiter === undefined) continue;
      this.#proposals.delete(entry.index);
      if (waiter.term === entry.term) {
        this.#options.metrics?.proposalApplied(
          (performance.now() - waiter.proposedAt) / MS_PER_SECOND,
        );
        waiter.resolve(outcomes[i]!);
      } else {
        this.#options.metrics?.proposalFailed('dropped');
        waiter.reject(new DroppedProposalError(`entry ${entry.index} went to another leader`));
      }
    }
  }

  #startReadRound(): void {
    if (this.#readQueue.length === 0) return;
    const context = `r${++this.#readCounter}`;
    const result = this.raw.readIndex(context);
    if (!result.ok) {
      this.#rejectExpiredReads();
      return;
    }
    this.#readRounds.set(context, { waiters: this.#readQueue, sentAt: Date.now() });
    this.#readQueue = [];
  }

  #onReadState(index: number, context: string): void {
    const round = this.#readRounds.get(context);
    if (round === undefined) return;
    this.#readRounds.delete(context);
    this.#readsByIndex.push({ index, waiters: round.waiters });
    this.#resolveReads();
  }

  #resolveReads(): void {
    if (this.#readsByIndex.length === 0) return;
    const waiting: { index: number; waiters: ReadWaiter[] }[] = [];
    for (const read of this.#readsByIndex) {
      if (read.index <= this.#appliedIndex) {
        for (const waiter of read.waiters) waiter.resolve();
      } else {
        waiting.push(read);
      }
    }
    this.#readsByIndex = waiting;
  }

  /** Read rounds whose answer never came (a lost message, a leader change) go again. */
  #retryStaleReadRounds(): void {
    const now = Date.now();
    for (const [context, round] of this.#readRounds) {
      if (now - round.sentAt < READ_RETRY_MS) continue;
      this.#readRounds.delete(context);
      this.#readQueue.push(...round.waiters);
    }
    this.#rejectExpiredReads();
  }

  #rejectExpiredReads(): void {
    const now = Date.now();
    const expired = (waiter: ReadWaiter) => waiter.deadline <= now;
    const timeout = () =>
      errors.unavailable('no leader confirmed the read in time; try again later');
    for (const waiter of this.#readQueue.filter(expired)) waiter.reject(timeout());
    this.#readQueue = this.#readQueue.filter((waiter) => !expired(waiter));
    for (const read of this.#readsByIndex) {
      for (const waiter of read.waiters.filter(expired)) waiter.reject(timeout());
      read.waiters = read.waiters.filter((waiter) => !expired(waiter));
    }
  }

  #noticeLeadership(): void {
    const status = this.raw.status();
    if (status.role !== this.#lastRole || status.leader !== this.#lastLeader) {
      this.#countLeadership(status.role, status.leader);
      this.#log.info(
        { role: status.role, term: status.term, leader: status.leader || null },
        status.role === 'leader' ? 'became leader' : 'raft role changed',
      );
      this.#lastRole = status.role;
      this.#lastLeader = status.leader;
    }
    if (status.leader !== NO_NODE && this.#leaderWaiters.length > 0) {
      const waiting: LeaderWaiter[] = [];
      for (const waiter of this.#leaderWaiters) {
        if (waiter.wanted === undefined || waiter.wanted === status.leader) {
          waiter.resolve(status.leader);
        } else {
          waiting.push(waiter);
        }
      }
      this.#leaderWaiters = waiting;
    }
  }

  #countLeadership(role: string, leader: NodeId): void {
    const metrics = this.#options.metrics;
    if (metrics === undefined) return;
    if (role !== this.#lastRole && role === 'pre_candidate') metrics.electionStarted('prevote');
    if (role !== this.#lastRole && role === 'candidate') metrics.electionStarted('vote');
    if (leader !== this.#lastLeader && leader !== NO_NODE) metrics.leaderChanged();
  }

  #fail(error: unknown): void {
    if (this.#failed !== null) return;
    this.#failed = error;
    this.#persisting = false;
    this.#log.error({ err: error }, 'database file commit failed; the group stops');
    this.#failAll(() => new UnknownOutcomeError('the database file failed to commit'));
    this.#options.onFatal(error);
  }

  #failAll(makeError: () => Error): void {
    for (const waiter of this.#proposals.values()) waiter.reject(makeError());
    this.#proposals.clear();
    const unavailable = () => errors.unavailable('the database group stopped on this node');
    for (const waiter of this.#readQueue) waiter.reject(unavailable());
    this.#readQueue = [];
    for (const round of this.#readRounds.values()) {
      for (const waiter of round.waiters) waiter.reject(unavailable());
    }
    this.#readRounds.clear();
    for (const read of this.#readsByIndex) {
      for (const waiter of read.waiters) waiter.reject(unavailable());
    }
    this.#readsByIndex = [];
  }
}

function payloadBytes(entries: readonly Entry[]): number {
  let bytes = 0;
  for (const entry of entries) bytes += entry.data.byteLength;
  return bytes;
}

/** Adapts a pino logger to the core's logger interface. */
function raftLogger(logger: Logger): RaftLogger {
  return {
    debug: (fields, message) => logger.debug(fields, message),
    info: (fields, message) => logger.info(fields, message),
    warn: (fields, message) => logger.warn(fields, message),
    isDebugEnabled: () => logger.isLevelEnabled('debug'),
  };
}
