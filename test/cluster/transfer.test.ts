/**
 * Leadership transfer over HTTP: `POST /{db}/_raft/transfer` on any node moves a group's
 * leadership to the named voter, also while clients write; bad targets get CouchDB errors.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { assertIdenticalReplicas, TestCluster, waitForConvergence } from '../support/cluster.js';

const DB = 'transfers';

test('leadership moves on request under write load', async (t) => {
  const cluster = await TestCluster.start(t);
  assert.equal((await cluster.httpRetry(cluster.nodes[0]!, 'PUT', `/${DB}`)).status, 201);

  let writing = true;
  const acknowledged: string[] = [];
  const writer = (async () => {
    for (let i = 0; writing; i++) {
      const node = cluster.nodes[i % cluster.nodes.length]!;
      const result = await cluster.http(node, 'PUT', `/${DB}/doc-${i}`, { i });
      if (result.status === 201) acknowledged.push(`doc-${i}`);
      else assert.equal(result.status, 503, result.body);
    }
  })();

  for (let round = 0; round < 4; round++) {
    const leader = await cluster.leaderOf(DB);
    const target = cluster.nodes.find((node) => node !== leader)!;
    const via = cluster.nodes[(round + 2) % cluster.nodes.length]!;
    const moved = await cluster.http(via, 'POST', `/${DB}/_raft/transfer`, { to: target.name });
    assert.equal(moved.status, 200, moved.body);
    assert.deepEqual(moved.json, { ok: true, leader: target.name });
    assert.equal((await cluster.leaderOf(DB)).name, target.name);
  }
  writing = false;
  await writer;
  assert.ok(acknowledged.length > 0);

  const stranger = await cluster.http(cluster.nodes[0]!, 'POST', `/${DB}/_raft/transfer`, {
    to: 'n9',
  });
  assert.equal(stranger.status, 400, stranger.body);
  const noTarget = await cluster.http(cluster.nodes[0]!, 'POST', `/${DB}/_raft/transfer`, {
    too: 'n2',
  });
  assert.equal(noTarget.status, 400, noTarget.body);

  for (const id of acknowledged) {
    const read = await cluster.http(cluster.nodes[1]!, 'GET', `/${DB}/${id}`);
    assert.equal(read.status, 200, `${id}: ${read.body}`);
  }
  await waitForConvergence(cluster, DB);
  await assertIdenticalReplicas(cluster, DB);
});
