/**
 * A cluster of one node: it is its own quorum, so writes and linearizable reads are served by
 * it alone, also after a restart.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { TestCluster, type TestNode } from '../support/cluster.js';

const PACKAGE = JSON.parse(readFileSync('package.json', 'utf8')) as { version: string };

test('one node serves linearizable reads', async (t) => {
  const cluster = await TestCluster.start(t, { nodes: 1 });
  const [node] = cluster.nodes as [TestNode];
  const welcome = await cluster.http(node, 'GET', '/');
  const vendor = (welcome.json as { vendor: { version: string } }).vendor;
  assert.equal(vendor.version, PACKAGE.version, 'GET / names the package version');
  assert.equal((await cluster.http(node, 'PUT', '/solo')).status, 201);
  const put = await cluster.http(node, 'PUT', '/solo/doc', { v: 1 });
  assert.equal(put.status, 201, put.body);

  const read = await cluster.http(node, 'GET', '/solo/doc');
  assert.equal(read.status, 200, read.body);
  assert.equal((read.json as { v: number }).v, 1);
  const all = await cluster.http(node, 'GET', '/solo/_all_docs');
  assert.equal(all.status, 200, all.body);
  assert.equal((all.json as { total_rows: number }).total_rows, 1);

  await cluster.kill(node);
  await cluster.startNode(node);
  const again = await cluster.httpRetry(node, 'GET', '/solo/doc');
  assert.equal(again.status, 200, again.body);
  assert.equal((again.json as { v: number }).v, 1);
});
