/**
 * A simulated node: a RawNode with the driver the cluster will have. Each Ready goes to a
 * simulated disk queue and becomes durable, in order, after the disk latency. One durable write
 * carries the Ready's entries, hard state and the apply of its committed entries, with the
 * membership as of the applied index. Messages that wait for persistence leave only then. A
 * crash loses every write still queued.
 *
 * The node also keeps proposal waiters (resolved when the entry at their index applies with
 * their term, unknown otherwise) and read waiters (served once applied reaches the read index).
 * It records the configuration entries it applied, so that a compaction point and a snapshot
 * carry the membership as of their own index.
 */
import type {
  Entry,
  Membership,
  Message,
  NodeId,
  PlantedBug,
  RaftLogger,
  Ready,
  SnapshotMeta,
} from '../raft/index.js';
import { decodeMembership, MemoryStorage, RawNode } from '../raft/index.js';
import type { Invariants } from './invariants.js';
import type { SimRandom } from './random.js';
import type { StateMachine } from './state-machine.js';

/** The outcome of a client request handled by a node. */
export type RequestOutcome =
  | {
      readonly kind: 'ok';
      readonly result: unknown;
      readonly index?: number;
      readonly term?: number;
    }
  | { readonly kind: 'rejected'; readonly leader: NodeId }
  | { readonly kind: 'unknown'; readonly reason: string };

export interface NodeEnvironment {
  now(): number;
  schedule(delayMs: number, run: () => void): void;
  send(message: Message): void;
  fetchSnapshot(node: SimNode, from: NodeId, requested: SnapshotMeta): void;
  diskLatencyMs(node: SimNode): number;
  /** Called once a Ready is durable and its messages are sent. */
  afterWrite(node: SimNode, ready: Ready): void;
  readonly invariants: Invariants;
  readonly logger: RaftLogger;
}

export interface RaftSettings {
  readonly electionTicks: number;
  readonly heartbeatTicks: number;
  readonly quiesce: boolean;
  readonly lazyCommit: boolean;
  readonly preVote: boolean;
  readonly checkQuorum: boolean;
  readonly plantedBugs: readonly PlantedBug[];
  readonly maxMessageBytes?: number;
}

interface ProposalWaiter {
  readonly term: number;
  readonly done: (outcome: RequestOutcome) => void;
}

interface ReadWaiter {
  readonly index: number;
  readonly serve: () => void;
}

/** A configuration entry this node applied. */
interface AppliedConfig {
  readonly index: number;
  readonly membership: Membership;
}

/** Entries retained after a compaction, so short outages do not need a snapshot. */
const RETAINED_ENTRIES = 20;
/** Compact once this many applied entries are retained. */
const COMPACTION_THRESHOLD = 60;

export class SimNode {
  raw: RawNode | null = null;
  readonly storage: MemoryStorage;
  applied = 0;
  /** The membership as of `applied`, persisted with it and handed to the core on restart. */
  appliedMembership: Membership;
  /** Whether the node was ever started; nodes of the pool beyond the initial ones wait. */
  provisioned = false;
  /** Changes on every restart, so callbacks of an earlier life are ignored. */
  incarnation = 0;
  pausedUntil = 0;
  slowDiskUntil = 0;
  #diskQueue: Ready[] = [];
  #diskFreeAt = 0;
  #waiters = new Map<number, ProposalWaiter>();
  #readCallbacks = new Map<string, () => void>();
  #reads: ReadWaiter[] = [];
  #waiterTerm = 0;
  /** Configuration entries applied after the storage's snapshot point, in index order. */
  #appliedConfigs: AppliedConfig[] = [];

  constructor(
    readonly id: NodeId,
    /** The membership this node starts with: the initial voters, or empty for a joining node. */
    readonly bootstrap: Membership,
    readonly stateMachine: StateMachine,
    readonly random: SimRandom,
    readonly settings: RaftSettings,
    readonly env: NodeEnvironment,
  ) {
    this.storage = new MemoryStorage(bootstrap);
    this.appliedMembership = bootstrap;
  }

  get up(): boolean {
    return this.raw !== null;
  }

