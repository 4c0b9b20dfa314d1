/**
 * Majority and joint-majority math for commit indexes and elections, with no other Raft types.
 * A simple configuration decides by a majority of its voters. A joint configuration (during a
 * membership change) needs a majority of the incoming and of the outgoing voters.
 *
 * Conventions, chosen so that the joint rule is the plain minimum or conjunction: an empty voter
 * set commits every index (its commit index is +Infinity) and wins every vote.
 */
import type { Membership, NodeId } from './types.js';

export type VoteResult = 'won' | 'lost' | 'pending';

/** Scratch space for the commit index sort, reused so that the hot path does not allocate. */
let scratch: number[] = [];

/**
 * Returns the largest index that a majority of `voters` have matched: the value at position
 * floor(n/2) of the match indexes in descending order. `matchOf` returns 0 for unknown voters.
 */
export function majorityCommitIndex(
  voters: readonly NodeId[],
  matchOf: (id: NodeId) => number,
): number {
  const count = voters.length;
  if (count === 0) return Number.POSITIVE_INFINITY;
  if (scratch.length < count) scratch = new Array<number>(count).fill(0);
  // Insertion sort, descending: groups have a handful of voters.
  for (let i = 0; i < count; i++) {
    const value = matchOf(voters[i]!);
    let j = i;
    while (j > 0 && scratch[j - 1]! < value) {
      scratch[j] = scratch[j - 1]!;
      j--;
    }
    scratch[j] = value;
  }
  return scratch[count >> 1]!;
}

/** Returns the commit index of a membership: the minimum over its voter sets. */
export function jointCommitIndex(membership: Membership, matchOf: (id: NodeId) => number): number {
  const incoming = majorityCommitIndex(membership.voters, matchOf);
  if (membership.votersOutgoing.length === 0) return incoming;
  return Math.min(incoming, majorityCommitIndex(membership.votersOutgoing, matchOf));
}

/**
 * Returns the result of an election among `voters`: won once a majority granted, lost once a
 * majority can no longer be reached, pending otherwise. `votes` maps a voter to whether it granted.
 */
export function majorityVoteResult(
  voters: readonly NodeId[],
  votes: ReadonlyMap<NodeId, boolean>,
): VoteResult {
  if (voters.length === 0) return 'won';
  let granted = 0;
  let missing = 0;
  for (const id of voters) {
    const vote = votes.get(id);
    if (vote === undefined) missing++;
    else if (vote) granted++;
  }
  const needed = (voters.length >> 1) + 1;
  if (granted >= needed) return 'won';
  if (granted + missing >= needed) return 'pending';
  return 'lost';
}

/** Returns the result of an election under a membership: both voter sets must be won. */
export function jointVoteResult(
  membership: Membership,
  votes: ReadonlyMap<NodeId, boolean>,
): VoteResult {
  const incoming = majorityVoteResult(membership.voters, votes);
  if (membership.votersOutgoing.length === 0) return incoming;
  const outgoing = majorityVoteResult(membership.votersOutgoing, votes);
  if (incoming === 'lost' || outgoing === 'lost') return 'lost';
  if (incoming === 'won' && outgoing === 'won') return 'won';
  return 'pending';
}

/** Returns every voter of a membership once, incoming first. */
export function allVoters(membership: Membership): NodeId[] {
  const ids = [...membership.voters];
  for (const id of membership.votersOutgoing) {
    if (!ids.includes(id)) ids.push(id);
  }
  return ids;
}

/** Returns whether `id` votes in either voter set. */
export function isVoter(membership: Membership, id: NodeId): boolean {
  return membership.voters.includes(id) || membership.votersOutgoing.includes(id);
}
