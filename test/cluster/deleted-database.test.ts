/**
 * A database deleted through one node returns 404 on every other node as soon as the delete is
 * acknowledged, because a linearizable read must not reach the group of a deleted database.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TestCluster } from '../support/cluster.js';

const ROUNDS = 10;

test('deleted database is gone everywhere', async (t) => {
  const cluster = await TestCluster.start(t);
  for (let round = 0; round < ROUNDS; round++) {
    const name = `gone-${round}`;
    const writer = cluster.nodes[round % cluster.nodes.length]!;
    const created = await cluster.httpRetry(writer, 'PUT', `/${name}`);
    assert.equal(created.status, 201, created.body);
    const written = await cluster.httpRetry(writer, 'PUT', `/${name}/doc`, { n: round });
    assert.equal(written.status, 201, written.body);
    const deleted = await cluster.http(writer, 'DELETE', `/${name}`);
    assert.equal(deleted.status, 200, deleted.body);
    const others = cluster.nodes.filter((node) => node !== writer);
    const reads = await Promise.all(
      others.flatMap((node) => [
        cluster.http(node, 'GET', `/${name}`),
        cluster.http(node, 'GET', `/${name}/doc`),
      ]),
    );
    for (const read of reads) {
      assert.equal(read.status, 404, `round ${round}: ${read.body}`);
      assert.equal((read.json as { error?: string }).error, 'not_found');
    }
  }
});
