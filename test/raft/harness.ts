/**
 * A scripted in-memory network of RawNodes for scenario tests. Nothing happens unless the test
 * calls for it: messages wait in a queue until delivered, Readies wait until processed. Processing a
 * Ready persists it at once into the node's MemoryStorage, applies its committed entries and
 * queues its messages, so a test controls the order of every event.
 */
import type {
  Entry,
  Membership,
  Message,
  NodeId,
  RaftOptions,
  ReadState,
  Ready,
} from '../../src/raft/index.js';
import { EMPTY_MEMBERSHIP, MemoryStorage, membershipOf, RawNode } from '../../src/raft/index.js';

export interface TestNode {
  readonly id: NodeId;
  raw: RawNode;
  storage: MemoryStorage;
  /** Applied entries in order, including those applied before a restart. */
  applied: Entry[];
  readStates: ReadState[];
  /** Readies taken but not yet persisted, for tests of pipelining. */
  pending: Ready[];
  /** The membership as of the applied index, as a driver persists it; used on restart. */
  appliedMembership: Membership;
}

/** A deterministic generator for tests: a linear congruential sequence. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0 || 1;
  return () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}

export class TestCluster {
  readonly ids: NodeId[];
  readonly nodes = new Map<NodeId, TestNode>();
  /** Messages sent and not yet delivered, in send order. */
  queue: Message[] = [];
  /** Links that drop every message, as "from->to". */
  readonly cut = new Set<string>();
  readonly options: Partial<RaftOptions>;

  constructor(count: number, options: Partial<RaftOptions> = {}) {
    this.ids = Array.from({ length: count }, (_, i) => `n${i + 1}`);
    this.options = options;
    const initial = membershipOf(this.ids);
    for (const [i, id] of this.ids.entries()) this.#addNode(id, initial, i);
  }

  #addNode(id: NodeId, membership: Membership, seed: number): void {
    const storage = new MemoryStorage(membership);
    this.nodes.set(id, {
      id,
      raw: this.#newRaw(id, storage, 0, seed, membership),
      storage,
      applied: [],
      readStates: [],
      pending: [],
      appliedMembership: membership,
    });
  }

  /** Starts a node that joins the group: empty log, empty membership. */
  addNode(id: NodeId): TestNode {
    this.ids.push(id);
    this.#addNode(id, EMPTY_MEMBERSHIP, this.ids.length);
    return this.node(id);
  }

  #newRaw(
    id: NodeId,
    storage: MemoryStorage,
    applied: number,
    seed: number,
    membership: Membership,
  ): RawNode {
    return new RawNode(
      { id, membership, random: seededRandom(seed + 1), applied, ...this.options },
      storage,
    );
  }

  node(id: NodeId): TestNode {
    const node = this.nodes.get(id);
    if (node === undefined) throw new Error(`unknown node ${id}`);
    return node;
  }

  raw(id: NodeId): RawNode {
    return this.node(id).raw;
  }

  /** Takes a Ready from `id` and persists, applies and sends it; returns it, or null. */
  process(id: NodeId): Ready | null {
    const node = this.node(id);
    if (!node.raw.hasReady()) return null;
    const ready = node.raw.ready();
    this.persist(id, ready);
    return ready;
  }

  /** Takes a Ready and keeps it unpersisted; its immediate messages are sent. */
  takeUnpersisted(id: NodeId): Ready | null {
    const node = this.node(id);
    if (!node.raw.hasReady()) return null;
    const ready = node.raw.ready();
    this.queue.push(...ready.messages);
    node.pending.push(ready);
    return ready;
  }

  /** Persists the oldest unpersisted Ready of `id`. */
  persistPending(id: NodeId): void {
    const node = this.node(id);
    const ready = node.pending.shift();
    if (ready === undefined) throw new Error(`${id} has no pending Ready`);
    this.#persistAndAdvance(node, ready);
  }

  persist(id: NodeId, ready: Ready): void {
    const node = this.node(id);
    this.queue.push(...ready.messages);
    this.#persistAndAdvance(node, ready);
  }

  #persistAndAdvance(node: TestNode, ready: Ready): void {
    node.storage.append(ready.entries);
    if (ready.hardState !== null) node.storage.setHardState(ready.hardState);
    node.applied.push(...ready.committedEntries);
    if (ready.appliedMembership !== null) node.appliedMembership = ready.appliedMembership;
    node.readStates.push(...ready.readStates);
    this.queue.push(...ready.messagesAfterPersist);
    node.raw.advance(ready);
    if (ready.snapshot !== null) {
      node.storage.installSnapshot(ready.snapshot);
      node.appliedMembership = ready.snapshot.membership;
      node.raw.snapshotInstalled(ready.snapshot);
    }
  }

  /** Delivers queued messages (those matching `filter`, all by default) once each. */
  deliver(filter: (m: Message) => boolean = () => true): number {
    const batch = this.queue;
    this.queue = [];
    let delivered = 0;
    for (const m of batch) {
      if (!filter(m)) {
        this.queue.push(m);
        continue;
      }
      if (this.cut.has(`${m.from}->${m.to}`)) continue;
      this.node(m.to).raw.step(m);
      delivered++;
    }
    return delivered;
  }

  /** Drops queued messages that match `filter`. */
  drop(filter: (m: Message) => boolean): Message[] {
    const dropped = this.queue.filter(filter);
    this.queue = this.queue.filter((m) => !filter(m));
    return dropped;
  }

  /** Processes Readies and delivers messages until nothing moves. */
  stabilize(maxRounds = 1000): void {
    for (let round = 0; round < maxRounds; round++) {
      let moved = false;
      for (const id of this.ids) {
        if (this.node(id).pending.length > 0) continue;
        while (this.process(id) !== null) moved = true;
      }
      if (this.deliver() > 0) moved = true;
      if (!moved && this.queue.length === 0) return;
    }
    throw new Error('cluster did not stabilize');
  }

  tick(id: NodeId, count = 1): void {
    for (let i = 0; i < count; i++) this.raw(id).tick();
  }

  /** Makes `id` campaign and stabilizes; returns whether it leads. */
  elect(id: NodeId): boolean {
    this.raw(id).campaign();
    this.stabilize();
    return this.raw(id).role === 'leader';
  }

  /** Cuts every link to and from `id`. */
  isolate(id: NodeId): void {
    for (const other of this.ids) {
      if (other === id) continue;
      this.cut.add(`${id}->${other}`);
      this.cut.add(`${other}->${id}`);
    }
  }

  heal(): void {
    this.cut.clear();
  }

  /** Restarts `id` from its durable storage, losing unpersisted Readies and queued input. */
  restart(id: NodeId): void {
    const node = this.node(id);
    node.pending = [];
    const applied = node.applied.length > 0 ? node.applied[node.applied.length - 1]!.index : 0;
    const seed = this.ids.indexOf(id) + 100;
    node.raw = this.#newRaw(
      id,
      node.storage,
      Math.max(applied, node.storage.snapshotMeta().index),
      seed,
      node.appliedMembership,
    );
    this.queue = this.queue.filter((m) => m.to !== id);
  }

  /** Proposes `text` on `id`; throws when it does not lead. */
  propose(id: NodeId, text: string): { index: number; term: number } {
    const result = this.raw(id).propose(new TextEncoder().encode(text));
    if (!result.ok) throw new Error(`${id} rejected the proposal: ${result.reason}`);
    return result;
  }

  /** Returns the texts of the entries applied on `id`, no-ops left out. */
  appliedTexts(id: NodeId): string[] {
    const decoder = new TextDecoder();
    return this.node(id)
      .applied.filter((entry) => entry.type === 'normal' && entry.data.byteLength > 0)
      .map((entry) => decoder.decode(entry.data));
  }

  leaders(): NodeId[] {
    return this.ids.filter((id) => this.raw(id).role === 'leader');
  }
}
