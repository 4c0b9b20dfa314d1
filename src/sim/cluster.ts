/**
 * A whole simulated cluster in one process, driven by one seed. It owns the event agenda and the
 * virtual clock, and the faults: network delay, loss, duplication, reordering, and symmetric and
 * one-way partitions; disk latency and slow periods; crashes that lose unpersisted writes,
 * restarts and pauses; tick skew. It also moves snapshots between nodes, and models the
 * transport's failure detection, which calls `forgetLeader` and `campaign` when the connection
 * to a leader's node is lost.
 *
 * Nodes come from a pool of ids. The first `nodeCount` start as the group's voters; the others
 * start only when a membership change first adds them (`provision`), with an empty disk and an
 * empty membership. A removed node keeps running and keeps its disk if it is added again: a
 * node with an empty disk must never reuse the id of a former voter, because it would grant
 * its vote to a stale candidate of a configuration in which that id was a voter.
 *
 * After every event the invariants are checked. An exception thrown by the core is recorded as
 * a violation and stops the run.
 */
import type {
  Membership,
  Message,
  NodeId,
  PlantedBug,
  RaftLogger,
  Ready,
  SnapshotMeta,
} from '../raft/index.js';
import { EMPTY_MEMBERSHIP, membershipOf, NO_NODE, silentRaftLogger } from '../raft/index.js';
import { EventQueue } from './event-queue.js';
import { Invariants } from './invariants.js';
import { SimNode } from './node.js';
import { SimRandom } from './random.js';
import type { StateMachine } from './state-machine.js';
import { TraceHash } from './trace.js';

export interface NetworkSettings {
  readonly minDelayMs: number;
  readonly maxDelayMs: number;
  readonly lossRate: number;
  readonly duplicateRate: number;
  /** Probability that a message is held back long enough to overtake later ones. */
  readonly reorderRate: number;
  readonly reorderDelayMs: number;
}

export interface SimClusterOptions {
  readonly seed: number;
  /** The initial voters, `n1` to `n<nodeCount>`. */
  readonly nodeCount: number;
  /** Node ids in the pool, `n1` to `n<poolSize>`; `nodeCount` when left out. */
  readonly poolSize?: number;
  readonly tickMs: number;
  readonly electionTicks: number;
  readonly heartbeatTicks: number;
  readonly quiesce: boolean;
  /** RaftConfig.lazyCommit; off when left out. */
  readonly lazyCommit?: boolean;
  readonly preVote: boolean;
  readonly checkQuorum: boolean;
  readonly plantedBugs: readonly PlantedBug[];
  readonly network: NetworkSettings;
  readonly diskMs: readonly [number, number];
  readonly slowDiskMs: readonly [number, number];
  /** Largest fraction by which a node's tick length differs from `tickMs`. */
  readonly tickSkew: number;
  /** Delay before the transport notices a crashed or cut-off peer. */
  readonly failureDetectionMs: readonly [number, number];
  readonly stateMachine: () => StateMachine;
  readonly maxMessageBytes?: number;
  readonly logger?: RaftLogger;
}

export const QUIET_NETWORK: NetworkSettings = {
  minDelayMs: 1,
  maxDelayMs: 3,
  lossRate: 0,
  duplicateRate: 0,
  reorderRate: 0,
  reorderDelayMs: 0,
};

const SNAPSHOT_FETCH_TIMEOUT_MS = 1000;

export class SimCluster {
  readonly options: SimClusterOptions;
  readonly random: SimRandom;
  readonly trace = new TraceHash();
  readonly invariants: Invariants;
  readonly nodes: SimNode[] = [];
  readonly faults = new Map<string, number>();
  lossyCrashes = 0;
  messagesSent = 0;
  now = 0;
  /** A fault hook run after each durable write, such as a crash right after a vote. */
  afterWrite: ((node: SimNode, ready: Ready) => void) | null = null;
  /** Cut links, as "from->to". */
  readonly cut = new Set<string>();
  readonly #queue = new EventQueue();
  readonly #networkRandom: SimRandom;
  readonly #diskRandom: SimRandom;
  readonly #fetches = new Map<NodeId, number>();
  #fetchSequence = 0;
  #stopped = false;
  readonly #initial: Membership;

