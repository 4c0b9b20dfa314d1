/**
 * `POST /{db}/_compact` through the real HTTP server over engine databases, with the test-only
 * slow-down variable set. The reply is 202 at once. While writes keep landing, `GET /{db}`
 * shows `compact_running` and `_active_tasks` the compaction's progress. Once it is done, the
 * file is smaller and every document, old and new, is there.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { COMPACTION_DELAY_ENV } from '../../src/engine/compaction.js';
import { startEngineServer } from './http-server.js';

const DOCS = 200;
/** Documents per `_bulk_docs` request: many small commits leave much garbage behind. */
const BATCH = 10;
const UPDATES = 3;
const DELETED = 50;
const WRITES_DURING = 10;
const DELAY_MS_PER_DOCUMENT = 3;
const POLL_MS = 20;
/** Polls before the test gives up waiting for the compaction (about 30 s). */
const MAX_POLLS = 1_500;

test('compaction runs in the background while writes land', async (t) => {
  const server = await startEngineServer(t);
  const { send } = server;
  await send('PUT', '/db');
  let docs: Array<{ _id: string; _rev?: string; n: number }> = Array.from(
    { length: DOCS },
    (_, i) => ({ _id: `doc-${i}`, n: 0 }),
  );
  for (let round = 0; round <= UPDATES; round++) {
    const next: typeof docs = [];
    for (let at = 0; at < DOCS; at += BATCH) {
      const batch = docs.slice(at, at + BATCH);
      const reply = await send('POST', '/db/_bulk_docs', { docs: batch });
      assert.equal(reply.status, 201);
      const results = reply.json() as Array<{ rev: string }>;
      next.push(...batch.map((doc, i) => ({ ...doc, _rev: results[i]!.rev, n: round + 1 })));
    }
    docs = next;
  }
  const deletions = docs.slice(0, DELETED).map((doc) => ({ ...doc, _deleted: true }));
  assert.equal((await send('POST', '/db/_bulk_docs', { docs: deletions })).status, 201);
  const before = (await send('GET', '/db')).json();
  assert.equal(before.compact_running, false);

  process.env[COMPACTION_DELAY_ENV] = String(DELAY_MS_PER_DOCUMENT);
  t.after(() => {
    delete process.env[COMPACTION_DELAY_ENV];
  });
  const wrongType = await send('POST', '/db/_compact', '{}', { 'content-type': 'text/plain' });
  assert.equal(wrongType.status, 415);
  const started = await send('POST', '/db/_compact', {});
  assert.equal(started.status, 202);
  assert.deepEqual(started.json(), { ok: true });
  assert.equal((await send('GET', '/db')).json().compact_running, true);

  const tasks = (await send('GET', '/_active_tasks')).json();
  assert.equal(tasks.length, 1);
  const task = tasks[0];
  assert.equal(task.type, 'database_compaction');
  assert.equal(task.database, 'db');
  assert.ok(task.changes_done <= task.total_changes || task.total_changes === 0);
  assert.ok(task.started_on <= task.updated_on);

  for (let i = 0; i < WRITES_DURING; i++) {
    const put = await send('PUT', `/db/new-${i}`, { during: true });
    assert.equal(put.status, 201, 'writes land during the compaction');
  }
  assert.equal((await send('GET', '/db')).json().compact_running, true, 'still slowed down');

  let polls = 0;
  while ((await send('GET', '/db')).json().compact_running) {
    assert.ok(++polls < MAX_POLLS, 'the compaction finishes');
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
  const after = (await send('GET', '/db')).json();
  assert.ok(after.sizes.file < before.sizes.file, `${before.sizes.file} -> ${after.sizes.file}`);
  assert.equal(after.doc_count, DOCS - DELETED + WRITES_DURING);
  assert.equal(after.doc_del_count, DELETED);
  assert.deepEqual((await send('GET', '/_active_tasks')).json(), []);
  const last = docs.at(-1)!;
  const read = (await send('GET', `/db/${last._id}`)).json();
  assert.equal(read._rev, last._rev);
  assert.equal(read.n, UPDATES);
  assert.equal((await send('GET', `/db/new-${WRITES_DURING - 1}`)).json().during, true);
  const changes = (await send('GET', '/db/_changes')).json();
  assert.equal(changes.results.length, DOCS + WRITES_DURING);
});
