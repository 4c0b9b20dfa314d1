/**
 * Snapshots by shipping the database file: a follower that missed more entries than the
 * leader retains gets the leader's file, exactly once, and ends identical to the others; one
 * that missed few entries catches up from the log; a transfer cut midway resumes.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  assertIdenticalReplicas,
  TestCluster,
  type TestNode,
  waitForConvergence,
} from '../support/cluster.js';
import { TcpProxy } from '../support/tcp-proxy.js';

const RETENTION = ['--log-retention-entries', '20'];

async function writeDocs(
  cluster: TestCluster,
  node: TestNode,
  db: string,
  from: number,
  count: number,
  size = 10,
) {
  for (let i = from; i < from + count; i++) {
    const result = await cluster.httpRetry(node, 'PUT', `/${db}/doc-${i}`, {
      i,
      pad: 'x'.repeat(size),
    });
    assert.equal(result.status, 201, result.body);
  }
}

test('a follower far behind catches up with one snapshot', async (t) => {
  const cluster = await TestCluster.start(t, { extraArgs: RETENTION });
  const db = 'far-behind';
  assert.equal((await cluster.httpRetry(cluster.nodes[0]!, 'PUT', `/${db}`)).status, 201);
  const leader = await cluster.leaderOf(db);
  const [brief, far] = cluster.nodes.filter((node) => node !== leader) as [TestNode, TestNode];

  await writeDocs(cluster, leader, db, 0, 5);
  await cluster.kill(brief);
  await writeDocs(cluster, leader, db, 5, 5);
  await cluster.startNode(brief);
  await waitForConvergence(cluster, db);
  assert.equal(
    (await cluster.raft(brief, db)).snapshots_received,
    0,
    'a brief absence needs no snapshot',
  );

  await cluster.kill(far);
  await writeDocs(cluster, leader, db, 10, 100);
  await cluster.startNode(far);
  await waitForConvergence(cluster, db);
  assert.equal((await cluster.raft(far, db)).snapshots_received, 1);
  assert.equal((await cluster.raft(leader, db)).snapshots_sent, 1);
  await assertIdenticalReplicas(cluster, db);

  await writeDocs(cluster, leader, db, 110, 3);
  await waitForConvergence(cluster, db);
  await assertIdenticalReplicas(cluster, db);
});

test('a snapshot transfer cut midway resumes', async (t) => {
  const cluster = await TestCluster.create(t, { extraArgs: RETENTION });
  const [n1, n2] = cluster.nodes as [TestNode, TestNode];
  // n1 dials n2, so this proxy carries all traffic between them, chunk replies included.
  const proxy = await TcpProxy.start(n2.peerPort);
  t.after(() => proxy.close());
  cluster.routePeer('n1', 'n2', proxy.port);
  await cluster.startAll();

  const db = 'resumed';
  assert.equal((await cluster.httpRetry(n2, 'PUT', `/${db}`)).status, 201);
  assert.equal((await cluster.leaderOf(db)).name, 'n2');
  await cluster.kill(n1);
  await writeDocs(cluster, n2, db, 0, 60, 100_000);
  proxy.cutAfter(2_500_000);
  await cluster.startNode(n1);
  await waitForConvergence(cluster, db);
  assert.equal(proxy.cuts, 1, 'the transfer was cut once');
  assert.equal((await cluster.raft(n1, db)).snapshots_received, 1);
  await assertIdenticalReplicas(cluster, db);
});

test('a snapshot taken during compaction installs whole', async (t) => {
  // Slow enough that the leader is still compacting while the follower fetches its file.
  const cluster = await TestCluster.start(t, {
    extraArgs: RETENTION,
    env: { DIVAN_TEST_COMPACTION_DELAY_MS: '20' },
  });
  const db = 'compacting';
  assert.equal((await cluster.httpRetry(cluster.nodes[0]!, 'PUT', `/${db}`)).status, 201);
  const leader = await cluster.leaderOf(db);
  const far = cluster.nodes.find((node) => node !== leader)!;

  await writeDocs(cluster, leader, db, 0, 20);
  await cluster.kill(far);
  await writeDocs(cluster, leader, db, 20, 80, 1_000);
  const started = await cluster.http(leader, 'POST', `/${db}/_compact`, undefined, {
    headers: { 'content-type': 'application/json' },
  });
  assert.equal(started.status, 202, started.body);
  await cluster.startNode(far);
  await waitForConvergence(cluster, db);
  assert.equal((await cluster.raft(far, db)).snapshots_received, 1);
  await writeDocs(cluster, leader, db, 100, 3);
  await waitForConvergence(cluster, db);
  await assertIdenticalReplicas(cluster, db);
});
