/**
 * Election rules of the Raft paper's Figure 2 plus pre-vote and check-quorum, as scripted
 * scenarios on the in-memory harness.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DEFAULT_ELECTION_TICKS, message } from '../../src/raft/index.js';
import { TestCluster } from './harness.js';

const ELECTION = DEFAULT_ELECTION_TICKS;

test('election elects a single leader', () => {
  const cluster = new TestCluster(3);
  assert.ok(cluster.elect('n1'));
  assert.deepEqual(cluster.leaders(), ['n1']);
  assert.equal(cluster.raw('n1').term, 1);
  for (const id of ['n2', 'n3']) {
    assert.equal(cluster.raw(id).role, 'follower');
    assert.equal(cluster.raw(id).leader, 'n1');
    assert.equal(cluster.raw(id).vote, 'n1');
  }
});

test('election timeout is drawn anew in [E, 2E)', () => {
  const cluster = new TestCluster(3);
  const observed = new Set<number>();
  for (let campaign = 0; campaign < 20; campaign++) {
    let ticks = 0;
    while (cluster.raw('n1').role === 'follower') {
      cluster.tick('n1');
      ticks++;
      assert.ok(ticks < 2 * ELECTION, `no campaign after ${ticks} ticks`);
    }
    assert.ok(ticks >= ELECTION, `campaign after only ${ticks} ticks`);
    observed.add(ticks);
    // Pre-vote to isolated peers fails; make the node a follower again.
    cluster.queue = [];
    cluster
      .raw('n1')
      .step(message({ type: 'heartbeat', from: 'n2', to: 'n1', term: cluster.raw('n1').term + 1 }));
    cluster.queue = [];
    while (cluster.raw('n1').hasReady()) cluster.process('n1');
    cluster.queue = [];
  }
  assert.ok(observed.size > 3, `timeouts were not randomized: ${[...observed]}`);
});

test('one vote per term', () => {
  const cluster = new TestCluster(3, { preVote: false, checkQuorum: false });
  const n3 = cluster.raw('n3');
  n3.step(message({ type: 'vote', from: 'n1', to: 'n3', term: 2, index: 0, logTerm: 0 }));
  n3.step(message({ type: 'vote', from: 'n2', to: 'n3', term: 2, index: 0, logTerm: 0 }));
  const ready = n3.ready();
  const answers = ready.messagesAfterPersist.map((m) => `${m.to}:${m.reject}`);
  assert.deepEqual(answers, ['n1:false', 'n2:true']);
  assert.equal(ready.hardState?.vote, 'n1');
  assert.equal(ready.messages.length, 0, 'vote answers must wait for persistence');
});

test('vote survives a restart', () => {
  const cluster = new TestCluster(3, { preVote: false, checkQuorum: false });
  cluster.raw('n3').step(message({ type: 'vote', from: 'n1', to: 'n3', term: 2 }));
  cluster.process('n3');
  cluster.restart('n3');
  cluster.queue = [];
  cluster.raw('n3').step(message({ type: 'vote', from: 'n2', to: 'n3', term: 2 }));
  const answer = cluster.raw('n3').ready().messagesAfterPersist[0];
  assert.equal(answer?.reject, true);
  assert.equal(cluster.raw('n3').vote, 'n1');
});

test('planted bug forgets the vote on restart', () => {
  const cluster = new TestCluster(3, {
    preVote: false,
    checkQuorum: false,
    plantedBugs: ['forget_vote_on_restart'],
  });
  cluster.raw('n3').step(message({ type: 'vote', from: 'n1', to: 'n3', term: 2 }));
  cluster.process('n3');
  cluster.restart('n3');
  cluster.queue = [];
  cluster.raw('n3').step(message({ type: 'vote', from: 'n2', to: 'n3', term: 2 }));
  assert.equal(cluster.raw('n3').ready().messagesAfterPersist[0]?.reject, false);
});

test('stepping down in the same term keeps the vote', () => {
  const cluster = new TestCluster(3, { preVote: false });
  cluster.raw('n2').campaign();
  assert.equal(cluster.raw('n2').role, 'candidate');
  const term = cluster.raw('n2').term;
  cluster.raw('n2').step(message({ type: 'heartbeat', from: 'n1', to: 'n2', term }));
  assert.equal(cluster.raw('n2').role, 'follower');
  assert.equal(cluster.raw('n2').vote, 'n2');
  assert.equal(cluster.raw('n2').term, term);
});

test('vote rejected for a less up-to-date log', () => {
  const cluster = new TestCluster(3);
  assert.ok(cluster.elect('n1'));
  cluster.propose('n1', 'a');
  cluster.stabilize();
  const n2 = cluster.raw('n2');
  const lastIndex = n2.log.lastIndex();
  const lastTerm = n2.log.lastTerm();
  // Older last term, and same term with a shorter log: both rejected.
  for (const [index, logTerm] of [
    [lastIndex + 5, lastTerm - 1],
    [lastIndex - 1, lastTerm],
  ] as const) {
    cluster.node('n2').raw.forgetLeader();
    n2.step(message({ type: 'vote', from: 'n3', to: 'n2', term: n2.term + 1, index, logTerm }));
    const answer = n2.ready().messagesAfterPersist.find((m) => m.type === 'vote_response');
    assert.equal(answer?.reject, true, `granted for (${index}, ${logTerm})`);
  }
});

test('candidate counts votes only in its role', () => {
  const cluster = new TestCluster(3, { preVote: false });
  cluster.raw('n1').campaign();
  const term = cluster.raw('n1').term;
  // It steps down, then a late grant arrives: it must not crown itself.
  cluster.raw('n1').step(message({ type: 'heartbeat', from: 'n2', to: 'n1', term }));
  cluster.raw('n1').step(message({ type: 'vote_response', from: 'n3', to: 'n1', term }));
  assert.equal(cluster.raw('n1').role, 'follower');
});

test('pre-vote leaves the term of an isolated node', () => {
  const cluster = new TestCluster(3);
  assert.ok(cluster.elect('n1'));
  cluster.isolate('n3');
  const term = cluster.raw('n3').term;
  for (let i = 0; i < 10 * ELECTION; i++) {
    cluster.tick('n3');
    cluster.stabilize();
  }
  assert.equal(cluster.raw('n3').term, term);
  assert.equal(cluster.raw('n3').role, 'pre_candidate');
});

test('partitioned node rejoins without deposing the leader', () => {
  const cluster = new TestCluster(3);
  assert.ok(cluster.elect('n1'));
  const term = cluster.raw('n1').term;
  cluster.isolate('n3');
  for (let i = 0; i < 10 * ELECTION; i++) {
    for (const id of cluster.ids) cluster.tick(id);
    cluster.stabilize();
  }
  cluster.heal();
  cluster.propose('n1', 'after heal');
  for (let i = 0; i < 3 * ELECTION; i++) {
    for (const id of cluster.ids) cluster.tick(id);
    cluster.stabilize();
  }
  assert.deepEqual(cluster.leaders(), ['n1']);
  assert.equal(cluster.raw('n1').term, term);
  assert.deepEqual(cluster.appliedTexts('n3'), ['after heal']);
});

test('without pre-vote a rejoining node disrupts the term', () => {
  const cluster = new TestCluster(3, { preVote: false, checkQuorum: false });
  assert.ok(cluster.elect('n1'));
  const term = cluster.raw('n1').term;
  cluster.isolate('n3');
  for (let i = 0; i < 4 * ELECTION; i++) {
    cluster.tick('n3');
    cluster.stabilize();
  }
  cluster.heal();
  cluster.raw('n3').campaign();
  cluster.stabilize();
  assert.ok(cluster.raw('n1').term > term, 'the contrast case must show the disruption');
});

test('check-quorum deposes a leader cut off from its followers', () => {
  const cluster = new TestCluster(3);
  assert.ok(cluster.elect('n1'));
  cluster.isolate('n1');
  for (let i = 0; i < 2 * ELECTION; i++) {
    cluster.tick('n1');
    cluster.stabilize();
  }
  assert.equal(cluster.raw('n1').role, 'follower');
});

test('follower in lease ignores a higher-term vote request', () => {
  const cluster = new TestCluster(3);
  assert.ok(cluster.elect('n1'));
  const n2 = cluster.raw('n2');
  const term = n2.term;
  n2.step(message({ type: 'vote', from: 'n3', to: 'n2', term: term + 5, index: 100, logTerm: 9 }));
  assert.equal(n2.term, term);
  assert.equal(n2.leader, 'n1');
  // After forgetLeader (the leader's node is gone) the same request is granted.
  n2.forgetLeader();
  n2.step(message({ type: 'vote', from: 'n3', to: 'n2', term: term + 5, index: 100, logTerm: 9 }));
  assert.equal(n2.term, term + 5);
  assert.equal(n2.vote, 'n3');
});

test('stale leader learns the higher term and steps down', () => {
  const cluster = new TestCluster(3);
  assert.ok(cluster.elect('n1'));
  cluster.isolate('n1');
  cluster.raw('n2').forgetLeader();
  cluster.raw('n3').forgetLeader();
  assert.ok(cluster.elect('n2'));
  cluster.heal();
  cluster.propose('n1', 'stale');
  cluster.stabilize();
  assert.equal(cluster.raw('n1').role, 'follower');
  assert.equal(cluster.raw('n1').term, cluster.raw('n2').term);
  assert.deepEqual(cluster.appliedTexts('n1'), []);
});

test('lower-term messages are ignored', () => {
  const cluster = new TestCluster(3);
  assert.ok(cluster.elect('n1'));
  const n2 = cluster.raw('n2');
  const before = n2.status();
  n2.step(
    message({ type: 'append', from: 'n3', to: 'n2', term: 0, index: 1, logTerm: 1, commit: 9 }),
  );
  assert.equal(n2.status().commit, before.commit);
  assert.equal(n2.leader, 'n1');
});