  start(): void {
    this.incarnation++;
    this.provisioned = true;
    this.raw = new RawNode(
      {
        id: this.id,
        membership: this.appliedMembership,
        applied: this.applied,
        random: () => this.random.next(),
        electionTicks: this.settings.electionTicks,
        heartbeatTicks: this.settings.heartbeatTicks,
        quiesce: this.settings.quiesce,
        lazyCommit: this.settings.lazyCommit,
        preVote: this.settings.preVote,
        checkQuorum: this.settings.checkQuorum,
        plantedBugs: this.settings.plantedBugs,
        maxMessageBytes: this.settings.maxMessageBytes,
        logger: this.env.logger,
      },
      this.storage,
    );
    this.env.invariants.onAppliedIndex(this.id, this.applied, 'restart');
  }

  /** Stops the node, losing queued writes; returns whether any lost write held data. */
  crash(): boolean {
    const lossy = this.#diskQueue.some(
      (ready) => ready.entries.length > 0 || ready.hardState !== null,
    );
    this.raw = null;
    this.#diskQueue = [];
    this.#diskFreeAt = 0;
    this.#failWaiters('node crashed');
    this.#readCallbacks.clear();
    this.#reads = [];
    this.env.invariants.onCrash(this.id, this.storage.lastIndex());
    return lossy;
  }

  /** Runs `action` on the live RawNode, then hands its output to the disk and network. */
  act(action: (raw: RawNode) => void): void {
    const raw = this.raw;
    if (raw === null) return;
    action(raw);
    this.#checkLeadership();
    this.drain();
  }

  /** Proposes `data`. `done` gets the outcome once: on apply, rejection, crash or lost leadership. */
  propose(data: Uint8Array, done: (outcome: RequestOutcome) => void): void {
    const raw = this.raw;
    if (raw === null) {
      done({ kind: 'unknown', reason: 'node down' });
      return;
    }
    const result = raw.propose(data);
    if (!result.ok) {
      done({ kind: 'rejected', leader: result.leader });
      return;
    }
    this.#waiters.set(result.index, { term: result.term, done });
    this.#waiterTerm = result.term;
    this.drain();
  }

  /** Starts a linearizable read; `serve` runs once the read point is applied. */
  read(context: string, serve: () => void, rejected: (leader: NodeId) => void): void {
    const raw = this.raw;
    if (raw === null) return;
    const result = raw.readIndex(context);
    if (!result.ok) {
      rejected(result.leader);
      return;
    }
    this.#readCallbacks.set(context, serve);
    this.drain();
  }

  /** Takes every Ready: sends its immediate messages and queues it for the disk. */
  drain(): void {
    const raw = this.raw;
    if (raw === null) return;
    while (raw.hasReady()) {
      const ready = raw.ready();
      for (const m of ready.messages) this.env.send(m);
      for (const state of ready.readStates) {
        const serve = this.#readCallbacks.get(state.context);
        if (serve === undefined) continue;
        this.#readCallbacks.delete(state.context);
        this.#reads.push({ index: state.index, serve });
      }
      this.#queueWrite(ready);
    }
    this.#serveReads();
  }

  #queueWrite(ready: Ready): void {
    const now = this.env.now();
    const hasData =
      ready.entries.length > 0 || ready.hardState !== null || ready.committedEntries.length > 0;
    const latency = hasData ? this.env.diskLatencyMs(this) : 0;
    this.#diskFreeAt = Math.max(this.#diskFreeAt, now) + latency;
    this.#diskQueue.push(ready);
    const incarnation = this.incarnation;
    this.env.schedule(this.#diskFreeAt - now, () => {
      if (this.incarnation === incarnation && this.raw !== null) this.#completeWrite();
    });
  }

  /** Makes the oldest queued Ready durable, then sends, applies and advances. */
  #completeWrite(): void {
    const raw = this.raw!;
    const ready = this.#diskQueue.shift();
    if (ready === undefined) return;
    this.storage.append(ready.entries);
    this.env.invariants.onPersist(this.id, ready.entries);
    if (ready.hardState !== null) {
      this.storage.setHardState(ready.hardState);
      this.env.invariants.onHardState(this.id, ready.hardState);
    }
    for (const entry of ready.committedEntries) this.#apply(entry);
    for (const m of ready.messagesAfterPersist) this.env.send(m);
    raw.advance(ready);
    this.#maybeCompact();
    if (ready.snapshot !== null) this.env.fetchSnapshot(this, ready.snapshotFrom, ready.snapshot);
    this.#checkLeadership();
    this.drain();
    this.env.afterWrite(this, ready);
  }

  #apply(entry: Entry): void {
    this.env.invariants.onApply(this.id, entry);
    const isCommand = entry.type === 'normal' && entry.data.byteLength > 0;
    const result = isCommand ? this.stateMachine.apply(entry.data) : undefined;
    if (entry.type === 'config') {
      this.appliedMembership = decodeMembership(entry.data);
      this.#appliedConfigs.push({ index: entry.index, membership: this.appliedMembership });
    }
    this.applied = entry.index;
    const waiter = this.#waiters.get(entry.index);
    if (waiter === undefined) return;
    this.#waiters.delete(entry.index);
    if (waiter.term === entry.term) {
      waiter.done({ kind: 'ok', result, index: entry.index, term: entry.term });
    } else waiter.done({ kind: 'unknown', reason: `index ${entry.index} applied another term` });
  }

  #maybeCompact(): void {
    const retained = this.applied - this.storage.firstIndex() + 1;
    if (retained < COMPACTION_THRESHOLD) return;
    const point = this.applied - RETAINED_ENTRIES;
    this.storage.compact(point, this.#membershipAt(point));
    this.#appliedConfigs = this.#appliedConfigs.filter((config) => config.index > point);
    this.env.invariants.onSnapshot(this.id, this.storage.snapshotMeta());
  }

  /** The membership as of an applied index at or after the storage's snapshot point. */
  #membershipAt(index: number): Membership {
    for (let i = this.#appliedConfigs.length - 1; i >= 0; i--) {
      const config = this.#appliedConfigs[i]!;
      if (config.index <= index) return config.membership;
    }
    return this.storage.snapshotMeta().membership;
  }

  /** Installs a fetched snapshot, or reports the failure, if the request is still current. */
  installSnapshot(meta: SnapshotMeta | null, bytes: Uint8Array | null, incarnation: number): void {
    const raw = this.raw;
    if (raw === null || incarnation !== this.incarnation) return;
    if (meta === null || bytes === null || meta.index <= this.applied) {
      this.act((node) => node.snapshotFailed());
      return;
    }
    this.stateMachine.restore(bytes);
    this.storage.installSnapshot(meta);
    this.applied = meta.index;
    this.appliedMembership = meta.membership;
    this.#appliedConfigs = [];
    this.env.invariants.onSnapshot(this.id, meta);
    this.env.invariants.onAppliedIndex(this.id, meta.index, 'snapshot install');
    this.#failWaitersUpTo(meta.index);
    this.act((node) => node.snapshotInstalled(meta));
  }

  /** Fails proposal waiters when leadership or the term changed: the outcome is unknown. */
  #checkLeadership(): void {
    if (this.#waiters.size === 0) return;
    const raw = this.raw;
    if (raw !== null && raw.role === 'leader' && raw.term === this.#waiterTerm) return;
    this.#failWaiters('leadership lost before apply');
  }

  #failWaiters(reason: string): void {
    const waiters = [...this.#waiters.values()];
    this.#waiters.clear();
    for (const waiter of waiters) waiter.done({ kind: 'unknown', reason });
  }

  #failWaitersUpTo(index: number): void {
    for (const [at, waiter] of [...this.#waiters]) {
      if (at > index) continue;
      this.#waiters.delete(at);
      waiter.done({ kind: 'unknown', reason: 'replaced by a snapshot' });
    }
  }

  #serveReads(): void {
    if (this.#reads.length === 0) return;
    const ready = this.#reads.filter((read) => read.index <= this.applied);
    if (ready.length === 0) return;
    this.#reads = this.#reads.filter((read) => read.index > this.applied);
    for (const read of ready) read.serve();
  }
}
