/**
 * PouchDB 9's replicator against the HTTP layer over a real socket: push documents with
 * conflicts and deletions from one database to another, check the target's winners,
 * conflicts and tombstones, and replicate again to see that the checkpoint (a `_local/`
 * document) makes the second run a no-op.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import PouchDB from 'pouchdb-node';
import { ADMIN_NAME, ADMIN_PASSWORD, listen, seed, startServer } from './harness.js';

const DOC_COUNT = 120;

test('pouchdb replicates between databases', async (t) => {
  const server = await startServer(t);
  const base = await listen(server);
  const docs = Array.from({ length: DOC_COUNT }, (_, i) => ({ _id: `doc-${i}`, n: i }));
  const written = await seed(server, 'source', docs);
  // A conflict on doc-0 and a deletion of doc-1.
  await server.json('POST', '/source/_bulk_docs', 201, {
    body: {
      docs: [
        { _id: 'doc-0', _revisions: { start: 2, ids: ['f'.repeat(32), 'e'.repeat(32)] }, n: -1 },
      ],
      new_edits: false,
    },
  });
  await server.json('DELETE', `/source/doc-1?rev=${written[1].rev}`, 200);
  await server.json('PUT', '/target', 201);

  const auth = { username: ADMIN_NAME, password: ADMIN_PASSWORD };
  const source = new PouchDB(`${base}/source`, { auth, skip_setup: true });
  const target = new PouchDB(`${base}/target`, { auth, skip_setup: true });
  const first = await PouchDB.replicate(source, target);
  assert.equal(first.ok, true);
  assert.equal(first.docs_written, DOC_COUNT + 1);

  const sourceDoc = await server.json('GET', '/source/doc-0?conflicts=true', 200);
  const targetDoc = await server.json('GET', '/target/doc-0?conflicts=true', 200);
  assert.deepEqual(targetDoc, sourceDoc);
  assert.equal(targetDoc._conflicts.length, 1);
  const deleted = await server.request('GET', '/target/doc-1');
  assert.equal(JSON.parse(deleted.body).reason, 'deleted');
  const info = await server.json('GET', '/target', 200);
  assert.equal(info.doc_count, DOC_COUNT - 1);
  assert.equal(info.doc_del_count, 1);

  const second = await PouchDB.replicate(source, target);
  assert.equal(second.docs_written, 0);
  assert.equal(second.docs_read, 0, 'the checkpoint skips what was replicated');
  await source.close();
  await target.close();
  assert.equal(server.backend.openSnapshots, 0);
});
