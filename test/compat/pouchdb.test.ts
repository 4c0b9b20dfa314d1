/**
 * PouchDB replication against a real three-node Divan cluster, both directions and live:
 * documents, deletions, conflicts, checkpoints (also when replication moves to another node),
 * long revision histories, and a live sync that keeps going while the leader is killed.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { test } from 'node:test';
import { ADMIN, TestCluster, type TestNode, waitFor } from '../support/cluster.js';
import { tempDir } from '../support/tmp.js';

interface Doc {
  _id: string;
  _rev?: string;
  _deleted?: boolean;
  _conflicts?: string[];
  [field: string]: unknown;
}

interface ReplicationResult {
  ok: boolean;
  docs_read: number;
  docs_written: number;
}

interface Replication extends PromiseLike<ReplicationResult> {
  on(event: string, listener: (value: unknown) => void): Replication;
  cancel(): void;
}

interface PouchDatabase {
  put(doc: Doc, options?: { new_edits?: boolean }): Promise<{ id: string; rev: string }>;
  get(id: string, options?: Record<string, unknown>): Promise<Doc>;
  remove(doc: Doc): Promise<{ rev: string }>;
  bulkDocs(docs: Doc[], options?: { new_edits?: boolean }): Promise<unknown[]>;
  allDocs(
    options?: Record<string, unknown>,
  ): Promise<{ rows: { id: string; value: { rev: string } }[] }>;
  replicate: {
    to(target: PouchDatabase | string, options?: Record<string, unknown>): Replication;
    from(source: PouchDatabase | string, options?: Record<string, unknown>): Replication;
  };
  sync(other: PouchDatabase, options?: Record<string, unknown>): Replication;
  close(): Promise<void>;
}

type PouchConstructor = new (name: string, options?: Record<string, unknown>) => PouchDatabase;
const PouchDB = createRequire(import.meta.url)('pouchdb-node') as PouchConstructor;

/** Several MB, so the replicator's multipart and chunked paths are used. */
const ATTACHMENT_BYTES = 3 * 1024 * 1024;

function basicAuth(): string {
  return `Basic ${Buffer.from(`${ADMIN.name}:${ADMIN.password}`).toString('base64')}`;
}

function remote(node: TestNode, db: string): PouchDatabase {
  return new PouchDB(`${node.url}/${db}`, {
    auth: { username: ADMIN.name, password: ADMIN.password },
  });
}

