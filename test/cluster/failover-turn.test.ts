/**
 * The order in which the remaining voters campaign after a leader's node is lost: every voter
 * gets its own turn, and over many groups every voter goes first for some of them. A survivor
 * that rejects the pre-vote of a candidate behind it moves up a turn.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  campaignDelayAfterRejecting,
  FAILOVER_CAMPAIGN_STEP_MS,
  failoverTurn,
} from '../../src/cluster/node.js';

const GROUPS = 300;

test('each remaining voter gets its own turn', () => {
  fc.assert(
    fc.property(
      fc.uniqueArray(fc.stringMatching(/^n[0-9]{1,3}$/), { minLength: 2, maxLength: 7 }),
      fc.string({ minLength: 1, maxLength: 32 }),
      (voters, groupId) => {
        const lost = voters[0]!;
        const turns = voters.map((name) => failoverTurn(groupId, voters, lost, name));
        assert.equal(turns[0], -1, 'the lost node never campaigns');
        assert.deepEqual(
          turns.slice(1).sort((a, b) => a - b),
          voters.slice(1).map((_, i) => i),
        );
        assert.equal(failoverTurn(groupId, voters, lost, 'not-a-voter'), -1);
      },
    ),
  );
});

test('first candidates spread over the nodes', () => {
  const voters = ['n1', 'n2', 'n3', 'n4'];
  const firsts = new Map<string, number>();
  for (let group = 0; group < GROUPS; group++) {
    for (const name of voters.slice(1)) {
      if (failoverTurn(`group-${group}`, voters, 'n1', name) === 0) {
        firsts.set(name, (firsts.get(name) ?? 0) + 1);
      }
    }
  }
  for (const name of voters.slice(1)) {
    assert.ok((firsts.get(name) ?? 0) > GROUPS / 6, `${name} first for ${firsts.get(name)}`);
  }
});

test('rejected pre-vote moves turns up', () => {
  fc.assert(
    fc.property(
      fc.uniqueArray(fc.stringMatching(/^n[0-9]{1,3}$/), { minLength: 3, maxLength: 7 }),
      fc.string({ minLength: 1, maxLength: 32 }),
      fc.nat(),
      (voters, groupId, pick) => {
        const lost = voters[0]!;
        const survivors = voters.slice(1);
        const failover = { lost, voters };
        const candidate = survivors[pick % survivors.length]!;
        const theirs = failoverTurn(groupId, voters, lost, candidate);
        const delays: number[] = [];
        for (const self of survivors) {
          const mine = failoverTurn(groupId, voters, lost, self);
          const delay = campaignDelayAfterRejecting(groupId, failover, self, candidate);
          if (mine <= theirs) {
            assert.equal(delay, null, `${self} at turn ${mine} keeps its own turn`);
            continue;
          }
          assert.equal(delay, (mine - theirs - 1) * FAILOVER_CAMPAIGN_STEP_MS);
          delays.push(delay!);
        }
        // The next survivor goes at once and no two survivors campaign at the same time.
        if (theirs < survivors.length - 1) assert.ok(delays.includes(0));
        assert.equal(new Set(delays).size, delays.length);
        assert.equal(campaignDelayAfterRejecting(groupId, failover, lost, candidate), null);
        assert.equal(campaignDelayAfterRejecting(groupId, failover, candidate, lost), null);
      },
    ),
  );
});
