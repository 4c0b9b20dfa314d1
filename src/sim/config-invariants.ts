/**
 * Invariants of membership changes, checked by the simulator from an omniscient view. Each
 * violation is reported as a sentence naming the nodes, terms and indexes.
 *
 * - One change at a time: when a leader appends a configuration entry, no earlier configuration
 *   entry in its log is uncommitted, and when the configuration before it is joint, the new
 *   entry only leaves that joint configuration.
 * - A leader appends a configuration entry only after an entry of its own term committed.
 * - Learners are never counted: the winner of an election has persisted votes for it in its
 *   term from a majority of each voter set of its configuration, counting voters only.
 * - A configuration entry is applied with the same membership at its index on every node.
 *
 * It also records which configurations committed, so that the durability check counts holders
 * among the voters that matter (see `durabilityConfig` in `invariants.ts`), and so that the run
 * can require every member to end in the last committed configuration.
 */
import type { Entry, HardState, Membership, NodeId, RawNode } from '../raft/index.js';
import { decodeMembership, isJoint, NO_NODE } from '../raft/index.js';

/** A configuration entry and the membership it sets. */
export interface ConfigPoint {
  readonly index: number;
  readonly membership: Membership;
}

/** The part of one leader's log checked in its current term. */
interface LeaderScan {
  readonly term: number;
  /** The last index checked. */
  index: number;
  /** The configuration in effect after the last index checked. */
  membership: Membership;
}

export class ConfigInvariants {
  /** Memberships of configuration entries seen in any log, by "index:term". */
  readonly #entries = new Map<string, Membership>();
  /** Committed configuration entries, in index order. */
  readonly #committed: ConfigPoint[] = [];
  /** The lowest index of each term known committed. */
  readonly #firstCommitInTerm = new Map<number, number>();
  /** The membership applied at each configuration index, as JSON. */
  readonly #applied = new Map<number, string>();
  /** Persisted votes: term -> voter -> candidates it voted for in that term. */
  readonly #votes = new Map<number, Map<NodeId, Set<NodeId>>>();
  readonly #leaderScans = new Map<NodeId, LeaderScan>();

  constructor(readonly fail: (message: string) => void) {}

  /** Returns the last committed configuration entry, if any committed. */
  latestCommitted(): ConfigPoint | undefined {
    return this.#committed[this.#committed.length - 1];
  }

  onPersist(entries: readonly Entry[]): void {
    for (const entry of entries) {
      if (entry.type !== 'config') continue;
      this.#entries.set(`${entry.index}:${entry.term}`, decodeMembership(entry.data));
    }
  }

  /** Records that the entry at (index, term) is committed. */
  onCommitted(index: number, term: number): void {
    const first = this.#firstCommitInTerm.get(term);
    if (first === undefined || index < first) this.#firstCommitInTerm.set(term, index);
    const membership = this.#entries.get(`${index}:${term}`);
    const latest = this.latestCommitted();
    if (membership !== undefined && (latest === undefined || index > latest.index)) {
      this.#committed.push({ index, membership });
    }
  }

  onHardState(id: NodeId, hardState: HardState): void {
    if (hardState.vote === NO_NODE) return;
    let voters = this.#votes.get(hardState.term);
    if (voters === undefined) {
      voters = new Map();
      this.#votes.set(hardState.term, voters);
    }
    let candidates = voters.get(id);
    if (candidates === undefined) {
      candidates = new Set();
      voters.set(id, candidates);
    }
    candidates.add(hardState.vote);
  }

  /** Checks that `id`, first seen leading its term, won a majority of each voter set. */
  checkElection(id: NodeId, raw: RawNode): void {
    const membership = raw.membership;
    const voted = this.#votes.get(raw.term);
    const sets = isJoint(membership)
      ? [membership.voters, membership.votersOutgoing]
      : [membership.voters];
    for (const voters of sets) {
      const granted = voters.filter((voter) => voter === id || voted?.get(voter)?.has(id));
      if (granted.length > voters.length / 2) continue;
      const grantedBy = granted.join(', ') || 'nobody';
      this.fail(
        `election: ${id} leads term ${raw.term} with votes from only ${grantedBy} ` +
          `of voters ${voters.join(', ')}`,
      );
    }
  }

  /** Checks the configuration entries that leader `id` appended since the last event. */
  checkLeaderAppends(id: NodeId, raw: RawNode, maxCommitted: number): void {
    const scan = this.#leaderScans.get(id);
    const last = raw.log.lastIndex();
    if (scan === undefined || scan.term !== raw.term) {
      this.#leaderScans.set(id, { term: raw.term, index: last, membership: raw.membership });
      return;
    }
    if (last <= scan.index) return;
    const entries = raw.log.slice(scan.index + 1, last + 1) ?? [];
    for (const entry of entries) {
      if (entry.type === 'config') this.#checkConfigAppend(id, raw, entry, scan, maxCommitted);
    }
    scan.index = last;
  }

  #checkConfigAppend(
    id: NodeId,
    raw: RawNode,
    entry: Entry,
    scan: LeaderScan,
    maxCommitted: number,
  ): void {
    const membership = decodeMembership(entry.data);
    this.#entries.set(`${entry.index}:${entry.term}`, membership);
    const at = `${id} appended configuration entry ${entry.index} in term ${entry.term}`;
    const firstCommit = this.#firstCommitInTerm.get(entry.term);
    if (firstCommit === undefined || firstCommit >= entry.index) {
      this.fail(`${at} before an entry of its term committed`);
    }
    const from = Math.max(maxCommitted + 1, raw.log.firstIndex());
    const pending = (raw.log.slice(from, entry.index) ?? []).find((e) => e.type === 'config');
    if (pending !== undefined) {
      this.fail(`${at} while configuration entry ${pending.index} was not committed`);
    }
    if (isJoint(scan.membership) && !leavesJoint(scan.membership, membership)) {
      this.fail(`${at} while the joint configuration ${describe(scan.membership)} was in effect`);
    }
    scan.membership = membership;
  }

  onApply(id: NodeId, entry: Entry): void {
    if (entry.type !== 'config') return;
    const applied = describe(decodeMembership(entry.data));
    const seen = this.#applied.get(entry.index);
    if (seen === undefined) this.#applied.set(entry.index, applied);
    else if (seen !== applied) {
      this.fail(
        `configuration applied at index ${entry.index}: ${id} applied ${applied}, ` +
          `another node ${seen}`,
      );
    }
  }
}

/** Returns whether `next` leaves the joint configuration `joint` and changes nothing else. */
function leavesJoint(joint: Membership, next: Membership): boolean {
  return (
    next.votersOutgoing.length === 0 &&
    sameIds(next.voters, joint.voters) &&
    sameIds(next.learners, joint.learners)
  );
}

function sameIds(a: readonly NodeId[], b: readonly NodeId[]): boolean {
  return a.length === b.length && a.every((id) => b.includes(id));
}

/** Returns a membership as text for violation messages, with sorted ids. */
export function describe(membership: Membership): string {
  const list = (ids: readonly NodeId[]) => [...ids].sort().join(',');
  const outgoing = isJoint(membership) ? ` outgoing ${list(membership.votersOutgoing)}` : '';
  return `voters ${list(membership.voters)} learners ${list(membership.learners)}${outgoing}`;
}
