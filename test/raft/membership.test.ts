/**
 * Membership changes on the scripted harness: joint consensus and leaving it, configurations in
 * effect from their append and reverted by truncation, one change at a time, a new leader's
 * first commit, learners, removed nodes and removed leaders, restarts and snapshots.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  type ConfChangeResult,
  DEFAULT_ELECTION_TICKS,
  DEFAULT_HEARTBEAT_TICKS,
  decodeMembership,
  type Membership,
  type Message,
  message,
} from '../../src/raft/index.js';
import { TestCluster } from './harness.js';

const ELECTION = DEFAULT_ELECTION_TICKS;

function voters(membership: Membership): string[] {
  return [...membership.voters].sort();
}

function accepted(result: ConfChangeResult): { index: number; membership: Membership } {
  assert.ok(result.ok, `change rejected: ${JSON.stringify(result)}`);
  return result;
}

/** Returns the memberships of the configuration entries `id` applied, in order. */
function appliedConfigs(cluster: TestCluster, id: string): Membership[] {
  return cluster
    .node(id)
    .applied.filter((entry) => entry.type === 'config')
    .map((entry) => decodeMembership(entry.data));
}

/** Runs heartbeat rounds of `leader`, enough for it to probe a follower that stalled. */
function heartbeatRounds(cluster: TestCluster, leader: string): void {
  for (let round = 0; round < 3; round++) {
    cluster.tick(leader, DEFAULT_HEARTBEAT_TICKS);
    cluster.stabilize();
  }
}

function campaignMessages(queue: readonly Message[], from: string): Message[] {
  return queue.filter((m) => m.from === from && (m.type === 'vote' || m.type === 'pre_vote'));
}

test('joint change adds a voter and leaves the joint configuration', () => {
  const cluster = new TestCluster(3);
  assert.ok(cluster.elect('n1'));
  cluster.addNode('n4');
  const result = accepted(cluster.raw('n1').proposeConfChange([{ type: 'add_voter', node: 'n4' }]));
  assert.deepEqual(voters(result.membership), ['n1', 'n2', 'n3', 'n4']);
  assert.deepEqual([...result.membership.votersOutgoing].sort(), ['n1', 'n2', 'n3']);
  assert.deepEqual(cluster.raw('n1').membership, result.membership, 'in effect on append');
  cluster.stabilize();
  for (const id of cluster.ids) {
    const membership = cluster.raw(id).membership;
    assert.deepEqual(voters(membership), ['n1', 'n2', 'n3', 'n4'], id);
    assert.deepEqual(membership.votersOutgoing, [], `${id} is still joint`);
    const configs = appliedConfigs(cluster, id);
    assert.equal(configs.length, 2, `${id} applied ${configs.length} configuration entries`);
    assert.equal(configs[0]!.votersOutgoing.length, 3);
    assert.deepEqual(configs[1], membership);
    assert.deepEqual(cluster.node(id).appliedMembership, membership);
  }
  const status = cluster.raw('n1').status();
  assert.equal(status.membershipIndex, result.index + 1);
  assert.ok(status.commit >= status.membershipIndex);
  cluster.propose('n1', 'after');
  cluster.stabilize();
  assert.deepEqual(cluster.appliedTexts('n4'), ['after']);
});

test('configuration is in effect on a follower at append', () => {
  const cluster = new TestCluster(3);
  assert.ok(cluster.elect('n1'));
  cluster.addNode('n4');
  accepted(cluster.raw('n1').proposeConfChange([{ type: 'add_voter', node: 'n4' }]));
  cluster.process('n1');
  cluster.deliver((m) => m.type === 'append' && m.to === 'n2');
  const n2 = cluster.raw('n2');
  assert.equal(n2.membership.votersOutgoing.length, 3, 'n2 did not take the joint configuration');
  assert.ok(n2.log.committed < n2.status().membershipIndex, 'the entry is not committed yet');
});

test('truncated configuration entry reverts the membership', () => {
  const cluster = new TestCluster(5);
  assert.ok(cluster.elect('n1'));
  accepted(cluster.raw('n1').proposeConfChange([{ type: 'remove_voter', node: 'n5' }]));
  cluster.process('n1');
  cluster.deliver((m) => m.type === 'append' && m.to === 'n2');
  cluster.process('n2');
  cluster.queue = [];
  assert.equal(cluster.raw('n2').membership.votersOutgoing.length, 5);
  // n3, n4 and n5 elect n3, whose log lacks the change and overwrites it on n1 and n2.
  cluster.isolate('n1');
  cluster.isolate('n2');
  for (const id of ['n3', 'n4', 'n5']) cluster.raw(id).forgetLeader();
  assert.ok(cluster.elect('n3'));
  cluster.propose('n3', 'overwrites');
  cluster.stabilize();
  cluster.heal();
  heartbeatRounds(cluster, 'n3');
  for (const id of ['n1', 'n2']) {
    const membership = cluster.raw(id).membership;
    assert.deepEqual(voters(membership), ['n1', 'n2', 'n3', 'n4', 'n5'], id);
    assert.deepEqual(membership.votersOutgoing, [], `${id} kept the truncated configuration`);
    assert.deepEqual(cluster.appliedTexts(id), ['overwrites']);
  }
});

