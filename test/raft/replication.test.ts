/**
 * Log replication and commit rules: the consistency check, truncation from the first conflict
 * only, fast back-off, flow control, the commit rule for earlier terms (Figure 8 of the Raft paper, Ongaro and Ousterhout 2014),
 * persistence before acknowledgement, and the pipelined Ready contract.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Entry, Message } from '../../src/raft/index.js';
import { DEFAULT_ELECTION_TICKS, message } from '../../src/raft/index.js';
import { TestCluster } from './harness.js';

const encoder = new TextEncoder();

function entry(index: number, term: number, text = `${index}@${term}`): Entry {
  return { index, term, type: 'normal', data: encoder.encode(text) };
}

function appendsTo(queue: readonly Message[], to: string): Message[] {
  return queue.filter((m) => m.type === 'append' && m.to === to);
}

test('replication applies proposals everywhere in order', () => {
  const cluster = new TestCluster(3);
  assert.ok(cluster.elect('n1'));
  for (const text of ['a', 'b', 'c']) cluster.propose('n1', text);
  cluster.stabilize();
  for (const id of cluster.ids) assert.deepEqual(cluster.appliedTexts(id), ['a', 'b', 'c']);
});

test('consistency check rejects a mismatched previous entry', () => {
  const cluster = new TestCluster(3);
  const n2 = cluster.raw('n2');
  n2.step(message({ type: 'append', from: 'n1', to: 'n2', term: 1, entries: [entry(1, 1)] }));
  n2.step(
    message({
      type: 'append',
      from: 'n1',
      to: 'n2',
      term: 1,
      index: 1,
      logTerm: 7,
      entries: [entry(2, 1)],
    }),
  );
  const ready = n2.ready();
  const rejection = ready.messages.find((m) => m.type === 'append_response');
  assert.equal(rejection?.reject, true);
  assert.equal(rejection?.index, 1);
  assert.equal(n2.log.lastIndex(), 1);
});

test('delayed append never removes matching entries', () => {
  const cluster = new TestCluster(3);
  const n2 = cluster.raw('n2');
  const early = message({
    type: 'append',
    from: 'n1',
    to: 'n2',
    term: 1,
    entries: [entry(1, 1), entry(2, 1)],
  });
  const late = message({
    type: 'append',
    from: 'n1',
    to: 'n2',
    term: 1,
    entries: [entry(1, 1), entry(2, 1), entry(3, 1), entry(4, 1)],
  });
  n2.step(late);
  n2.step(early);
  n2.step(early);
  assert.equal(n2.log.lastIndex(), 4);
});

test('planted bug truncates on a stale append', () => {
  const cluster = new TestCluster(3, { plantedBugs: ['truncate_on_stale_append'] });
  const n2 = cluster.raw('n2');
  const entries = [entry(1, 1), entry(2, 1), entry(3, 1)];
  n2.step(message({ type: 'append', from: 'n1', to: 'n2', term: 1, entries }));
  n2.step(message({ type: 'append', from: 'n1', to: 'n2', term: 1, entries: entries.slice(0, 1) }));
  assert.equal(n2.log.lastIndex(), 1);
});

test('conflicting tail is truncated from the first conflict', () => {
  const cluster = new TestCluster(3);
  const n2 = cluster.raw('n2');
  n2.step(
    message({
      type: 'append',
      from: 'n1',
      to: 'n2',
      term: 1,
      entries: [entry(1, 1), entry(2, 1), entry(3, 1)],
    }),
  );
  n2.step(
    message({
      type: 'append',
      from: 'n3',
      to: 'n2',
      term: 2,
      index: 1,
      logTerm: 1,
      entries: [entry(2, 1), entry(3, 2)],
    }),
  );
  assert.equal(n2.log.lastIndex(), 3);
  assert.equal(n2.log.term(2), 1);
  assert.equal(n2.log.term(3), 2);
});

test('fast back-off skips a conflicting term in one round trip', () => {
  const cluster = new TestCluster(3);
  assert.ok(cluster.elect('n1'));
  cluster.propose('n1', 'committed');
  cluster.stabilize();
  // n1 appends 300 entries of term 1 alone, then check-quorum deposes it.
  cluster.isolate('n1');
  for (let i = 0; i < 300; i++) cluster.propose('n1', `lost${i}`);
  cluster.stabilize();
  cluster.tick('n1', 2 * DEFAULT_ELECTION_TICKS);
  cluster.raw('n2').forgetLeader();
  cluster.raw('n3').forgetLeader();
  // n2 leads term 2 and commits 300 entries of its own with n3.
  assert.ok(cluster.elect('n2'));
  for (let i = 0; i < 300; i++) cluster.propose('n2', `kept${i}`);
  cluster.stabilize();
  // n3 takes over with n1's vote; it starts probing n1 at its own last index.
  cluster.heal();
  cluster.isolate('n2');
  cluster.raw('n3').forgetLeader();
  cluster.raw('n3').campaign();
  let rejections = 0;
  for (let round = 0; round < 50; round++) {
    for (const id of cluster.ids) while (cluster.process(id) !== null) {}
    rejections += cluster.queue.filter((m) => m.type === 'append_response' && m.reject).length;
    cluster.deliver();
  }
  assert.equal(cluster.raw('n3').role, 'leader');
  assert.ok(rejections >= 1, 'the divergent log must be rejected at least once');
  assert.ok(rejections <= 2, `${rejections} rejections for a 300-entry conflict`);
  assert.equal(cluster.appliedTexts('n1').at(-1), 'kept299');
  assert.equal(cluster.appliedTexts('n1').length, 301);
});

test('stale rejection does not move next back', () => {
  const cluster = new TestCluster(3);
  assert.ok(cluster.elect('n1'));
  for (let i = 0; i < 5; i++) cluster.propose('n1', `v${i}`);
  cluster.stabilize();
  const before = cluster.raw('n1').status().progress.get('n2')!;
  cluster.raw('n1').step(
    message({
      type: 'append_response',
      from: 'n2',
      to: 'n1',
      term: cluster.raw('n1').term,
      index: 1,
      reject: true,
      hintIndex: 0,
    }),
  );
  const after = cluster.raw('n1').status().progress.get('n2')!;
  assert.equal(after.next, before.next);
  assert.equal(after.match, before.match);
});

test('many proposals share one append', () => {
  const cluster = new TestCluster(3);
  assert.ok(cluster.elect('n1'));
  for (let i = 0; i < 100; i++) cluster.propose('n1', `p${i}`);
  cluster.process('n1');
  const appends = appendsTo(cluster.queue, 'n2');
  assert.equal(appends.length, 1);
  assert.equal(appends[0]!.entries.length, 100);
});

test('inflight cap bounds appends in flight', () => {
  const cluster = new TestCluster(3, { maxInflightMessages: 2, maxMessageBytes: 1 });
  assert.ok(cluster.elect('n1'));
  for (let i = 0; i < 10; i++) cluster.propose('n1', `p${i}`);
  cluster.process('n1');
  assert.equal(appendsTo(cluster.queue, 'n2').length, 2);
  cluster.stabilize();
  assert.equal(cluster.appliedTexts('n2').length, 10);
});

test('message byte cap splits entries', () => {
  const cluster = new TestCluster(3, { maxMessageBytes: 200 });
  assert.ok(cluster.elect('n1'));
  for (let i = 0; i < 10; i++) cluster.propose('n1', 'x'.repeat(60));
  cluster.process('n1');
  const appends = appendsTo(cluster.queue, 'n2');
  assert.ok(appends.length > 1);
  for (const m of appends) assert.ok(m.entries.length <= 2);
});

test('follower acknowledges only after persistence', () => {
  const cluster = new TestCluster(3);
  assert.ok(cluster.elect('n1'));
  cluster.propose('n1', 'a');
  cluster.process('n1');
  cluster.deliver((m) => m.to === 'n2');
  const ready = cluster.raw('n2').ready();
  assert.ok(ready.entries.length > 0);
  assert.ok(ready.messages.every((m) => m.type !== 'append_response'));
  assert.ok(ready.messagesAfterPersist.some((m) => m.type === 'append_response' && !m.reject));
});

test('planted bug acknowledges before persistence', () => {
  const cluster = new TestCluster(3, { plantedBugs: ['ack_before_durable'] });
  assert.ok(cluster.elect('n1'));
  cluster.propose('n1', 'a');
  cluster.process('n1');
  cluster.deliver((m) => m.to === 'n2');
  const ready = cluster.raw('n2').ready();
  assert.ok(ready.messages.some((m) => m.type === 'append_response' && !m.reject));
});

test('leader counts itself only once its append is durable', () => {
  const cluster = new TestCluster(3);
  assert.ok(cluster.elect('n1'));
  cluster.isolate('n3');
  const { index } = cluster.propose('n1', 'a');
  cluster.takeUnpersisted('n1');
  cluster.deliver();
  cluster.process('n2');
  cluster.deliver();
  assert.ok(cluster.raw('n1').log.committed < index, 'committed without the leader durable');
  cluster.persistPending('n1');
  assert.equal(cluster.raw('n1').log.committed, index);
});

test('pipelined Readies apply only persisted entries', () => {
  const cluster = new TestCluster(1);
  assert.ok(cluster.elect('n1'));
  cluster.propose('n1', 'a');
  const first = cluster.takeUnpersisted('n1')!;
  assert.equal(first.committedEntries.length, 0);
  cluster.propose('n1', 'b');
  const second = cluster.takeUnpersisted('n1')!;
  assert.equal(second.committedEntries.length, 0, 'nothing is durable yet');
  cluster.persistPending('n1');
  const third = cluster.takeUnpersisted('n1')!;
  const appliedIndexes = third.committedEntries.map((e) => e.index);
  const lastHandedOut = second.entries.at(-1)!.index;
  assert.ok(appliedIndexes.every((i) => i <= lastHandedOut));
  assert.ok(appliedIndexes.includes(first.entries.at(-1)!.index));
});

test('follower commits up to the last verified entry only', () => {
  const cluster = new TestCluster(3);
  const n2 = cluster.raw('n2');
  n2.step(
    message({
      type: 'append',
      from: 'n1',
      to: 'n2',
      term: 2,
      entries: [entry(1, 1), entry(2, 1), entry(3, 1)],
    }),
  );
  // A new leader's append verifies only up to index 1 but carries commit 3.
  n2.step(
    message({
      type: 'append',
      from: 'n3',
      to: 'n2',
      term: 3,
      index: 0,
      logTerm: 0,
      entries: [entry(1, 1)],
      commit: 3,
    }),
  );
  assert.equal(n2.log.committed, 1);
});

test('commit advance reaches followers promptly', () => {
  const cluster = new TestCluster(3);
  assert.ok(cluster.elect('n1'));
  const { index } = cluster.propose('n1', 'a');
  cluster.process('n1');
  cluster.deliver();
  cluster.process('n2');
  cluster.process('n3');
  cluster.deliver();
  assert.equal(cluster.raw('n1').log.committed, index);
  cluster.process('n1');
  cluster.deliver();
  assert.equal(cluster.raw('n2').log.committed, index, 'no tick was needed');
});

/**
 * Figure 8 of the Raft paper in three nodes: n1 (term 1) stores "old" and so does n2, but no
 * acknowledgement arrives. n2 wins term 2 and must not commit "old" when n1 reports that it has
 * it, although two of three nodes now do: only an entry of term 2 may carry it.
 */
