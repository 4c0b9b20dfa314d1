/**
 * Rules of Figure 2 of the Raft paper (Ongaro and Ousterhout, 2014) not covered by the election
 * and replication scenarios, plus the leader's snapshot and reachability reports.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  DEFAULT_ELECTION_TICKS,
  DEFAULT_HEARTBEAT_TICKS,
  message,
  type Ready,
} from '../../src/raft/index.js';
import { TestCluster } from './harness.js';

const ELECTION = DEFAULT_ELECTION_TICKS;

test('heartbeats keep a follower from campaigning', () => {
  const cluster = new TestCluster(3);
  assert.ok(cluster.elect('n1'));
  for (let i = 0; i < 10 * ELECTION; i++) {
    for (const id of cluster.ids) cluster.tick(id);
    cluster.stabilize();
  }
  assert.deepEqual(cluster.leaders(), ['n1']);
  assert.equal(cluster.raw('n2').term, 1);
});

test('granting a vote restarts the election timer', () => {
  const cluster = new TestCluster(3, { preVote: false, checkQuorum: false });
  const n2 = cluster.raw('n2');
  cluster.tick('n2', ELECTION - 1);
  n2.step(message({ type: 'vote', from: 'n1', to: 'n2', term: 1 }));
  assert.equal(n2.vote, 'n1');
  cluster.tick('n2', ELECTION - 1);
  assert.equal(n2.role, 'follower', 'campaigned although it had just granted a vote');
});

test('candidate times out into a new term', () => {
  const cluster = new TestCluster(3, { preVote: false });
  cluster.isolate('n1');
  cluster.raw('n1').campaign();
  assert.equal(cluster.raw('n1').term, 1);
  cluster.tick('n1', 2 * ELECTION);
  assert.equal(cluster.raw('n1').role, 'candidate');
  assert.equal(cluster.raw('n1').term, 2);
  assert.equal(cluster.raw('n1').vote, 'n1');
});

test('vote request of a lower term is not granted', () => {
  const cluster = new TestCluster(3, { preVote: false, checkQuorum: false });
  const n2 = cluster.raw('n2');
  n2.step(message({ type: 'heartbeat', from: 'n3', to: 'n2', term: 5 }));
  n2.forgetLeader();
  n2.step(message({ type: 'vote', from: 'n1', to: 'n2', term: 4 }));
  assert.equal(n2.vote, '');
  assert.equal(n2.term, 5);
});

test('follower adopts a higher term from an append', () => {
  const cluster = new TestCluster(3);
  const n2 = cluster.raw('n2');
  n2.step(message({ type: 'append', from: 'n3', to: 'n2', term: 7 }));
  assert.equal(n2.term, 7);
  assert.equal(n2.leader, 'n3');
  assert.equal(n2.vote, '');
  const hardState = n2.ready().hardState;
  assert.equal(hardState?.term, 7, 'the new term must be persisted');
});

test('leader sends an append right after election', () => {
  const cluster = new TestCluster(3);
  cluster.raw('n1').campaign();
  for (let i = 0; i < 6; i++) {
    for (const id of cluster.ids) cluster.process(id);
    cluster.deliver((m) => m.type !== 'append');
  }
  assert.equal(cluster.raw('n1').role, 'leader');
  const appends = cluster.queue.filter((m) => m.type === 'append');
  assert.deepEqual(appends.map((m) => m.to).sort(), ['n2', 'n3']);
  for (const m of appends) assert.equal(m.entries.length, 1, 'the no-op of the new term');
});

test('snapshot failure sends the leader back to probing', () => {
  const cluster = new TestCluster(3);
  assert.ok(cluster.elect('n1'));
  cluster.isolate('n3');
  for (let i = 0; i < 10; i++) cluster.propose('n1', `v${i}`);
  cluster.stabilize();
  const leader = cluster.node('n1');
  leader.storage.compact(leader.raw.status().applied, leader.raw.membership);
  cluster.heal();
  const n3 = cluster.node('n3');
  let ready: Ready | null = null;
  for (let round = 0; round < 10 && ready === null; round++) {
    cluster.tick('n1', DEFAULT_HEARTBEAT_TICKS);
    cluster.process('n1');
    cluster.deliver();
    while (n3.raw.hasReady()) {
      const next = n3.raw.ready();
      if (next.snapshot !== null) {
        ready = next;
        break;
      }
      cluster.persist('n3', next);
    }
    cluster.deliver();
  }
  assert.ok(ready !== null, 'n3 was not asked to install a snapshot');
  assert.equal(cluster.raw('n1').status().progress.get('n3')?.state, 'snapshot');
  cluster.queue.push(...ready.messages, ...ready.messagesAfterPersist);
  n3.raw.advance(ready);
  n3.raw.snapshotFailed();
  cluster.process('n3');
  cluster.deliver();
  assert.equal(cluster.raw('n1').status().progress.get('n3')?.state, 'probe');
});

test('reportSnapshot and reportUnreachable move progress', () => {
  const cluster = new TestCluster(3);
  assert.ok(cluster.elect('n1'));
  const leader = cluster.raw('n1');
  assert.equal(leader.status().progress.get('n2')?.state, 'replicate');
  leader.reportUnreachable('n2');
  assert.equal(leader.status().progress.get('n2')?.state, 'probe');
  // reportSnapshot outside snapshot state changes nothing.
  leader.reportSnapshot('n2', true);
  assert.equal(leader.status().progress.get('n2')?.state, 'probe');
});
