/**
 * Safety invariants the simulator checks after every event, from an omniscient view of all
 * nodes. Each violation is recorded as a sentence naming the nodes, terms and indexes.
 *
 * - Election safety: at most one leader per term.
 * - Log matching: two logs holding an entry with the same index and term hold the same entry and
 *   the same entries before it (checked through a hash chain over each durable log).
 * - Leader completeness: the log of a leader of term T contains every entry committed in a
 *   term below T.
 * - State machine safety: every node applies the same entry at the same index.
 * - Applied never goes backwards on a node, across crashes and snapshot installs included.
 * - Durability: an entry once committed stays durable on a majority of nodes, so no
 *   acknowledged write can be lost.
 */
import type { Entry, MemoryStorage, NodeId, RawNode, SnapshotMeta } from '../raft/index.js';
import { hashBytes } from './trace.js';

const MAX_VIOLATIONS = 20;

/** The view of one node that the checks need. */
export interface NodeView {
  readonly id: NodeId;
  readonly storage: MemoryStorage;
  readonly raw: RawNode | null;
}

interface CommittedEntry {
  readonly term: number;
  /** The lowest leader term in which the entry was known committed. */
  commitTerm: number;
}

export class Invariants {
  readonly violations: string[] = [];
  readonly #leaders = new Map<number, NodeId>();
  readonly #leaderTerms = new Map<NodeId, number>();
  /** Hash chain of each (index, term) seen in any durable log. */
  readonly #chains = new Map<string, number>();
  /** Per node: index -> chain hash of its durable log. */
  readonly #nodeChains = new Map<NodeId, Map<number, number>>();
  readonly #applied = new Map<number, { term: number; hash: number }>();
  readonly #appliedIndex = new Map<NodeId, number>();
  readonly #committed = new Map<number, CommittedEntry>();
  #maxCommitted = 0;
  elections = 0;

  constructor(readonly nodes: () => readonly NodeView[]) {}

  fail(message: string): void {
    if (this.violations.length < MAX_VIOLATIONS) this.violations.push(message);
  }

  /** Checks the leaders after an event; counts elections and checks completeness on each. */
  checkLeaders(): void {
    for (const node of this.nodes()) {
      const raw = node.raw;
      if (raw === null || raw.role !== 'leader') continue;
      const known = this.#leaders.get(raw.term);
      if (known === undefined) {
        this.#leaders.set(raw.term, node.id);
        this.elections++;
      } else if (known !== node.id) {
        this.fail(`two leaders in term ${raw.term}: ${known} and ${node.id}`);
      }
      if (this.#leaderTerms.get(node.id) !== raw.term) {
        this.#leaderTerms.set(node.id, raw.term);
        this.#checkCompleteness(node.id, raw);
      }
      this.#recordCommits(raw);
    }
  }

  #recordCommits(raw: RawNode): void {
    const commit = raw.log.committed;
    for (let index = this.#maxCommitted + 1; index <= commit; index++) {
      const term = raw.log.term(index);
      if (term === undefined) continue;
      this.#committed.set(index, { term, commitTerm: raw.term });
    }
    if (commit > this.#maxCommitted) this.#maxCommitted = commit;
  }