function figure8Leader(plantedBugs: 'commit_previous_term'[]) {
  const cluster = new TestCluster(3, { preVote: false, checkQuorum: false, plantedBugs });
  assert.ok(cluster.elect('n1'));
  cluster.isolate('n3');
  const old = cluster.propose('n1', 'old');
  cluster.process('n1');
  cluster.deliver();
  cluster.process('n2');
  cluster.drop(() => true);
  cluster.heal();
  cluster.isolate('n1');
  cluster.raw('n2').campaign();
  for (let i = 0; i < 4; i++) {
    cluster.process('n2');
    cluster.process('n3');
    cluster.deliver((m) => m.type !== 'append' && m.type !== 'append_response');
  }
  cluster.drop(() => true);
  const leader = cluster.raw('n2');
  assert.equal(leader.role, 'leader');
  assert.equal(leader.log.term(old.index), 1);
  leader.step(
    message({ type: 'append_response', from: 'n1', to: 'n2', term: leader.term, index: old.index }),
  );
  return { leader, oldIndex: old.index };
}

test('figure 8: old-term entry needs a current-term entry', () => {
  const { leader, oldIndex } = figure8Leader([]);
  assert.ok(leader.log.committed < oldIndex);
});

test('planted bug commits an old-term entry by counting', () => {
  const { leader, oldIndex } = figure8Leader(['commit_previous_term']);
  assert.equal(leader.log.committed, oldIndex);
});
