/**
 * The order in which the remaining voters campaign after a leader's node is lost: every voter
 * gets its own turn, and over many groups every voter goes first for some of them. A survivor
 * that rejects a candidate's pre-vote starts the turns again without that candidate. Idle
 * groups wait a part of a window drawn from their id, the same on every node.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  campaignDelayAfterRejecting,
  FAILOVER_CAMPAIGN_STEP_MS,
  FAILOVER_IDLE_SPREAD_MS,
  failoverTurn,
  idleFailoverOffsetMs,
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

test('rejected pre-vote restarts the turns', () => {
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
        const others = survivors
          .filter((name) => name !== candidate)
          .sort(
            (a, b) =>
              failoverTurn(groupId, voters, lost, a) - failoverTurn(groupId, voters, lost, b),
          );
        // The others go in their old order, the first at once and each a step after the last.
        others.forEach((self, place) => {
          assert.equal(
            campaignDelayAfterRejecting(groupId, failover, self, candidate),
            place * FAILOVER_CAMPAIGN_STEP_MS,
            `${self}, place ${place} of the others`,
          );
        });
        assert.equal(campaignDelayAfterRejecting(groupId, failover, candidate, candidate), null);
        assert.equal(campaignDelayAfterRejecting(groupId, failover, lost, candidate), null);
        assert.equal(campaignDelayAfterRejecting(groupId, failover, candidate, lost), null);
        assert.equal(
          campaignDelayAfterRejecting(groupId, failover, 'not-a-voter', candidate),
          null,
        );
      },
    ),
  );
});

test('idle groups spread their failovers', () => {
  const buckets = new Set<number>();
  for (let group = 0; group < GROUPS; group++) {
    const offset = idleFailoverOffsetMs(`group-${group}`);
    assert.ok(offset >= 0, `offset ${offset}`);
    assert.ok(offset < FAILOVER_IDLE_SPREAD_MS, `offset ${offset}`);
    assert.equal(idleFailoverOffsetMs(`group-${group}`), offset, 'same offset on every node');
    buckets.add(Math.floor((offset / FAILOVER_IDLE_SPREAD_MS) * 10));
  }
  // Every tenth of the window gets some of the groups.
  assert.equal(buckets.size, 10);
});