  #checkCompleteness(id: NodeId, raw: RawNode): void {
    const first = raw.log.firstIndex();
    for (const [index, entry] of this.#committed) {
      if (entry.commitTerm >= raw.term || index < first) continue;
      const term = raw.log.term(index);
      if (term !== entry.term) {
        this.fail(
          `leader completeness: ${id} leads term ${raw.term} without index ${index} ` +
            `(term ${entry.term}) committed in term ${entry.commitTerm}; it holds term ${term}`,
        );
      }
    }
  }

  /** Records entries that became durable on `id`, checking log matching. */
  onPersist(id: NodeId, entries: readonly Entry[]): void {
    if (entries.length === 0) return;
    const chain = this.#chainOf(id);
    const first = entries[0]!.index;
    for (const index of [...chain.keys()]) if (index >= first) chain.delete(index);
    this.#checkTruncation(id, first);
    let previous = chain.get(first - 1) ?? 0;
    for (const entry of entries) {
      const hash = hashBytes(entry.data, (previous ^ Math.imul(entry.term, 0x9e3779b1)) >>> 0);
      chain.set(entry.index, hash);
      const key = `${entry.index}:${entry.term}`;
      const seen = this.#chains.get(key);
      if (seen === undefined) this.#chains.set(key, hash);
      else if (seen !== hash) {
        this.fail(
          `log matching: ${id} holds a different log up to index ${entry.index} term ${entry.term}`,
        );
      }
      previous = hash;
    }
  }

  /** Restarts `id`'s chain at an installed snapshot or a compaction point. */
  onSnapshot(id: NodeId, meta: SnapshotMeta): void {
    const chain = this.#chainOf(id);
    const base = this.#chains.get(`${meta.index}:${meta.term}`) ?? 0;
    for (const index of [...chain.keys()]) if (index <= meta.index) chain.delete(index);
    chain.set(meta.index, base);
  }

  onApply(id: NodeId, entry: Entry): void {
    const last = this.#appliedIndex.get(id) ?? 0;
    if (entry.index !== last + 1) {
      this.fail(`${id} applied index ${entry.index} after ${last}`);
    }
    this.#appliedIndex.set(id, entry.index);
    const hash = hashBytes(entry.data);
    const seen = this.#applied.get(entry.index);
    if (seen === undefined) this.#applied.set(entry.index, { term: entry.term, hash });
    else if (seen.term !== entry.term || seen.hash !== hash) {
      this.fail(
        `state machine safety: ${id} applied term ${entry.term} at index ${entry.index}, ` +
          `another node applied term ${seen.term}`,
      );
    }
  }

  /** Records a jump of `id`'s applied index (snapshot install) or a restart at `applied`. */
  onAppliedIndex(id: NodeId, applied: number, reason: string): void {
    const last = this.#appliedIndex.get(id) ?? 0;
    if (applied < last)
      this.fail(`${id} applied index went back from ${last} to ${applied} (${reason})`);
    this.#appliedIndex.set(id, Math.max(applied, last));
  }

  /** Checks that entries lost by a crash or a truncation leave every committed entry on a majority. */
  #checkTruncation(id: NodeId, from: number): void {
    for (let index = from; index <= this.#maxCommitted; index++) this.#checkDurable(index, id);
  }

  onCrash(id: NodeId, durableLastIndex: number): void {
    for (let index = durableLastIndex + 1; index <= this.#maxCommitted; index++) {
      this.#checkDurable(index, id);
    }
  }

  #checkDurable(index: number, cause: NodeId): void {
    const entry = this.#committed.get(index);
    if (entry === undefined) return;
    const nodes = this.nodes();
    let holders = 0;
    for (const node of nodes) {
      const snapshotIndex = node.storage.snapshotMeta().index;
      if (snapshotIndex >= index || node.storage.term(index) === entry.term) holders++;
    }
    if (holders <= nodes.length / 2) {
      this.fail(
        `durability: committed index ${index} (term ${entry.term}) is durable on ${holders} of ` +
          `${nodes.length} nodes after ${cause} lost it`,
      );
    }
  }

  /** Checks that an acknowledged write, applied at (index, term), is what every node applied. */
  checkAcknowledged(index: number, term: number): void {
    const applied = this.#applied.get(index);
    if (applied?.term !== term) {
      this.fail(
        `acknowledged write at index ${index} term ${term} lost: applied term ${applied?.term}`,
      );
    }
  }

  #chainOf(id: NodeId): Map<number, number> {
    let chain = this.#nodeChains.get(id);
    if (chain === undefined) {
      chain = new Map();
      this.#nodeChains.set(id, chain);
    }
    return chain;
  }
}
