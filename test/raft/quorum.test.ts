/**
 * Quorum math against naive oracles, over random voter sets and match indexes.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  jointCommitIndex,
  jointVoteResult,
  majorityCommitIndex,
  majorityVoteResult,
} from '../../src/raft/index.js';

/** Returns the largest index that a majority of voters have reached, by brute force. */
function naiveCommitIndex(matches: readonly number[]): number {
  if (matches.length === 0) return Number.POSITIVE_INFINITY;
  const needed = Math.floor(matches.length / 2) + 1;
  let best = 0;
  for (const candidate of matches) {
    const count = matches.filter((match) => match >= candidate).length;
    if (count >= needed && candidate > best) best = candidate;
  }
  return best;
}

function naiveVoteResult(voters: readonly string[], votes: ReadonlyMap<string, boolean>) {
  if (voters.length === 0) return 'won';
  const needed = Math.floor(voters.length / 2) + 1;
  const granted = voters.filter((id) => votes.get(id) === true).length;
  const open = voters.filter((id) => !votes.has(id)).length;
  if (granted >= needed) return 'won';
  return granted + open >= needed ? 'pending' : 'lost';
}

const voterSet = fc.uniqueArray(fc.constantFrom<string>('a', 'b', 'c', 'd', 'e', 'f', 'g'), {
  maxLength: 7,
});

test('majority commit index matches the oracle', () => {
  fc.assert(
    fc.property(voterSet, fc.array(fc.nat(50), { minLength: 7, maxLength: 7 }), (voters, raw) => {
      const matches = new Map(voters.map((id, i) => [id, raw[i]!]));
      const expected = naiveCommitIndex(voters.map((id) => matches.get(id)!));
      assert.equal(
        majorityCommitIndex(voters, (id) => matches.get(id) ?? 0),
        expected,
      );
    }),
  );
});

test('joint commit index is the minimum of both', () => {
  fc.assert(
    fc.property(
      voterSet,
      voterSet,
      fc.array(fc.nat(50), { minLength: 7, maxLength: 7 }),
      (incoming, outgoing, raw) => {
        const ids = ['a', 'b', 'c', 'd', 'e', 'f', 'g'];
        const matches = new Map(ids.map((id, i) => [id, raw[i]!]));
        const membership = { voters: incoming, learners: [], votersOutgoing: outgoing };
        const matchOf = (id: string) => matches.get(id) ?? 0;
        const incomingIndex = naiveCommitIndex(incoming.map(matchOf));
        const expected =
          outgoing.length === 0
            ? incomingIndex
            : Math.min(incomingIndex, naiveCommitIndex(outgoing.map(matchOf)));
        assert.equal(jointCommitIndex(membership, matchOf), expected);
      },
    ),
  );
});

test('vote results match the oracle', () => {
  const answer = fc.constantFrom<boolean | undefined>(true, false, undefined);
  fc.assert(
    fc.property(
      voterSet,
      voterSet,
      fc.array(answer, { minLength: 7, maxLength: 7 }),
      (incoming, outgoing, raw) => {
        const ids = ['a', 'b', 'c', 'd', 'e', 'f', 'g'];
        const votes = new Map<string, boolean>();
        ids.forEach((id, i) => {
          if (raw[i] !== undefined) votes.set(id, raw[i]!);
        });
        assert.equal(majorityVoteResult(incoming, votes), naiveVoteResult(incoming, votes));
        const a = naiveVoteResult(incoming, votes);
        const b = outgoing.length === 0 ? 'won' : naiveVoteResult(outgoing, votes);
        const expected =
          a === 'lost' || b === 'lost' ? 'lost' : a === 'won' && b === 'won' ? 'won' : 'pending';
        const membership = { voters: incoming, learners: [], votersOutgoing: outgoing };
        assert.equal(jointVoteResult(membership, votes), expected);
      },
    ),
  );
});

test('even voter counts need more than half', () => {
  const matches = new Map([
    ['a', 5],
    ['b', 5],
    ['c', 1],
    ['d', 1],
  ]);
  assert.equal(
    majorityCommitIndex(['a', 'b', 'c', 'd'], (id) => matches.get(id)!),
    1,
  );
  assert.equal(
    majorityCommitIndex(['a', 'c'], (id) => matches.get(id)!),
    1,
  );
});
