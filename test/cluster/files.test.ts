/**
 * Attachments, purge and compaction on a real three-node cluster: the file-level features as a
 * client sees them through any node.
 *
 * - An attachment written through one node is stored by every replica: the bytes and the digest
 *   read back from each node without a barrier are the ones sent.
 * - A purge proposed through a follower removes the document on every replica, and the purge
 *   sequence agrees.
 * - `POST /{db}/_compact` compacts every node's own file. While the compactions run (slowed by
 *   the test-only delay), `_active_tasks` on one node lists those of several nodes and writes
 *   keep landing. Afterwards every file is smaller, the replicas are identical, and a restart
 *   finds the same state.
 * - A node killed with SIGKILL in the middle of its compaction restarts with its file whole
 *   and catches up.
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { test } from 'node:test';
import {
  assertIdenticalReplicas,
  TestCluster,
  type TestNode,
  waitFor,
  waitForConvergence,
} from '../support/cluster.js';

const DB = 'files';
/** Slows each compaction down enough for a test to watch it and write meanwhile. */
const COMPACTION_DELAY_MS = '2';
const UPDATED_DOCS = 200;
const UPDATES_PER_DOC = 5;
const ATTACHMENT_BYTES = 3 * 1024 * 1024;

function md5Digest(bytes: Buffer): string {
  return `md5-${createHash('md5').update(bytes).digest('base64')}`;
}

async function databaseFileSize(cluster: TestCluster, node: TestNode): Promise<number> {
  const info = await cluster.http(node, 'GET', `/${DB}?stable=false`);
  assert.equal(info.status, 200, info.body);
  return (info.json as { sizes: { file: number } }).sizes.file;
}

async function compactRunning(cluster: TestCluster, node: TestNode): Promise<boolean> {
  const info = await cluster.http(node, 'GET', `/${DB}?stable=false`);
  return (info.json as { compact_running: boolean }).compact_running;
}

/**
 * Writes `UPDATES_PER_DOC` revisions of `UPDATED_DOCS` documents, deleting every fourth, with
 * every node applying each round before the next.
 */
async function churn(cluster: TestCluster, via: TestNode, prefix: string): Promise<void> {
  const revs = new Map<string, string>();
  for (let round = 0; round < UPDATES_PER_DOC; round++) {
    const docs = [];
    for (let i = 0; i < UPDATED_DOCS; i++) {
      const id = `${prefix}-${i}`;
      const rev = revs.get(id);
      docs.push({ _id: id, ...(rev ? { _rev: rev } : {}), round, pad: 'x'.repeat(200) });
    }
    const result = await cluster.httpRetry(via, 'POST', `/${DB}/_bulk_docs`, { docs });
    assert.equal(result.status, 201, result.body);
    for (const row of result.json as { id: string; rev: string }[]) revs.set(row.id, row.rev);
    // A linearizable read on every node makes each apply this round now, in a commit of its
    // own: a follower would otherwise apply several rounds at its next tick, in one commit,
    // and leave too little garbage for a compaction to shrink its file.
    for (const node of cluster.nodes) {
      assert.equal((await cluster.http(node, 'GET', `/${DB}`)).status, 200);
    }
  }
  const deletes = [...revs]
    .filter((_, i) => i % 4 === 0)
    .map(([id, rev]) => ({ _id: id, _rev: rev, _deleted: true }));
  const result = await cluster.httpRetry(via, 'POST', `/${DB}/_bulk_docs`, { docs: deletes });
  assert.equal(result.status, 201, result.body);
}

