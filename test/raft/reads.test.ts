/**
 * Linearizable reads (ReadIndex), lease reads, snapshots, quiesce and status.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DEFAULT_ELECTION_TICKS, DEFAULT_HEARTBEAT_TICKS } from '../../src/raft/index.js';
import { TestCluster } from './harness.js';

const ELECTION = DEFAULT_ELECTION_TICKS;
const HEARTBEAT = DEFAULT_HEARTBEAT_TICKS;

test('read index waits for a heartbeat round', () => {
  const cluster = new TestCluster(3);
  assert.ok(cluster.elect('n1'));
  const { index } = cluster.propose('n1', 'a');
  cluster.stabilize();
  assert.equal(cluster.raw('n1').readIndex('r1').ok, true);
  cluster.process('n1');
  assert.deepEqual(cluster.node('n1').readStates, [], 'served before a quorum answered');
  cluster.stabilize();
  assert.deepEqual(cluster.node('n1').readStates, [{ index, context: 'r1' }]);
});

test('single voter serves a read at once', () => {
  const cluster = new TestCluster(1);
  assert.ok(cluster.elect('n1'));
  const { index } = cluster.propose('n1', 'a');
  cluster.stabilize();
  assert.equal(cluster.raw('n1').readIndex('only').ok, true);
  cluster.process('n1');
  assert.deepEqual(cluster.node('n1').readStates, [{ index, context: 'only' }]);
});

test('many reads share one heartbeat round', () => {
  const cluster = new TestCluster(3);
  assert.ok(cluster.elect('n1'));
  cluster.stabilize();
  for (let i = 0; i < 50; i++) cluster.raw('n1').readIndex(`r${i}`);
  cluster.process('n1');
  const heartbeats = cluster.queue.filter((m) => m.type === 'heartbeat');
  assert.equal(heartbeats.length, 2, 'one heartbeat per follower');
  cluster.stabilize();
  assert.equal(cluster.node('n1').readStates.length, 50);
});

test('new leader serves reads only after its no-op commits', () => {
  const cluster = new TestCluster(3);
  cluster.raw('n1').campaign();
  // Deliver votes but hold the leader's appends back.
  for (let i = 0; i < 4; i++) {
    for (const id of cluster.ids) cluster.process(id);
    cluster.deliver((m) => m.type !== 'append');
  }
  assert.equal(cluster.raw('n1').role, 'leader');
  cluster.raw('n1').readIndex('early');
  for (let i = 0; i < 4; i++) {
    cluster.process('n1');
    cluster.deliver((m) => m.type !== 'append');
    cluster.process('n2');
    cluster.process('n3');
    cluster.deliver((m) => m.type !== 'append');
  }
  assert.deepEqual(cluster.node('n1').readStates, []);
  cluster.stabilize();
  const noop = cluster.raw('n1').log.committed;
  assert.deepEqual(cluster.node('n1').readStates, [{ index: noop, context: 'early' }]);
});

test('follower read is forwarded to the leader', () => {
  const cluster = new TestCluster(3);
  assert.ok(cluster.elect('n1'));
  const { index } = cluster.propose('n1', 'a');
  cluster.stabilize();
  assert.equal(cluster.raw('n2').readIndex('f1').ok, true);
  cluster.stabilize();
  assert.deepEqual(cluster.node('n2').readStates, [{ index, context: 'f1' }]);
});

test('read without a known leader is rejected', () => {
  const cluster = new TestCluster(3);
  const result = cluster.raw('n2').readIndex('x');
  assert.deepEqual(result, { ok: false, reason: 'no_leader', leader: '' });
});

test('stale read after a leader change is prevented', () => {
  const cluster = new TestCluster(3);
  assert.ok(cluster.elect('n1'));
  cluster.isolate('n1');
  cluster.raw('n2').forgetLeader();
  cluster.raw('n3').forgetLeader();
  assert.ok(cluster.elect('n2'));
  const { index } = cluster.propose('n2', 'new value');
  cluster.stabilize();
  // The deposed n1 still believes it leads; its read must never be served.
  assert.equal(cluster.raw('n1').role, 'leader');
  cluster.raw('n1').readIndex('stale');
  cluster.stabilize();
  assert.deepEqual(cluster.node('n1').readStates, []);
  cluster.raw('n3').readIndex('fresh');
  cluster.stabilize();
  assert.deepEqual(cluster.node('n3').readStates, [{ index, context: 'fresh' }]);
});

test('planted bug serves a stale read on a deposed leader', () => {
  const cluster = new TestCluster(3, { plantedBugs: ['read_without_read_index'] });
  assert.ok(cluster.elect('n1'));
  cluster.isolate('n1');
  cluster.raw('n2').forgetLeader();
  cluster.raw('n3').forgetLeader();
  assert.ok(cluster.elect('n2'));
  const { index } = cluster.propose('n2', 'new value');
  cluster.stabilize();
  cluster.raw('n1').readIndex('stale');
  cluster.stabilize();
  const state = cluster.node('n1').readStates[0];
  assert.ok(state !== undefined, 'the deposed leader served nothing');
  assert.ok(state.index < index, 'the read point includes the new write');
});

test('lease read answers without a round', () => {
  const cluster = new TestCluster(3, { readMode: 'lease' });
  assert.ok(cluster.elect('n1'));
  cluster.raw('n1').readIndex('lease');
  cluster.process('n1');
  assert.equal(cluster.node('n1').readStates.length, 1);
});

test('lagging follower receives a snapshot', () => {
  const cluster = new TestCluster(3);
  assert.ok(cluster.elect('n1'));
  cluster.isolate('n3');
  for (let i = 0; i < 20; i++) cluster.propose('n1', `v${i}`);
  cluster.stabilize();
  const leader = cluster.node('n1');
  const applied = leader.raw.status().applied;
  leader.storage.compact(applied - 2, leader.raw.membership);
  cluster.heal();
  for (let i = 0; i < 2 * HEARTBEAT; i++) {
    cluster.tick('n1');
    cluster.stabilize();
  }
  cluster.propose('n1', 'after');
  cluster.stabilize();
  const follower = cluster.raw('n3').status();
  assert.equal(follower.firstIndex, applied - 1, 'n3 restarted its log at the snapshot');
  assert.equal(follower.commit, cluster.raw('n1').log.committed);
  // Entries after the snapshot point arrive as entries.
  assert.deepEqual(cluster.appliedTexts('n3'), ['v18', 'v19', 'after']);
});

test('stale snapshot never moves applied state back', () => {
  const cluster = new TestCluster(3);
  assert.ok(cluster.elect('n1'));
  for (let i = 0; i < 5; i++) cluster.propose('n1', `v${i}`);
  cluster.stabilize();
  const n2 = cluster.raw('n2');
  const applied = n2.status().applied;
  n2.step({
    type: 'snapshot',
    from: 'n1',
    to: 'n2',
    term: n2.term,
    logTerm: 0,
    index: 0,
    entries: [],
    commit: 0,
    reject: false,
    hintIndex: 0,
    hintTerm: 0,
    context: 0,
    quiesce: false,
    readContext: '',
    snapshot: { index: 2, term: 1, membership: n2.membership },
  });
  const ready = n2.ready();
  assert.equal(ready.snapshot, null);
  assert.equal(n2.status().applied, applied);
});

test('idle group goes quiet and wakes on a proposal', () => {
  const cluster = new TestCluster(3, { quiesce: true });
  assert.ok(cluster.elect('n1'));
  for (let i = 0; i < 2 * HEARTBEAT; i++) {
    for (const id of cluster.ids) cluster.tick(id);
    cluster.stabilize();
  }
  for (const id of cluster.ids) assert.equal(cluster.raw(id).quiet, true, `${id} is not quiet`);
  // Quiet: many election timeouts pass with no messages and no election.
  for (let i = 0; i < 5 * ELECTION; i++) {
    for (const id of cluster.ids) cluster.tick(id);
    cluster.stabilize();
    assert.equal(cluster.queue.length, 0);
  }
  assert.deepEqual(cluster.leaders(), ['n1']);
  cluster.propose('n1', 'wake');
  cluster.stabilize();
  assert.deepEqual(cluster.appliedTexts('n3'), ['wake']);
  assert.equal(cluster.raw('n2').quiet, false);
});

test('quiet group elects after forgetLeader', () => {
  const cluster = new TestCluster(3, { quiesce: true });
  assert.ok(cluster.elect('n1'));
  for (let i = 0; i < 2 * HEARTBEAT; i++) {
    for (const id of cluster.ids) cluster.tick(id);
    cluster.stabilize();
  }
  cluster.isolate('n1');
  cluster.raw('n2').forgetLeader();
  cluster.raw('n3').forgetLeader();
  cluster.raw('n2').campaign();
  cluster.stabilize();
  assert.equal(cluster.raw('n2').role, 'leader');
});

test('quiet leader learns a higher term on its next write', () => {
  const cluster = new TestCluster(3, { quiesce: true });
  assert.ok(cluster.elect('n1'));
  for (let i = 0; i < 2 * HEARTBEAT; i++) {
    for (const id of cluster.ids) cluster.tick(id);
    cluster.stabilize();
  }
  cluster.isolate('n1');
  cluster.raw('n2').forgetLeader();
  cluster.raw('n3').forgetLeader();
  assert.ok(cluster.elect('n3'));
  cluster.heal();
  cluster.propose('n1', 'lost');
  cluster.stabilize();
  assert.equal(cluster.raw('n1').role, 'follower');
  assert.equal(cluster.raw('n1').term, cluster.raw('n3').term);
  assert.deepEqual(cluster.appliedTexts('n3'), []);
});

test('status reports role, indexes and progress', () => {
  const cluster = new TestCluster(3);
  assert.ok(cluster.elect('n1'));
  const { index } = cluster.propose('n1', 'a');
  cluster.stabilize();
  const status = cluster.raw('n1').status();
  assert.equal(status.role, 'leader');
  assert.equal(status.leader, 'n1');
  assert.equal(status.commit, index);
  assert.equal(status.applied, index);
  assert.equal(status.firstIndex, 1);
  assert.equal(status.lastIndex, index);
  assert.deepEqual(status.membership.voters, ['n1', 'n2', 'n3']);
  for (const id of ['n2', 'n3']) {
    const progress = status.progress.get(id);
    assert.equal(progress?.match, index);
    assert.equal(progress?.next, index + 1);
    assert.equal(progress?.state, 'replicate');
  }
  assert.equal(cluster.raw('n2').status().progress.size, 0);
});