test('PouchDB replicates with Divan', async (t) => {
  const cluster = await TestCluster.start(t);
  const [n1, n2, n3] = cluster.nodes as [TestNode, TestNode, TestNode];
  const dir = await tempDir(t, 'divan-pouch-');
  let counter = 0;
  const local = () => new PouchDB(join(dir, `local-${counter++}`));

  await t.test('push and pull documents and deletions', async () => {
    const source = local();
    await source.bulkDocs(Array.from({ length: 120 }, (_, i) => ({ _id: `p-${i}`, i })));
    const gone = await source.put({ _id: 'gone', temporary: true });
    await source.remove({ _id: 'gone', _rev: gone.rev });
    const target = remote(n1, 'push');
    const pushed = await source.replicate.to(target);
    assert.equal(pushed.ok, true);
    assert.equal(pushed.docs_written, 121);

    const read = await cluster.http(n2, 'GET', '/push/p-7');
    assert.equal((read.json as { i: number }).i, 7);
    assert.equal((await cluster.http(n3, 'GET', '/push/gone')).status, 404);

    const again = await source.replicate.to(target);
    assert.equal(again.docs_read, 0, 'the checkpoint was kept');
    const moved = await source.replicate.to(remote(n3, 'push'));
    assert.equal(moved.docs_read, 0, 'the checkpoint is valid on another node');

    const copy = local();
    const pulled = await copy.replicate.from(remote(n2, 'push'));
    assert.equal(pulled.docs_written, 121);
    assert.equal((await copy.get('p-119')).i, 119);
    await assert.rejects(copy.get('gone'), { status: 404 });
  });

  await t.test('conflicts reach both sides with the same winner', async () => {
    const left = local();
    const server = remote(n1, 'conflicts');
    await left.put({ _id: 'shared', side: 'base' });
    await left.replicate.to(server);
    const right = local();
    await right.replicate.from(server);

    const leftDoc = await left.get('shared');
    await left.put({ ...leftDoc, side: 'left' });
    const rightDoc = await right.get('shared');
    await right.put({ ...rightDoc, side: 'right', extra: 1 });
    await left.replicate.to(server);
    await right.replicate.to(server);
    await left.replicate.from(remote(n2, 'conflicts'));

    const onServer = (await cluster.http(n3, 'GET', '/conflicts/shared?conflicts=true'))
      .json as Doc;
    const onLeft = await left.get('shared', { conflicts: true });
    assert.equal(onServer._conflicts?.length, 1);
    assert.equal(onLeft._rev, onServer._rev, 'the same winner on both sides');
    assert.deepEqual(onLeft._conflicts, onServer._conflicts);
  });

  await t.test('binary attachments replicate both ways', async () => {
    const source = local();
    const pushed = randomBytes(ATTACHMENT_BYTES);
    await source.put({
      _id: 'with-file',
      _attachments: {
        'data.bin': { content_type: 'application/octet-stream', data: pushed },
      },
    });
    await source.replicate.to(remote(n1, 'files'));
    const served = await fetch(`${n2.url}/files/with-file/data.bin`, {
      headers: { authorization: basicAuth() },
    });
    assert.equal(served.status, 200);
    assert.ok(Buffer.from(await served.arrayBuffer()).equals(pushed), 'bytes on the server');

    const added = randomBytes(ATTACHMENT_BYTES);
    const doc = (await cluster.http(n3, 'GET', '/files/with-file')).json as Doc;
    const put = await cluster.http(n3, 'PUT', `/files/with-file/more.bin?rev=${doc._rev}`, added, {
      headers: { 'content-type': 'application/octet-stream' },
    });
    assert.equal(put.status, 201, put.body);
    const copy = local();
    await copy.replicate.from(remote(n1, 'files'));
    const pulled = await copy.get('with-file', { attachments: true, binary: true });
    const attachments = pulled._attachments as Record<string, { data: Buffer }>;
    assert.ok(attachments['data.bin']?.data.equals(pushed), 'first attachment pulled');
    assert.ok(attachments['more.bin']?.data.equals(added), 'second attachment pulled');
  });

  await t.test('a long history is stemmed at revs_limit', async () => {
    const source = local();
    let rev = (await source.put({ _id: 'long', n: 0 })).rev;
    for (let n = 1; n < 1_500; n++) rev = (await source.put({ _id: 'long', _rev: rev, n })).rev;
    await source.replicate.to(remote(n1, 'history'));
    const read = await cluster.http(n2, 'GET', '/history/long?revs=true');
    const doc = read.json as {
      _rev: string;
      n: number;
      _revisions: { start: number; ids: string[] };
    };
    assert.equal(doc._rev, rev);
    assert.equal(doc.n, 1_499);
    assert.equal(doc._revisions.start, 1_500);
    assert.equal(doc._revisions.ids.length, 1_000);
  });

  await t.test('live sync continues while the leader is killed', async () => {
    assert.equal((await cluster.httpRetry(n1, 'PUT', '/live')).status, 201);
    const leader = await cluster.leaderOf('live');
    const follower = cluster.nodes.find((node) => node !== leader)!;
    const mobile = local();
    const sync = mobile.sync(remote(follower, 'live'), { live: true, retry: true });
    t.after(() => sync.cancel());

    await mobile.put({ _id: 'before', at: 'start' });
    await waitFor('the first document on the server', async () => {
      return (await cluster.http(follower, 'GET', '/live/before')).status === 200;
    });
    await cluster.kill(leader);
    await mobile.put({ _id: 'during', at: 'failover' });
    const serverWrite = await cluster.httpRetry(follower, 'PUT', '/live/from-server', {
      at: 'server',
    });
    assert.equal(serverWrite.status, 201, serverWrite.body);
    await waitFor(
      'both documents on both sides',
      async () => {
        const server = await cluster.http(follower, 'GET', '/live/during');
        const pulled = await mobile.get('from-server').catch(() => null);
        return server.status === 200 && pulled !== null;
      },
      60_000,
    );
    await cluster.startNode(leader);
  });
});