test('an attachment is stored by every replica', async (t) => {
  const cluster = await TestCluster.start(t);
  const [a, b] = cluster.nodes as [TestNode, TestNode, TestNode];
  assert.equal((await cluster.httpRetry(a, 'PUT', `/${DB}`)).status, 201);

  const bytes = randomBytes(ATTACHMENT_BYTES);
  const name = 'photos/été 2026.bin';
  const path = `/${DB}/album/${name.split('/').map(encodeURIComponent).join('/')}`;
  const put = await cluster.http(b, 'PUT', path, bytes, {
    headers: { 'content-type': 'application/octet-stream' },
  });
  assert.equal(put.status, 201, put.body);
  const rev = (put.json as { rev: string }).rev;

  // A second revision carries the attachment as a stub.
  const doc = await cluster.httpRetry(a, 'GET', `/${DB}/album`);
  const body = doc.json as Record<string, unknown>;
  const update = await cluster.http(a, 'PUT', `/${DB}/album`, { ...body, title: 'summer' });
  assert.equal(update.status, 201, update.body);
  await waitForConvergence(cluster, DB);

  for (const node of cluster.nodes) {
    const stub = await cluster.http(node, 'GET', `/${DB}/album?stable=false`);
    const attachments = (stub.json as { _attachments: Record<string, Record<string, unknown>> })
      ._attachments;
    assert.equal(attachments[name]?.digest, md5Digest(bytes), `digest on ${node.name}`);
    assert.equal(attachments[name]?.length, ATTACHMENT_BYTES);
    assert.equal(attachments[name]?.revpos, Number(rev.split('-')[0]));
    const read = await fetch(`${node.url}${path}?stable=false`, {
      headers: { authorization: `Basic ${Buffer.from('admin:test-password').toString('base64')}` },
    });
    assert.equal(read.status, 200);
    assert.ok(Buffer.from(await read.arrayBuffer()).equals(bytes), `bytes on ${node.name}`);
  }
  await assertIdenticalReplicas(cluster, DB);
});

test('a purge through a follower reaches every replica', async (t) => {
  const cluster = await TestCluster.start(t);
  const [a] = cluster.nodes as [TestNode, TestNode, TestNode];
  assert.equal((await cluster.httpRetry(a, 'PUT', `/${DB}`)).status, 201);
  const created = await cluster.httpRetry(a, 'PUT', `/${DB}/secret`, { value: 1 });
  assert.equal(created.status, 201, created.body);
  const rev = (created.json as { rev: string }).rev;
  const leader = await cluster.leaderOf(DB);
  const follower = cluster.nodes.find((node) => node !== leader)!;

  const purged = await cluster.http(follower, 'POST', `/${DB}/_purge`, { secret: [rev] });
  assert.equal(purged.status, 201, purged.body);
  assert.deepEqual((purged.json as { purged: unknown }).purged, { secret: [rev] });
  await waitForConvergence(cluster, DB);

  for (const node of cluster.nodes) {
    const read = await cluster.http(node, 'GET', `/${DB}/secret?stable=false`);
    assert.equal(read.status, 404, `${node.name}: ${read.body}`);
    const info = await cluster.http(node, 'GET', `/${DB}?stable=false`);
    assert.equal((info.json as { purge_seq: string }).purge_seq.split('-')[0], '1');
  }
  // The purged id starts again from scratch.
  const again = await cluster.http(follower, 'PUT', `/${DB}/secret`, { value: 2 });
  assert.equal(again.status, 201, again.body);
  assert.match((again.json as { rev: string }).rev, /^1-/);
  await waitForConvergence(cluster, DB);
  await assertIdenticalReplicas(cluster, DB);
});