test('second change while one is in flight is rejected', () => {
  const cluster = new TestCluster(3);
  assert.ok(cluster.elect('n1'));
  cluster.addNode('n4');
  const n1 = cluster.raw('n1');
  accepted(n1.proposeConfChange([{ type: 'add_learner', node: 'n4' }]));
  assert.deepEqual(n1.proposeConfChange([{ type: 'add_learner', node: 'n5' }]), {
    ok: false,
    reason: 'change_in_progress',
  });
  cluster.stabilize();
  accepted(n1.proposeConfChange([{ type: 'remove_voter', node: 'n3' }]));
  cluster.process('n1');
  cluster.deliver();
  cluster.process('n2');
  cluster.deliver();
  // The joint entry committed and the leave entry is in flight: still one change.
  assert.equal(n1.membership.votersOutgoing.length, 0);
  assert.ok(n1.status().membershipIndex > n1.log.committed);
  assert.deepEqual(n1.proposeConfChange([{ type: 'remove_learner', node: 'n4' }]), {
    ok: false,
    reason: 'change_in_progress',
  });
  cluster.stabilize();
  accepted(n1.proposeConfChange([{ type: 'remove_learner', node: 'n4' }]));
});

test('new leader accepts a change only after its first commit', () => {
  const cluster = new TestCluster(3);
  const n1 = cluster.raw('n1');
  n1.campaign();
  for (let round = 0; round < 4 && n1.role !== 'leader'; round++) {
    for (const id of cluster.ids) cluster.process(id);
    cluster.deliver();
  }
  assert.equal(n1.role, 'leader');
  cluster.addNode('n4');
  assert.deepEqual(n1.proposeConfChange([{ type: 'add_learner', node: 'n4' }]), {
    ok: false,
    reason: 'no_commit_in_term',
  });
  cluster.stabilize();
  accepted(n1.proposeConfChange([{ type: 'add_learner', node: 'n4' }]));
});

test('invalid change is rejected with a reason', () => {
  const cluster = new TestCluster(3);
  assert.ok(cluster.elect('n1'));
  const n1 = cluster.raw('n1');
  for (const steps of [
    [],
    [{ type: 'add_voter' as const, node: 'n2' }],
    [{ type: 'remove_voter' as const, node: 'n9' }],
    [{ type: 'promote_learner' as const, node: 'n2' }],
    [
      { type: 'remove_voter' as const, node: 'n1' },
      { type: 'remove_voter' as const, node: 'n2' },
      { type: 'remove_voter' as const, node: 'n3' },
    ],
  ]) {
    const result = n1.proposeConfChange(steps);
    assert.equal(result.ok, false);
    assert.equal(!result.ok && result.reason, 'invalid_change', JSON.stringify(steps));
  }
  assert.deepEqual(cluster.raw('n2').proposeConfChange([{ type: 'add_learner', node: 'n4' }]), {
    ok: false,
    reason: 'not_leader',
    leader: 'n1',
  });
});

test('learner receives the log but never votes or campaigns', () => {
  const cluster = new TestCluster(3);
  assert.ok(cluster.elect('n1'));
  cluster.addNode('n4');
  const change = accepted(
    cluster.raw('n1').proposeConfChange([{ type: 'add_learner', node: 'n4' }]),
  );
  assert.deepEqual(change.membership.votersOutgoing, [], 'a learner change is not joint');
  cluster.propose('n1', 'a');
  cluster.stabilize();
  assert.deepEqual(cluster.appliedTexts('n4'), ['a']);
  assert.deepEqual(cluster.raw('n4').membership.learners, ['n4']);
  // A learner never campaigns, even after many election timeouts without a leader.
  cluster.raw('n4').forgetLeader();
  cluster.tick('n4', 5 * ELECTION);
  cluster.raw('n4').campaign();
  while (cluster.process('n4') !== null) {}
  assert.equal(cluster.raw('n4').role, 'follower');
  assert.deepEqual(campaignMessages(cluster.queue, 'n4'), []);
  // Candidates do not ask learners for votes.
  cluster.raw('n2').campaign();
  while (cluster.process('n2') !== null) {}
  const requested = cluster.queue.filter((m) => m.type === 'pre_vote').map((m) => m.to);
  assert.deepEqual(requested.sort(), ['n1', 'n3']);
  cluster.queue = [];
});

