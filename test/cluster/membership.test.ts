/**
 * Changing the members of a running cluster while clients write: grow from 3 to 5 nodes,
 * shrink back to 3 (removing nodes that lead groups), and replace a dead node. Every group ends
 * with the intended voters, no acknowledged write is lost, and all replicas agree.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  assertIdenticalReplicas,
  TestCluster as Cluster,
  type TestCluster,
  type TestNode,
  waitFor,
  waitForConvergence,
} from '../support/cluster.js';
import { scaled } from '../support/scale.js';

const DATABASES = scaled(10, 100);

test('members change while clients write', async (t) => {
  const cluster = await Cluster.start(t);
  const [n1, n2, n3] = cluster.nodes as [TestNode, TestNode, TestNode];
  const dbs = Array.from({ length: DATABASES }, (_, i) => `members-${i}`);
  for (const [i, db] of dbs.entries()) {
    const created = await cluster.httpRetry(cluster.nodes[i % 3]!, 'PUT', `/${db}`);
    assert.equal(created.status, 201, created.body);
  }

  const writer = startWriter(cluster, dbs);
  const n4 = await cluster.addNode('n4', n1);
  const n5 = await cluster.addNode('n5', n2);
  await waitForVoters(cluster, n3, dbs, ['n1', 'n2', 'n3', 'n4', 'n5']);
  const grown = await cluster.http(n4, 'GET', '/_membership');
  assert.deepEqual(grown.json, {
    all_nodes: ['n1', 'n2', 'n3', 'n4', 'n5'],
    cluster_nodes: ['n1', 'n2', 'n3', 'n4', 'n5'],
  });

  // n1 leads some groups and reconciles them; it dies right after its removal is recorded, so
  // the next leaders of its groups finish the change.
  writer.useNodes([n3, n4, n5]);
  const removeN1 = await cluster.http(n3, 'DELETE', '/_node/_local/_nodes/n1');
  assert.equal(removeN1.status, 200, removeN1.body);
  await cluster.kill(n1);
  await waitForVoters(cluster, n3, dbs, ['n2', 'n3', 'n4', 'n5']);
  const removeN2 = await cluster.http(n4, 'DELETE', '/_node/_local/_nodes/n2');
  assert.equal(removeN2.status, 200, removeN2.body);
  await waitForVoters(cluster, n3, dbs, ['n3', 'n4', 'n5']);
  await cluster.kill(n2);

  // Replace a dead node: n5 dies, n6 joins, n5 is removed.
  await cluster.kill(n5);
  writer.useNodes([n3, n4]);
  const n6 = await cluster.addNode('n6', n3);
  assert.equal((await cluster.http(n4, 'DELETE', '/_node/_local/_nodes/n5')).status, 200);
  writer.useNodes([n3, n4, n6]);
  await waitForVoters(cluster, n4, dbs, ['n3', 'n4', 'n6']);

  const acknowledged = await writer.stop();
  assert.ok(acknowledged.size > 0);
  const survivors = [n3, n4, n6];
  for (const db of dbs) {
    await waitForConvergence(cluster, db, survivors);
    await assertIdenticalReplicas(cluster, db, survivors);
  }
  for (const [key, rev] of acknowledged) {
    const [db, id] = key.split('/') as [string, string];
    const read = await cluster.http(n6, 'GET', `/${db}/${id}?stable=false`);
    assert.equal(read.status, 200, `${key}: ${read.body}`);
    assert.equal((read.json as { _rev: string })._rev, rev, key);
  }
});

/** Waits until `db`'s group, as `node` sees it, has exactly `voters` as voters, for every db. */
async function waitForVoters(
  cluster: TestCluster,
  node: TestNode,
  dbs: readonly string[],
  voters: readonly string[],
): Promise<void> {
  const wanted = [...voters].sort().join(',');
  for (const db of ['_dbs', ...dbs]) {
    await waitFor(
      `${db} to have voters ${wanted}`,
      async () => {
        const path = db === '_dbs' ? '/_node/_local/_raft' : `/${db}/_raft`;
        const status = (await cluster.http(node, 'GET', path)).json as { members?: string[] };
        return [...(status.members ?? [])].sort().join(',') === wanted;
      },
      120_000,
    );
  }
}

interface Writer {
  useNodes(nodes: TestNode[]): void;
  stop(): Promise<Map<string, string>>;
}

/** Writes new documents round-robin over databases and nodes; keeps what was acknowledged. */
function startWriter(cluster: TestCluster, dbs: readonly string[]): Writer {
  let nodes = [...cluster.nodes];
  let running = true;
  const acknowledged = new Map<string, string>();
  const loop = (async () => {
    for (let i = 0; running; i++) {
      const db = dbs[i % dbs.length]!;
      const node = nodes[i % nodes.length]!;
      try {
        const result = await cluster.http(node, 'PUT', `/${db}/w-${i}`, { i });
        if (result.status === 201)
          acknowledged.set(`${db}/w-${i}`, (result.json as { rev: string }).rev);
      } catch {
        // A node being killed resets connections; the write is simply not acknowledged.
      }
    }
  })();
  return {
    useNodes(next) {
      nodes = next;
    },
    async stop() {
      running = false;
      await loop;
      return acknowledged;
    },
  };
}
