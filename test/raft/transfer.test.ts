/**
 * Leadership transfer on the scripted harness: which targets are rejected, proposals held
 * during a transfer, a target caught up before TimeoutNow, the leader lease bypassed by the
 * transfer's campaign, and a transfer abandoned after an election timeout.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DEFAULT_ELECTION_TICKS } from '../../src/raft/index.js';
import { TestCluster } from './harness.js';

test('transfer rejects unsuitable targets', () => {
  const cluster = new TestCluster(3, { transferLagEntries: 2 });
  assert.ok(cluster.elect('n1'));
  cluster.addNode('n4');
  const n1 = cluster.raw('n1');
  assert.ok(n1.proposeConfChange([{ type: 'add_learner', node: 'n4' }]).ok);
  cluster.stabilize();
  assert.deepEqual(cluster.raw('n2').transferLeader('n3'), {
    ok: false,
    reason: 'not_leader',
    leader: 'n1',
  });
  assert.deepEqual(n1.transferLeader('n1'), { ok: false, reason: 'already_leader' });
  assert.deepEqual(n1.transferLeader('n4'), { ok: false, reason: 'not_a_voter', learner: true });
  assert.deepEqual(n1.transferLeader('n9'), { ok: false, reason: 'not_a_voter', learner: false });
  cluster.isolate('n3');
  for (let i = 0; i < 5; i++) cluster.propose('n1', `v${i}`);
  cluster.stabilize();
  const lagging = n1.transferLeader('n3');
  assert.equal(!lagging.ok && lagging.reason, 'lagging');
  assert.equal(n1.status().transferTarget, '');
});

test('transfer holds proposals and passes the lease', () => {
  const cluster = new TestCluster(3, { checkQuorum: true });
  assert.ok(cluster.elect('n1'));
  cluster.propose('n1', 'before');
  cluster.stabilize();
  const n1 = cluster.raw('n1');
  const term = n1.term;
  assert.deepEqual(n1.transferLeader('n2'), { ok: true });
  assert.equal(n1.status().transferTarget, 'n2');
  assert.deepEqual(n1.propose(new Uint8Array([1])), {
    ok: false,
    reason: 'transfer_in_progress',
    leader: 'n1',
  });
  const change = n1.proposeConfChange([{ type: 'remove_voter', node: 'n3' }]);
  assert.equal(!change.ok && change.reason, 'transfer_in_progress');
  assert.deepEqual(n1.transferLeader('n3'), {
    ok: false,
    reason: 'transfer_in_progress',
    target: 'n2',
  });
  // n3 heard from n1 within the election timeout; only the transfer flag lets it vote.
  cluster.stabilize();
  assert.deepEqual(cluster.leaders(), ['n2']);
  assert.equal(cluster.raw('n2').term, term + 1);
  assert.equal(n1.role, 'follower');
  cluster.propose('n2', 'after');
  cluster.stabilize();
  for (const id of cluster.ids) assert.deepEqual(cluster.appliedTexts(id), ['before', 'after']);
});

test('transfer catches a lagging target up first', () => {
  const cluster = new TestCluster(3);
  assert.ok(cluster.elect('n1'));
  cluster.isolate('n3');
  for (let i = 0; i < 3; i++) cluster.propose('n1', `v${i}`);
  cluster.stabilize();
  cluster.heal();
  const n1 = cluster.raw('n1');
  assert.ok(n1.status().progress.get('n3')!.match < n1.log.lastIndex());
  assert.deepEqual(n1.transferLeader('n3'), { ok: true });
  let timeoutNowSent = false;
  for (let round = 0; round < 60 && !timeoutNowSent; round++) {
    if (round % 10 === 0) cluster.tick('n1', 5);
    for (const id of cluster.ids) while (cluster.process(id) !== null) {}
    if (cluster.queue.some((m) => m.type === 'timeout_now')) {
      timeoutNowSent = true;
      assert.equal(cluster.node('n3').storage.lastIndex(), n1.log.lastIndex(), 'sent too early');
    }
    cluster.deliver();
  }
  assert.ok(timeoutNowSent, 'no TimeoutNow reached n3');
  cluster.stabilize();
  assert.deepEqual(cluster.leaders(), ['n3']);
  assert.deepEqual(cluster.appliedTexts('n3'), ['v0', 'v1', 'v2']);
});

test('transfer is abandoned after an election timeout', () => {
  const cluster = new TestCluster(3);
  assert.ok(cluster.elect('n1'));
  const n1 = cluster.raw('n1');
  assert.deepEqual(n1.transferLeader('n2'), { ok: true });
  cluster.isolate('n2');
  cluster.stabilize();
  cluster.tick('n1', DEFAULT_ELECTION_TICKS - 1);
  assert.equal(n1.status().transferTarget, 'n2');
  cluster.tick('n1');
  assert.equal(n1.status().transferTarget, '');
  assert.equal(n1.role, 'leader');
  assert.ok(n1.propose(new Uint8Array([1])).ok, 'proposals stay held after the abandon');
});