test('compaction runs on every node while writes land', async (t) => {
  const cluster = await TestCluster.start(t, {
    env: { DIVAN_TEST_COMPACTION_DELAY_MS: COMPACTION_DELAY_MS },
  });
  const [a, b, c] = cluster.nodes as [TestNode, TestNode, TestNode];
  assert.equal((await cluster.httpRetry(a, 'PUT', `/${DB}`)).status, 201);
  await churn(cluster, a, 'doc');
  const local = await cluster.http(b, 'PUT', `/${DB}/_local/checkpoint`, { seq: 42 });
  assert.equal(local.status, 201, local.body);
  await waitForConvergence(cluster, DB);
  const before = await Promise.all(cluster.nodes.map((node) => databaseFileSize(cluster, node)));
  const termBefore = (await cluster.raft(a, DB)).term;

  const started = await cluster.http(c, 'POST', `/${DB}/_compact`, undefined, {
    headers: { 'content-type': 'application/json' },
  });
  assert.equal(started.status, 202, started.body);
  assert.deepEqual(started.json, { ok: true });

  // Several nodes' compactions are visible from one node while they run.
  let seenNodes = new Set<string>();
  await waitFor('compactions of several nodes in _active_tasks', async () => {
    const tasks = await cluster.http(a, 'GET', '/_active_tasks');
    assert.equal(tasks.status, 200, tasks.body);
    const running = (tasks.json as { type: string; node: string; database: string }[]).filter(
      (task) => task.type === 'database_compaction' && task.database === DB,
    );
    seenNodes = new Set([...seenNodes, ...running.map((task) => task.node)]);
    return seenNodes.size >= 2;
  });
  const runningNow = await Promise.all(cluster.nodes.map((node) => compactRunning(cluster, node)));
  assert.ok(runningNow.includes(true), 'compact_running on some node');

  // Writes keep landing during the compaction.
  const during = await cluster.httpRetry(b, 'PUT', `/${DB}/written-during`, { ok: true });
  assert.equal(during.status, 201, during.body);

  await waitFor(
    'every compaction to finish',
    async () => {
      const running = await Promise.all(cluster.nodes.map((node) => compactRunning(cluster, node)));
      return running.every((value) => !value);
    },
    120_000,
  );
  await waitForConvergence(cluster, DB);
  const after = await Promise.all(cluster.nodes.map((node) => databaseFileSize(cluster, node)));
  for (const [i, size] of after.entries()) {
    assert.ok(size < before[i]!, `${cluster.nodes[i]!.name}: ${size} < ${before[i]}`);
  }
  await assertIdenticalReplicas(cluster, DB);
  for (const node of cluster.nodes) {
    const checkpoint = await cluster.http(node, 'GET', `/${DB}/_local/checkpoint?stable=false`);
    assert.equal(checkpoint.status, 200, `${node.name}: ${checkpoint.body}`);
    const doc = await cluster.http(node, 'GET', `/${DB}/written-during?stable=false`);
    assert.equal(doc.status, 200, `${node.name}: ${doc.body}`);
  }
  assert.ok((await cluster.raft(a, DB)).term >= termBefore);

  // A full restart finds the compacted files and the same state.
  await cluster.killAll();
  await cluster.startAll();
  await cluster.leaderOf(DB);
  const write = await cluster.httpRetry(a, 'PUT', `/${DB}/after-restart`, { ok: true });
  assert.equal(write.status, 201, write.body);
  await waitForConvergence(cluster, DB);
  await assertIdenticalReplicas(cluster, DB);
});

test('a node killed during its compaction restarts whole', async (t) => {
  const cluster = await TestCluster.start(t, {
    env: { DIVAN_TEST_COMPACTION_DELAY_MS: COMPACTION_DELAY_MS },
  });
  const [a, b] = cluster.nodes as [TestNode, TestNode, TestNode];
  assert.equal((await cluster.httpRetry(a, 'PUT', `/${DB}`)).status, 201);
  await churn(cluster, a, 'doc');
  await waitForConvergence(cluster, DB);

  const started = await cluster.http(a, 'POST', `/${DB}/_compact`, undefined, {
    headers: { 'content-type': 'application/json' },
  });
  assert.equal(started.status, 202, started.body);
  await waitFor('b to be compacting', () => compactRunning(cluster, b));
  await cluster.kill(b);
  const during = await cluster.httpRetry(a, 'PUT', `/${DB}/while-b-down`, { ok: true });
  assert.equal(during.status, 201, during.body);
  await cluster.startNode(b);
  await waitForConvergence(cluster, DB);
  await assertIdenticalReplicas(cluster, DB);
  const read = await cluster.http(b, 'GET', `/${DB}/while-b-down?stable=false`);
  assert.equal(read.status, 200, read.body);
});
