/**
 * Many databases on one cluster: each is its own Raft group and file. They are created, written
 * at once, and found again with a leader each after a full restart; idle groups go quiet, so
 * heartbeat traffic does not grow with the number of databases.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TestCluster, type TestNode, waitFor } from '../support/cluster.js';
import { scaled } from '../support/scale.js';

const DATABASES = scaled(200, 1000);
const WRITTEN = 100;
const CREATE_CONCURRENCY = 8;

test('many databases survive a restart and go quiet when idle', async (t) => {
  const cluster = await TestCluster.start(t);
  const names = Array.from({ length: DATABASES }, (_, i) => `db-${String(i).padStart(4, '0')}`);

  await runLimited(names, CREATE_CONCURRENCY, async (name, i) => {
    const node = cluster.nodes[i % cluster.nodes.length]!;
    const result = await cluster.httpRetry(node, 'PUT', `/${name}`);
    assert.equal(result.status, 201, `${name}: ${result.body}`);
  });
  const listed = await cluster.http(cluster.nodes[2]!, 'GET', '/_all_dbs');
  // The cluster creates `_users` itself.
  assert.deepEqual(listed.json, ['_users', ...names]);

  const written = names.slice(0, WRITTEN);
  await Promise.all(
    written.map(async (name, i) => {
      const node = cluster.nodes[i % cluster.nodes.length]!;
      const result = await cluster.httpRetry(node, 'PUT', `/${name}/doc`, { db: name });
      assert.equal(result.status, 201, `${name}: ${result.body}`);
    }),
  );

  await assertHeartbeatsQuiet(cluster);

  await cluster.killAll();
  await cluster.startAll();
  await runLimited(names, CREATE_CONCURRENCY, async (name) => {
    await cluster.leaderOf(name, 60_000);
  });
  await Promise.all(
    written.map(async (name, i) => {
      const node = cluster.nodes[(i + 1) % cluster.nodes.length]!;
      const result = await cluster.httpRetry(node, 'GET', `/${name}/doc`);
      assert.equal(result.status, 200, `${name}: ${result.body}`);
      assert.equal((result.json as { db: string }).db, name);
    }),
  );
});

/** Heartbeats sent by every node over a window, once the groups had time to go quiet. */
async function assertHeartbeatsQuiet(cluster: TestCluster): Promise<void> {
  const heartbeats = async () => {
    let total = 0;
    for (const node of cluster.nodes) total += await heartbeatCount(cluster, node);
    return total;
  };
  // Quiet groups send no heartbeats at all; wait until a whole second passes without any.
  await waitFor(
    'idle groups to go quiet',
    async () => {
      const before = await heartbeats();
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      return (await heartbeats()) - before === 0;
    },
    60_000,
  );
  const before = await heartbeats();
  await new Promise((resolve) => setTimeout(resolve, 3_000));
  const sent = (await heartbeats()) - before;
  assert.ok(sent < 10, `${sent} heartbeats in 3 s with ${DATABASES} idle databases`);
}

async function heartbeatCount(cluster: TestCluster, node: TestNode): Promise<number> {
  const result = await cluster.http(node, 'GET', '/_node/_local/_system');
  const sent = (result.json as { divan: { raft_messages_sent: Record<string, number> } }).divan
    .raft_messages_sent;
  return sent.heartbeat ?? 0;
}

async function runLimited<T>(
  items: readonly T[],
  limit: number,
  run: (item: T, index: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const index = next++;
      await run(items[index]!, index);
    }
  };
  await Promise.all(Array.from({ length: limit }, worker));
}
