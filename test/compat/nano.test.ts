/**
 * nano, the official CouchDB client for Node.js, against a real three-node Divan cluster with
 * admin authentication, unchanged: one subtest per behaviour a nano user relies on.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import Nano from 'nano';
import { ADMIN, TestCluster } from '../support/cluster.js';

interface NanoError extends Error {
  statusCode: number;
  error: string;
  reason: string;
}

async function rejection(promise: Promise<unknown>): Promise<NanoError> {
  try {
    await promise;
  } catch (error) {
    return error as NanoError;
  }
  assert.fail('expected the call to fail');
}

test('nano works unchanged', async (t) => {
  const cluster = await TestCluster.start(t);
  const urls = cluster.nodes.map(
    (node) => `http://${ADMIN.name}:${ADMIN.password}@127.0.0.1:${node.httpPort}`,
  );
  const nano = Nano(urls[0]!);
  const other = Nano(urls[1]!);

  await t.test('server info and uuids', async () => {
    const info = await nano.info();
    assert.equal(info.couchdb, 'Welcome');
    assert.match(info.uuid, /^[0-9a-f]{32}$/);
    const uuids = await nano.uuids(3);
    assert.equal(uuids.uuids.length, 3);
  });

  await t.test('database create, list, get, destroy', async () => {
    await nano.db.create('nano-db');
    assert.ok((await other.db.list()).includes('nano-db'), 'listed on another node');
    const info = await other.db.get('nano-db');
    assert.equal(info.db_name, 'nano-db');
    assert.equal(info.doc_count, 0);
    const exists = await rejection(nano.db.create('nano-db'));
    assert.equal(exists.statusCode, 412);
    assert.equal(exists.error, 'file_exists');
    const illegal = await rejection(nano.db.create('Bad Name'));
    assert.equal(illegal.statusCode, 400);
    assert.equal(illegal.error, 'illegal_database_name');
    await nano.db.destroy('nano-db');
    const missing = await rejection(other.db.get('nano-db'));
    assert.equal(missing.statusCode, 404);
    assert.equal(missing.reason, 'Database does not exist.');
  });

  await t.test('documents: insert, get, head, destroy, conflicts', async () => {
    await nano.db.create('docs');
    const db = nano.use<{ name: string; n?: number }>('docs');
    const created = await db.insert({ name: 'first' }, 'alpha');
    assert.equal(created.ok, true);
    assert.match(created.rev, /^1-[0-9a-f]{32}$/);
    const generated = await db.insert({ name: 'no id' });
    assert.match(generated.id, /^[0-9a-f]{32}$/);

    const read = await other.use<{ name: string }>('docs').get('alpha');
    assert.equal(read.name, 'first');
    assert.equal(read._rev, created.rev);
    const headers = await db.head('alpha');
    assert.equal(headers.etag, `"${created.rev}"`);

    const conflict = await rejection(db.insert({ name: 'stale' }, 'alpha'));
    assert.equal(conflict.statusCode, 409);
    assert.equal(conflict.error, 'conflict');
    assert.equal(conflict.reason, 'Document update conflict.');

    const updated = await db.insert({ _id: 'alpha', _rev: created.rev, name: 'second' } as never);
    assert.match(updated.rev, /^2-/);
    const destroyed = await db.destroy('alpha', updated.rev);
    assert.equal(destroyed.ok, true);
    const deleted = await rejection(db.get('alpha'));
    assert.equal(deleted.statusCode, 404);
    assert.equal(deleted.reason, 'deleted');
    const never = await rejection(db.get('never'));
    assert.equal(never.reason, 'missing');

    const badId = await rejection(db.insert({ name: 'x' }, '_bad'));
    assert.equal(badId.statusCode, 400);
    assert.equal(badId.error, 'illegal_docid');
    const badField = await rejection(db.insert({ _foo: 1 } as never, 'with-field'));
    assert.equal(badField.error, 'doc_validation');
  });

  await t.test('bulk, list and fetch', async () => {
    await nano.db.create('bulk');
    const db = nano.use<{ n: number }>('bulk');
    const docs = Array.from({ length: 25 }, (_, n) => ({
      _id: `doc-${String(n).padStart(2, '0')}`,
      n,
    }));
    const results = await db.bulk({ docs });
    assert.equal(results.length, 25);
    assert.ok(results.every((row) => typeof row.rev === 'string' && row.error === undefined));

    const listed = await other.use('bulk').list({ include_docs: true, limit: 10, skip: 5 });
    assert.equal(listed.total_rows, 25);
    assert.equal(listed.offset, 5);
    assert.equal(listed.rows.length, 10);
    assert.equal(listed.rows[0]!.id, 'doc-05');
    assert.equal((listed.rows[0]!.doc as unknown as { n: number }).n, 5);

    const fetched = await db.fetch({ keys: ['doc-03', 'nope', 'doc-07'] });
    assert.equal(fetched.rows.length, 3);
    assert.equal((fetched.rows[0] as { doc: { n: number } }).doc.n, 3);
    assert.equal((fetched.rows[1] as { error?: string }).error, 'not_found');

    const again = await db.bulk({ docs: [{ _id: 'doc-00', n: 0 }] });
    assert.equal(again[0]!.error, 'conflict');
  });

  await t.test('changes and changesReader', async () => {
    await nano.db.create('feed');
    const db = nano.use<{ n: number }>('feed');
    for (let n = 0; n < 5; n++) await db.insert({ n }, `f-${n}`);
    const changes = await other.use('feed').changes({ since: 0, include_docs: true });
    assert.equal(changes.results.length, 5);
    assert.equal(changes.pending, 0);
    assert.equal(typeof changes.last_seq, 'string');

    const seen: string[] = [];
    await new Promise<void>((resolve, reject) => {
      const reader = other.use('feed').changesReader.spool({ since: '0' });
      reader.on('batch', (batch: { id: string }[]) => {
        for (const change of batch) seen.push(change.id);
      });
      reader.on('end', () => resolve());
      reader.on('error', reject);
    });
    assert.deepEqual(seen.sort(), ['f-0', 'f-1', 'f-2', 'f-3', 'f-4']);

    // changesReader.get stops after a longpoll that times out empty: the timeout must be kept.
    const batches: number[] = [];
    await new Promise<void>((resolve, reject) => {
      const reader = db.changesReader.get({ since: '0', timeout: 500 });
      reader.on('batch', (batch: unknown[]) => batches.push(batch.length));
      reader.on('end', () => resolve());
      reader.on('error', reject);
    });
    assert.deepEqual(batches, [5]);
  });

  await t.test('attachments: insert, get, destroy', async () => {
    await nano.db.create('atts');
    const db = nano.use('atts');
    const bytes = randomBytes(256 * 1024);
    const inserted = await db.attachment.insert('doc', 'blob.bin', bytes, 'application/x-test');
    assert.equal(inserted.ok, true);
    const read = await other.use('atts').attachment.get('doc', 'blob.bin');
    assert.ok(Buffer.from(read).equals(bytes), 'the bytes read from another node');
    const doc = await other.use<Record<string, unknown>>('atts').get('doc');
    const stub = (doc._attachments as Record<string, { content_type: string; length: number }>)[
      'blob.bin'
    ];
    assert.equal(stub?.content_type, 'application/x-test');
    assert.equal(stub?.length, bytes.length);
    const destroyed = await db.attachment.destroy('doc', 'blob.bin', { rev: inserted.rev });
    assert.equal(destroyed.ok, true);
    const missing = await rejection(db.attachment.get('doc', 'blob.bin'));
    assert.equal(missing.statusCode, 404);
    assert.equal(missing.error, 'not_found');
  });

  await t.test('errors nano builds from bad requests', async () => {
    const db = nano.use('no-such-db');
    const missing = await rejection(db.get('x'));
    assert.equal(missing.statusCode, 404);
    assert.equal(missing.error, 'not_found');
    assert.equal(missing.reason, 'Database does not exist.');
    const anonymous = Nano(`http://127.0.0.1:${cluster.nodes[2]!.httpPort}`);
    const unauthorized = await rejection(anonymous.db.list());
    assert.equal(unauthorized.statusCode, 401);
    assert.equal(unauthorized.error, 'unauthorized');
  });
});