test('learner acknowledgements do not commit', () => {
  const cluster = new TestCluster(3);
  assert.ok(cluster.elect('n1'));
  cluster.addNode('n4');
  accepted(cluster.raw('n1').proposeConfChange([{ type: 'add_learner', node: 'n4' }]));
  cluster.stabilize();
  cluster.isolate('n2');
  cluster.isolate('n3');
  const { index } = cluster.propose('n1', 'uncommitted');
  cluster.stabilize();
  assert.equal(cluster.node('n4').storage.lastIndex(), index, 'the learner has the entry');
  assert.ok(cluster.raw('n1').log.committed < index, 'a learner counted toward commit');
});

test('learner is promoted once caught up', () => {
  const cluster = new TestCluster(3, { promotionLagEntries: 3 });
  assert.ok(cluster.elect('n1'));
  cluster.addNode('n4');
  cluster.isolate('n4');
  accepted(cluster.raw('n1').proposeConfChange([{ type: 'add_learner', node: 'n4' }]));
  for (let i = 0; i < 8; i++) cluster.propose('n1', `v${i}`);
  cluster.stabilize();
  const n1 = cluster.raw('n1');
  assert.deepEqual(n1.promotableLearners(), []);
  const lagging = n1.proposeConfChange([{ type: 'promote_learner', node: 'n4' }]);
  assert.equal(!lagging.ok && lagging.reason, 'learner_lagging');
  assert.equal(n1.status().progress.get('n4')?.match, 0, 'learner progress is reported');
  cluster.heal();
  heartbeatRounds(cluster, 'n1');
  assert.deepEqual(n1.promotableLearners(), ['n4']);
  accepted(n1.proposeConfChange([{ type: 'promote_learner', node: 'n4' }]));
  cluster.stabilize();
  for (const id of cluster.ids) {
    assert.deepEqual(voters(cluster.raw(id).membership), ['n1', 'n2', 'n3', 'n4'], id);
    assert.deepEqual(cluster.raw(id).membership.learners, []);
  }
});

/** Removes n3 while it is cut off, so that it misses the change. */
function removeIsolatedNode(preVote: boolean): { cluster: TestCluster; term: number } {
  const cluster = new TestCluster(3, { preVote });
  assert.ok(cluster.elect('n1'));
  cluster.isolate('n3');
  accepted(cluster.raw('n1').proposeConfChange([{ type: 'remove_voter', node: 'n3' }]));
  cluster.stabilize();
  assert.deepEqual(voters(cluster.raw('n1').membership), ['n1', 'n2']);
  assert.equal(cluster.raw('n1').membership.votersOutgoing.length, 0);
  // n3 still counts itself a voter, and campaigns.
  const term = cluster.raw('n1').term;
  cluster.tick('n3', 6 * ELECTION);
  while (cluster.process('n3') !== null) {}
  cluster.heal();
  cluster.deliver((m) => m.from === 'n3');
  cluster.stabilize();
  assert.equal(cluster.raw('n1').role, 'leader');
  assert.equal(cluster.raw('n1').term, term, 'the removed node raised the leader term');
  assert.equal(cluster.raw('n2').term, term, 'the removed node raised a follower term');
  return { cluster, term };
}

test('removed node cannot raise the term', () => {
  const { cluster, term } = removeIsolatedNode(false);
  assert.ok(cluster.raw('n3').term > term + 1, 'n3 did not campaign');
  cluster.propose('n1', 'after');
  cluster.stabilize();
  assert.deepEqual(cluster.appliedTexts('n2'), ['after']);
});

test('removed node learns its removal after healing', () => {
  const { cluster } = removeIsolatedNode(true);
  // Pre-vote kept n3's term, so it follows the leader, which kept n3 as a retiring peer.
  heartbeatRounds(cluster, 'n1');
  assert.deepEqual(voters(cluster.raw('n3').membership), ['n1', 'n2']);
  assert.equal(cluster.raw('n1').status().progress.has('n3'), false);
  cluster.raw('n3').forgetLeader();
  cluster.tick('n3', 4 * ELECTION);
  while (cluster.process('n3') !== null) {}
  assert.deepEqual(campaignMessages(cluster.queue, 'n3'), [], 'a removed node campaigned');
});

test('removed leader steps down and hands over', () => {
  const cluster = new TestCluster(3);
  assert.ok(cluster.elect('n1'));
  const term = cluster.raw('n1').term;
  accepted(cluster.raw('n1').proposeConfChange([{ type: 'remove_voter', node: 'n1' }]));
  // No ticks: only the TimeoutNow of the stepping-down leader can start the election.
  cluster.stabilize();
  assert.equal(cluster.raw('n1').role, 'follower');
  const leaders = cluster.leaders();
  assert.equal(leaders.length, 1);
  assert.ok(['n2', 'n3'].includes(leaders[0]!));
  assert.equal(cluster.raw(leaders[0]!).term, term + 1);
  cluster.propose(leaders[0]!, 'after');
  cluster.stabilize();
  assert.deepEqual(cluster.appliedTexts(leaders[0]!), ['after']);
  cluster.tick('n1', 4 * ELECTION);
  while (cluster.process('n1') !== null) {}
  assert.deepEqual(campaignMessages(cluster.queue, 'n1'), [], 'the removed leader campaigned');
});