  constructor(options: SimClusterOptions) {
    this.options = options;
    this.random = new SimRandom(options.seed);
    this.#networkRandom = this.random.fork(1);
    this.#diskRandom = this.random.fork(2);
    this.invariants = new Invariants(() => this.nodes);
    const poolSize = Math.max(options.poolSize ?? options.nodeCount, options.nodeCount);
    const ids = Array.from({ length: poolSize }, (_, i) => `n${i + 1}`);
    this.#initial = membershipOf(ids.slice(0, options.nodeCount));
    for (const [i, id] of ids.entries()) {
      const bootstrap = i < options.nodeCount ? this.#initial : EMPTY_MEMBERSHIP;
      this.nodes.push(this.#newNode(id, bootstrap, this.random.fork(10 + i)));
    }
    for (const node of this.nodes.slice(0, options.nodeCount)) node.start();
    for (const node of this.nodes) this.#scheduleTicks(node);
  }

  #newNode(id: NodeId, bootstrap: Membership, random: SimRandom): SimNode {
    const options = this.options;
    const settings = {
      electionTicks: options.electionTicks,
      heartbeatTicks: options.heartbeatTicks,
      quiesce: options.quiesce,
      lazyCommit: options.lazyCommit ?? false,
      preVote: options.preVote,
      checkQuorum: options.checkQuorum,
      plantedBugs: options.plantedBugs,
      maxMessageBytes: options.maxMessageBytes,
    };
    const node: SimNode = new SimNode(id, bootstrap, options.stateMachine(), random, settings, {
      now: () => this.now,
      schedule: (delayMs, run) => this.#scheduleOn(node, delayMs, run),
      send: (m) => this.send(m),
      fetchSnapshot: (target, from, requested) => this.#fetchSnapshot(target, from, requested),
      diskLatencyMs: (target) => this.#diskLatency(target),
      afterWrite: (target, ready) => this.afterWrite?.(target, ready),
      invariants: this.invariants,
      logger: options.logger ?? silentRaftLogger,
    });
    return node;
  }

  /** The group's initial membership. */
  get initialMembership(): Membership {
    return this.#initial;
  }

  /** Nodes that were started at least once: the only ones clients and faults aim at. */
  provisionedNodes(): SimNode[] {
    return this.nodes.filter((node) => node.provisioned);
  }

  /**
   * Makes `id` ready to join the group: starts it with an empty disk if it never ran, and
   * restarts it with its disk if it ran before and is down.
   */
  provision(id: NodeId): SimNode {
    const node = this.node(id);
    if (node.provisioned) {
      this.restart(node);
      return node;
    }
    this.trace.add(`${this.now}|provision|${id}`);
    node.start();
    node.drain();
    return node;
  }

  get violations(): readonly string[] {
    return this.invariants.violations;
  }

  node(id: NodeId): SimNode {
    const node = this.nodes.find((candidate) => candidate.id === id);
    if (node === undefined) throw new Error(`unknown node ${id}`);
    return node;
  }

  countFault(kind: string): void {
    this.faults.set(kind, (this.faults.get(kind) ?? 0) + 1);
  }

  schedule(delayMs: number, run: () => void): void {
    this.#queue.push(this.now + Math.max(0, delayMs), run);
  }

  /** Runs events until `until` (virtual ms), `stop()` or a violation. */
  runUntil(until: number): void {
    while (!this.#stopped && this.#queue.peekTime() <= until && this.violations.length === 0) {
      const event = this.#queue.pop()!;
      this.now = event.time;
      try {
        event.run();
        this.invariants.checkLeaders();
      } catch (error) {
        const text = error instanceof Error ? (error.stack ?? error.message) : String(error);
        this.invariants.fail(`exception at ${this.now} ms: ${text}`);
      }
    }
    if (this.violations.length === 0 && !this.#stopped) this.now = Math.max(this.now, until);
  }

  /** Runs until `done()` returns true or `limitMs` passes, and returns its last result. */
  runUntilTrue(done: () => boolean, limitMs: number, stepMs = 10): boolean {
    const deadline = this.now + limitMs;
    while (this.now < deadline && this.violations.length === 0) {
      if (done()) return true;
      this.runUntil(Math.min(deadline, this.now + stepMs));
    }
    return done();
  }

  stop(): void {
    this.#stopped = true;
  }

  leader(): SimNode | undefined {
    let best: SimNode | undefined;
    for (const node of this.nodes) {
      if (node.raw?.role !== 'leader') continue;
      if (best === undefined || node.raw.term > best.raw!.term) best = node;
    }
    return best;
  }

  // -------------------------------------------------------------------------------------
  // Network

  send(m: Message): void {
    this.messagesSent++;
    const random = this.#networkRandom;
    const settings = this.options.network;
    if (this.cut.has(`${m.from}->${m.to}`)) return;
    if (random.chance(settings.lossRate)) {
      this.countFault('message loss');
      return;
    }
    const copies = random.chance(settings.duplicateRate) ? 2 : 1;
    if (copies === 2) this.countFault('message duplication');
    for (let copy = 0; copy < copies; copy++) {
      let delay = random.int(settings.minDelayMs, settings.maxDelayMs);
      if (random.chance(settings.reorderRate)) {
        this.countFault('message reordering');
        delay += random.int(1, settings.reorderDelayMs);
      }
      this.schedule(delay, () => this.#deliver(m));
    }
  }

  #deliver(m: Message): void {
    if (this.cut.has(`${m.from}->${m.to}`)) return;
    const node = this.node(m.to);
    if (!node.up) return;
    if (node.pausedUntil > this.now) {
      this.#queue.push(node.pausedUntil, () => this.#deliver(m));
      return;
    }
    this.trace.add(
      `${this.now}|${m.type}|${m.from}>${m.to}|${m.term}|${m.index}|${m.entries.length}`,
    );
    node.act((raw) => raw.step(m));
  }

  /** Delivers `run` on `from`'s side of the network to `to` with network delay, loss and cuts. */
  sendOther(from: NodeId, to: NodeId, run: () => void): void {
    if (this.cut.has(`${from}->${to}`)) return;
    if (this.#networkRandom.chance(this.options.network.lossRate)) return;
    const { minDelayMs, maxDelayMs } = this.options.network;
    this.schedule(this.#networkRandom.int(minDelayMs, maxDelayMs), () => {
      if (!this.cut.has(`${from}->${to}`)) run();
    });
  }

  // -------------------------------------------------------------------------------------
  // Time, disks and snapshots

  #scheduleTicks(node: SimNode): void {
    const skew = 1 + (node.random.next() * 2 - 1) * this.options.tickSkew;
    const interval = this.options.tickMs * skew;
    const tick = (): void => {
      this.#queue.push(this.now + interval, tick);
      if (!node.up || node.pausedUntil > this.now) return;
      this.trace.add(`${this.now}|tick|${node.id}`);
      node.act((raw) => raw.tick());
    };
    this.#queue.push(node.random.next() * interval, tick);
  }

