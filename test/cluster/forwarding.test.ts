/**
 * A write sent to a follower is forwarded to the leader. When the connection breaks after the
 * request left but before the reply came back, the follower retries with the same request id,
 * and the leader answers the retry with the first outcome instead of applying it again.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TestCluster, waitFor } from '../support/cluster.js';
import { TcpProxy } from '../support/tcp-proxy.js';

const DB = 'forwarded';

test('forwarded write retried after a broken connection applies once', async (t) => {
  const cluster = await TestCluster.create(t);
  const [n1, n2, n3] = cluster.nodes as [
    (typeof cluster.nodes)[0],
    (typeof cluster.nodes)[0],
    (typeof cluster.nodes)[0],
  ];
  // n1 dials every other node (its name sorts first), so a proxy on its route to n2 carries
  // every byte between n1 and n2.
  const proxy = await TcpProxy.start(n2.peerPort);
  t.after(() => proxy.close());
  cluster.routePeer('n1', 'n2', proxy.port);
  await cluster.startAll();

  // The node that creates a database is its first candidate, so n2 leads it.
  const created = await cluster.httpRetry(n2, 'PUT', `/${DB}`);
  assert.equal(created.status, 201, created.body);
  const leader = await cluster.leaderOf(DB);
  assert.equal(leader.name, 'n2', 'the creating node leads');

  proxy.swallowReplies(1_000);
  const write = await cluster.http(n1, 'PUT', `/${DB}/once`, { value: 1 });
  assert.equal(write.status, 201, write.body);
  assert.ok(proxy.swallowedBytes > 0, 'the first reply was lost');
  const system = await cluster.http(n1, 'GET', '/_node/_local/_system');
  const retries = (system.json as { divan: { forward_retries: number } }).divan.forward_retries;
  assert.ok(retries >= 1, `n1 sent the write again (${retries} retries)`);

  const doc = await cluster.http(n3, 'GET', `/${DB}/once?revs_info=true`);
  assert.equal(doc.status, 200, doc.body);
  const body = doc.json as { _rev: string; _revs_info: unknown[] };
  assert.equal(body._rev, (write.json as { rev: string }).rev);
  assert.equal(body._revs_info.length, 1, 'one revision: the write applied once');

  await waitFor('n1 to see the write', async () => {
    const changes = await cluster.http(n1, 'GET', `/${DB}/_changes`);
    return (changes.json as { results: unknown[] }).results.length === 1;
  });
});