test('leader in the outgoing set leads until the change commits', () => {
  const cluster = new TestCluster(3);
  assert.ok(cluster.elect('n1'));
  cluster.addNode('n4');
  accepted(
    cluster.raw('n1').proposeConfChange([
      { type: 'remove_voter', node: 'n1' },
      { type: 'add_voter', node: 'n4' },
    ]),
  );
  cluster.process('n1');
  assert.equal(cluster.raw('n1').role, 'leader');
  cluster.stabilize();
  const leaders = cluster.leaders();
  assert.equal(leaders.length, 1);
  assert.notEqual(leaders[0], 'n1');
  for (const id of ['n2', 'n3', 'n4']) {
    assert.deepEqual(voters(cluster.raw(id).membership), ['n2', 'n3', 'n4'], id);
  }
});

test('membership survives a restart', () => {
  const cluster = new TestCluster(3);
  assert.ok(cluster.elect('n1'));
  cluster.addNode('n4');
  accepted(cluster.raw('n1').proposeConfChange([{ type: 'add_learner', node: 'n4' }]));
  cluster.stabilize();
  accepted(cluster.raw('n1').proposeConfChange([{ type: 'remove_voter', node: 'n3' }]));
  cluster.process('n1');
  cluster.queue = [];
  // The joint entry is durable on n1 but not committed; a restart finds it in the log.
  cluster.restart('n1');
  assert.equal(cluster.raw('n1').membership.votersOutgoing.length, 3);
  assert.deepEqual(cluster.raw('n1').membership.learners, ['n4']);
  // n2 applied the learner change; its restart starts from the applied membership.
  cluster.restart('n2');
  assert.deepEqual(cluster.raw('n2').membership.learners, ['n4']);
  assert.equal(cluster.raw('n2').membership.votersOutgoing.length, 0);
});

test('snapshot install brings the membership', () => {
  const cluster = new TestCluster(3);
  assert.ok(cluster.elect('n1'));
  cluster.addNode('n4');
  cluster.isolate('n3');
  accepted(cluster.raw('n1').proposeConfChange([{ type: 'add_learner', node: 'n4' }]));
  for (let i = 0; i < 5; i++) cluster.propose('n1', `v${i}`);
  cluster.stabilize();
  const leader = cluster.node('n1');
  leader.storage.compact(leader.raw.status().applied, leader.appliedMembership);
  cluster.heal();
  heartbeatRounds(cluster, 'n1');
  const n3 = cluster.node('n3');
  assert.ok(n3.storage.snapshotMeta().index > 0, 'n3 installed no snapshot');
  assert.deepEqual(n3.raw.membership.learners, ['n4']);
  assert.deepEqual(n3.appliedMembership.learners, ['n4']);
});

test('ready reports the applied membership', () => {
  const cluster = new TestCluster(1);
  assert.ok(cluster.elect('n1'));
  cluster.addNode('n2');
  const n1 = cluster.raw('n1');
  accepted(n1.proposeConfChange([{ type: 'add_learner', node: 'n2' }]));
  const seen: (Membership | null)[] = [];
  for (let round = 0; round < 4; round++) {
    const ready = cluster.process('n1');
    if (ready !== null) seen.push(ready.appliedMembership);
  }
  assert.ok(
    seen.some((membership) => membership?.learners.includes('n2')),
    `no Ready reported the change: ${JSON.stringify(seen)}`,
  );
  cluster.stabilize();
  cluster.propose('n1', 'x');
  for (let ready = cluster.process('n1'); ready !== null; ready = cluster.process('n1')) {
    assert.equal(ready.appliedMembership, null, 'a normal entry reported a membership');
  }
});

test('higher term from a non-member is ignored', () => {
  const cluster = new TestCluster(3);
  assert.ok(cluster.elect('n1'));
  const n2 = cluster.raw('n2');
  const term = n2.term;
  n2.step(message({ type: 'append_response', from: 'n9', to: 'n2', term: term + 5 }));
  n2.step(message({ type: 'pre_vote', from: 'n9', to: 'n2', term: term + 5 }));
  assert.equal(n2.term, term);
  n2.step(message({ type: 'heartbeat', from: 'n9', to: 'n2', term: term + 5 }));
  assert.equal(n2.term, term + 5, 'a leader outside the configuration must be followed');
});
