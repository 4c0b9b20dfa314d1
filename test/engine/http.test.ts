/**
 * The HTTP layer over the engine: the real server on 127.0.0.1 with engine-backed databases
 * (`EngineBackend`), so the engine's snapshots, records, sequences and write results meet the
 * routes that CouchDB clients use. PouchDB 9's replicator pushes documents with a conflict and
 * a deletion, a second replication finds nothing to do thanks to its `_local/` checkpoint, and
 * a longpoll `_changes` feed wakes up on a write.
 */
import assert from 'node:assert/strict';
import { type TestContext, test } from 'node:test';
import PouchDB from 'pouchdb-node';
import { ADMIN, startEngineServer } from './http-server.js';

const DOC_COUNT = 60;

async function startServer(t: TestContext) {
  const server = await startEngineServer(t);
  const request = async (method: string, path: string, body?: unknown) => {
    const reply = await server.send(method, path, body);
    // biome-ignore lint/suspicious/noExplicitAny: reply shapes vary per route and are asserted field by field
    return { status: reply.status, body: reply.json() as Record<string, any> };
  };
  return { backend: server.backend, base: server.base, request };
}

test('pouchdb replicates through engine databases', async (t) => {
  const { backend, base, request } = await startServer(t);
  assert.equal((await request('PUT', '/source')).status, 201);
  const docs = Array.from({ length: DOC_COUNT }, (_, i) => ({
    _id: `doc-${i}`,
    n: i,
  }));
  const written = await request('POST', '/source/_bulk_docs', { docs });
  assert.equal(written.status, 201);
  await request('POST', '/source/_bulk_docs', {
    docs: [
      { _id: 'doc-0', _revisions: { start: 2, ids: ['f'.repeat(32), 'e'.repeat(32)] }, n: -1 },
    ],
    new_edits: false,
  });
  const rev1 = (written.body as unknown as Array<{ rev: string }>)[1]!.rev;
  assert.equal((await request('DELETE', `/source/doc-1?rev=${rev1}`)).status, 200);
  assert.equal((await request('PUT', '/target')).status, 201);

  const auth = { username: ADMIN.name, password: ADMIN.password };
  const source = new PouchDB(`${base}/source`, { auth, skip_setup: true });
  const target = new PouchDB(`${base}/target`, { auth, skip_setup: true });
  const first = await PouchDB.replicate(source, target);
  assert.equal(first.ok, true);
  assert.equal(first.docs_written, DOC_COUNT + 1);

  const sourceDoc = await request('GET', '/source/doc-0?conflicts=true');
  const targetDoc = await request('GET', '/target/doc-0?conflicts=true');
  assert.deepEqual(targetDoc.body, sourceDoc.body);
  assert.equal(targetDoc.body._conflicts.length, 1);
  assert.equal((await request('GET', '/target/doc-1')).body.reason, 'deleted');
  const info = await request('GET', '/target');
  assert.equal(info.body.doc_count, DOC_COUNT - 1);
  assert.equal(info.body.doc_del_count, 1);
  assert.match(info.body.update_seq, /^\d+-[0-9a-f]{16}$/);

  const second = await PouchDB.replicate(source, target);
  assert.equal(second.docs_written, 0);
  assert.equal(second.docs_read, 0, 'the checkpoint skips what was replicated');
  await source.close();
  await target.close();
  assert.equal(backend.openSnapshots, 0, 'every snapshot is closed');
});

test('longpoll changes wake on a write', async (t) => {
  const { request } = await startServer(t);
  await request('PUT', '/feed');
  const now = await request('GET', '/feed/_changes');
  const waiting = request(
    'GET',
    `/feed/_changes?feed=longpoll&since=${now.body.last_seq}&timeout=60000`,
  );
  // Give the feed time to start waiting; a write that comes first gives the same reply.
  await new Promise((resolve) => setTimeout(resolve, 50));
  await request('PUT', '/feed/woken', { n: 1 });
  const woken = await waiting;
  assert.deepEqual(
    woken.body.results.map((row: { id: string }) => row.id),
    ['woken'],
  );
  assert.equal(woken.body.pending, 0);
});

test('bodies keep their bytes through HTTP', async (t) => {
  const { base, request } = await startServer(t);
  await request('PUT', '/exact');
  const raw = '{"z":1,"big":12345678901234567890123,"f":1.50,"a":{"y":[],"x":{}}}';
  const authorization = `Basic ${Buffer.from(`${ADMIN.name}:${ADMIN.password}`).toString('base64')}`;
  const headers = { authorization, 'content-type': 'application/json' };
  const put = await fetch(`${base}/exact/doc`, { method: 'PUT', headers, body: raw });
  assert.equal(put.status, 201);
  const { rev } = (await put.json()) as { rev: string };
  const got = await fetch(`${base}/exact/doc`, { headers });
  // The HTTP layer ends a document reply with a newline, as CouchDB does.
  assert.equal(await got.text(), `{"_id":"doc","_rev":"${rev}",${raw.slice(1)}\n`);
});