  #scheduleOn(node: SimNode, delayMs: number, run: () => void): void {
    const fire = (): void => {
      if (node.pausedUntil > this.now) {
        this.#queue.push(node.pausedUntil, fire);
        return;
      }
      run();
    };
    this.schedule(delayMs, fire);
  }

  #diskLatency(node: SimNode): number {
    const [min, max] =
      node.slowDiskUntil > this.now ? this.options.slowDiskMs : this.options.diskMs;
    return this.#diskRandom.int(min, max);
  }

  #fetchSnapshot(node: SimNode, from: NodeId, requested: SnapshotMeta): void {
    const token = ++this.#fetchSequence;
    this.#fetches.set(node.id, token);
    const incarnation = node.incarnation;
    const finish = (meta: SnapshotMeta | null, bytes: Uint8Array | null): void => {
      if (this.#fetches.get(node.id) !== token) return;
      this.#fetches.delete(node.id);
      node.installSnapshot(meta, bytes, incarnation);
    };
    this.schedule(SNAPSHOT_FETCH_TIMEOUT_MS, () => finish(null, null));
    this.sendOther(node.id, from, () => {
      const source = this.node(from);
      const term = source.storage.term(source.applied);
      if (!source.up || source.applied < requested.index || term === undefined) return;
      const meta = { index: source.applied, term, membership: source.appliedMembership };
      const bytes = source.stateMachine.snapshot();
      this.sendOther(from, node.id, () => finish(meta, bytes));
    });
  }

  // -------------------------------------------------------------------------------------
  // Faults

  crash(node: SimNode, kind = 'crash'): void {
    if (!node.up) return;
    this.trace.add(`${this.now}|crash|${node.id}`);
    this.countFault(kind);
    if (node.crash()) this.lossyCrashes++;
    this.#fetches.delete(node.id);
    this.#detectLoss(node.id);
  }

  restart(node: SimNode): void {
    if (node.up || !node.provisioned) return;
    this.trace.add(`${this.now}|restart|${node.id}`);
    node.start();
    node.drain();
  }

  /** Cuts every link to and from `id`. */
  isolate(id: NodeId): void {
    for (const node of this.nodes) {
      if (node.id === id) continue;
      this.cutLink(id, node.id);
      this.cutLink(node.id, id);
    }
  }

  /** Cuts the link from `from` to `to` (one way). */
  cutLink(from: NodeId, to: NodeId): void {
    this.cut.add(`${from}->${to}`);
    this.#detectCut(from, to);
  }

  heal(): void {
    this.cut.clear();
  }

  /**
   * Reports `lost` gone after the transport's detection delay. Each node that followed it calls
   * forgetLeader, then campaigns after a random delay, so that not all campaign at once.
   */
  #detectLoss(lost: NodeId): void {
    const [min, max] = this.options.failureDetectionMs;
    for (const node of this.nodes) {
      if (node.id === lost) continue;
      this.schedule(this.random.int(min, max), () => {
        if (this.node(lost).up) return;
        this.#reportLeaderGone(node, lost);
      });
    }
  }

  #detectCut(from: NodeId, to: NodeId): void {
    const [min, max] = this.options.failureDetectionMs;
    this.schedule(this.random.int(min, max), () => {
      if (!this.cut.has(`${from}->${to}`)) return;
      this.#reportLeaderGone(this.node(to), from);
      this.#reportLeaderGone(this.node(from), to);
    });
  }

  #reportLeaderGone(node: SimNode, lost: NodeId): void {
    if (node.raw?.leader !== lost || node.raw.role !== 'follower') return;
    node.act((raw) => raw.forgetLeader());
    const jitterMs = this.random.int(0, this.options.heartbeatTicks * this.options.tickMs);
    this.schedule(jitterMs, () => {
      if (node.raw?.role === 'follower' && node.raw.leader === NO_NODE) {
        node.act((raw) => raw.campaign());
      }
    });
  }
}
