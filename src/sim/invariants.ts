/**
 * Safety invariants the simulator checks after every event, from an omniscient view of all
 * nodes. Each violation is recorded as a sentence naming the nodes, terms and indexes.
 *
 * - Election safety: at most one leader per term, across old and new configurations and
 *   including nodes that were removed but keep running.
 * - Log matching: two logs holding an entry with the same index and term hold the same entry and
 *   the same entries before it (checked through a hash chain over each durable log).
 * - Leader completeness: the log of a leader of term T contains every entry committed in a
 *   term below T.
 * - State machine safety: every node applies the same entry at the same index.
 * - Applied never goes backwards on a node, across crashes and snapshot installs included.
 * - Durability: an entry once committed stays durable on a majority of each voter set of the
 *   configuration that vouches for it (see `#durabilityConfig`), so no acknowledged write and
 *   no committed configuration can be lost.
 *
 * The checks of membership changes (one at a time, learners never counted, configurations
 * applied alike) are in `config-invariants.ts`.
 */
import type {
  Entry,
  HardState,
  Membership,
  MemoryStorage,
  NodeId,
  RawNode,
  SnapshotMeta,
} from '../raft/index.js';
import { isJoint } from '../raft/index.js';
import { ConfigInvariants } from './config-invariants.js';
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
  /** The configuration of the leader that committed it. */
  readonly config: Membership;
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
  readonly configs = new ConfigInvariants((message) => this.fail(message));

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
        this.configs.checkElection(node.id, raw);
      }
      this.#recordCommits(raw);
      this.configs.checkLeaderAppends(node.id, raw, this.#maxCommitted);
    }
  }

  #recordCommits(raw: RawNode): void {
    const commit = raw.log.committed;
    const from = this.#maxCommitted + 1;
    for (let index = from; index <= commit; index++) {
      const term = raw.log.term(index);
      if (term === undefined) continue;
      this.#committed.set(index, { term, commitTerm: raw.term, config: raw.membership });
      this.configs.onCommitted(index, term);
    }
    if (commit > this.#maxCommitted) this.#maxCommitted = commit;
    // The acknowledgements the leader counted are durable, so what it just committed must be
    // durable on a majority now. A quorum that counted a learner or a removed node fails here.
    for (let index = from; index <= commit; index++) this.#checkDurable(index, 'commit');
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
    this.configs.onPersist(entries);
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

  onHardState(id: NodeId, hardState: HardState): void {
    this.configs.onHardState(id, hardState);
  }

  onApply(id: NodeId, entry: Entry): void {
    this.configs.onApply(id, entry);
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
    const config = this.#durabilityConfig(index, entry);
    const sets = isJoint(config) ? [config.voters, config.votersOutgoing] : [config.voters];
    for (const voters of sets) {
      let holders = 0;
      for (const id of voters) {
        const storage = this.#nodeView(id)?.storage;
        if (storage === undefined) continue;
        if (storage.snapshotMeta().index >= index || storage.term(index) === entry.term) holders++;
      }
      if (holders > voters.length / 2) continue;
      const after = cause === 'commit' ? 'when it committed' : `after ${cause} lost it`;
      this.fail(
        `durability: committed index ${index} (term ${entry.term}) is durable on ${holders} of ` +
          `voters ${voters.join(', ')} ${after}`,
      );
      return;
    }
  }

  /**
   * The configuration whose voters must hold a committed entry. A committed configuration
   * entry at or after the entry's index vouches for it: its commit put everything before it on
   * a majority of each of its voter sets. A later entry relies on the configuration of the
   * leader that committed it.
   */
  #durabilityConfig(index: number, entry: CommittedEntry): Membership {
    const latest = this.configs.latestCommitted();
    return latest !== undefined && latest.index >= index ? latest.membership : entry.config;
  }

  #nodeView(id: NodeId): NodeView | undefined {
    return this.nodes().find((node) => node.id === id);
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
