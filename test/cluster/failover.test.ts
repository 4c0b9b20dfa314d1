/**
 * The original change's scenario over HTTP, on real node processes: three nodes, one leader,
 * writes acknowledged by a majority, the leader killed, a new leader, the old leader catching up
 * from the log, identical replicas, and a full restart that keeps every acknowledged write.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { assertIdenticalReplicas, TestCluster, waitForConvergence } from '../support/cluster.js';

const DB = 'scenario';

test('leader failover keeps every acknowledged write', async (t) => {
  const cluster = await TestCluster.start(t);
  const [n1] = cluster.nodes;

  const created = await cluster.httpRetry(n1!, 'PUT', `/${DB}`);
  assert.equal(created.status, 201, created.body);

  const leader = await cluster.leaderOf(DB);
  const acknowledged = new Map<string, string>();
  for (const id of ['a', 'b', 'c']) {
    const result = await cluster.http(leader, 'PUT', `/${DB}/${id}`, { value: id });
    assert.equal(result.status, 201, result.body);
    acknowledged.set(id, (result.json as { rev: string }).rev);
  }
  for (const node of cluster.nodes) {
    for (const [id, rev] of acknowledged) {
      const read = await cluster.http(node, 'GET', `/${DB}/${id}`);
      assert.equal(read.status, 200, `${id} on ${node.name}: ${read.body}`);
      assert.equal((read.json as { _rev: string })._rev, rev);
    }
  }

  await cluster.kill(leader);
  const survivors = cluster.nodes.filter((node) => node !== leader);
  const newLeader = await cluster.leaderOf(DB);
  assert.notEqual(newLeader.name, leader.name);

  const fourth = await cluster.httpRetry(survivors[0]!, 'PUT', `/${DB}/d`, { value: 'd' });
  assert.equal(fourth.status, 201, fourth.body);
  acknowledged.set('d', (fourth.json as { rev: string }).rev);

  await cluster.startNode(leader);
  await waitForConvergence(cluster, DB);
  for (const node of cluster.nodes) {
    assert.equal(
      (await cluster.raft(node, DB)).snapshots_received,
      0,
      `${node.name} caught up from the log`,
    );
  }
  await assertIdenticalReplicas(cluster, DB);

  await cluster.killAll();
  await Promise.all(cluster.nodes.map((node) => cluster.startNode(node)));
  await cluster.leaderOf(DB);
  for (const node of cluster.nodes) {
    for (const [id, rev] of acknowledged) {
      const read = await cluster.httpRetry(node, 'GET', `/${DB}/${id}`);
      assert.equal(read.status, 200, `${id} on ${node.name} after restart: ${read.body}`);
      assert.equal((read.json as { _rev: string })._rev, rev);
    }
  }
  await waitForConvergence(cluster, DB);
  await assertIdenticalReplicas(cluster, DB);
});
