/**
 * Documents through `LocalDatabase`, CouchDB 3.x semantics: every write and read operation and
 * its options, and every rejection, which raises a `CouchError` with CouchDB's error name and
 * reason. A request rejected by validation leaves the file byte for byte as it was. A conflict
 * (or a missing `_local/` document) is the outcome of an applied command, as it is in the Raft
 * log. So only the applied index, hash chain and request-id table advance, and every
 * document, sequence and counter stays as it was.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { type TestContext, test } from 'node:test';
import { LocalDatabase } from '../../src/engine/local-database.js';
import { CouchError } from '../../src/util/couch-error.js';
import { tempDir } from '../support/tmp.js';
import { canonicalDump } from './support.js';

async function openDatabase(t: TestContext, options: { revsLimit?: number } = {}) {
  const dir = await tempDir(t);
  const path = join(dir, 'docs.couch');
  const db = await LocalDatabase.create(path, { name: 'docs', ...options });
  t.after(() => db.close());
  return { db, path };
}

function parse(bytes: Buffer): Record<string, unknown> {
  return JSON.parse(bytes.toString('utf8')) as Record<string, unknown>;
}

/** Error names that are outcomes of an applied command rather than rejected input. */
const APPLIED_REJECTIONS = new Set(['conflict', 'not_found']);

/**
 * Runs `action` and checks the CouchError it raises and that it changed nothing: the file for
 * rejected input, the documents for a rejection that is an applied outcome.
 */
async function rejects(
  db: LocalDatabase,
  path: string,
  action: () => unknown,
  error: string,
  reason: string | RegExp,
): Promise<void> {
  const before = readFileSync(path);
  const documentsBefore = db.read((snapshot) => canonicalDump(snapshot, true));
  await assert.rejects(
    async () => action(),
    (thrown: unknown) => {
      assert.ok(thrown instanceof CouchError, `a CouchError, not ${String(thrown)}`);
      assert.equal(thrown.error, error);
      if (typeof reason === 'string') assert.equal(thrown.reason, reason);
      else assert.match(thrown.reason, reason);
      return true;
    },
  );
  const documentsAfter = db.read((snapshot) => canonicalDump(snapshot, true));
  assert.ok(documentsAfter.equals(documentsBefore), `${error}: no document changed`);
  if (!APPLIED_REJECTIONS.has(error)) {
    assert.ok(readFileSync(path).equals(before), `${error}: the file is unchanged`);
  }
}

test('body bytes are kept exactly', async (t) => {
  const { db } = await openDatabase(t);
  const raw = '{"z":1,"big":12345678901234567890123,"f":1.50,"s":"\\u00e9\\n","a":{"y":[],"x":{}}}';
  const { rev } = await db.put(raw, { id: 'exact' });
  assert.match(rev, /^1-[0-9a-f]{32}$/);
  assert.equal(db.get('exact').toString(), `{"_id":"exact","_rev":"${rev}",${raw.slice(1)}`);
  // Whitespace is dropped, nothing else.
  await db.put('{ "_id" : "spaced" , "n" : 1.0e+2 }');
  assert.match(
    db.get('spaced').toString(),
    /^\{"_id":"spaced","_rev":"1-[0-9a-f]{32}","n":1\.0e\+2\}$/,
  );
});

test('update, conflict, delete and recreate', async (t) => {
  const { db, path } = await openDatabase(t);
  const first = await db.put('{"_id":"doc","v":1}');
  const second = await db.put(`{"_id":"doc","_rev":"${first.rev}","v":2}`);
  assert.match(second.rev, /^2-/);
  const third = await db.put('{"v":3}', { id: 'doc', rev: second.rev });
  assert.match(third.rev, /^3-/);
  const conflict = 'Document update conflict.';
  await rejects(
    db,
    path,
    () => db.put(`{"_id":"doc","_rev":"${first.rev}"}`),
    'conflict',
    conflict,
  );
  await rejects(db, path, () => db.put('{"_id":"doc"}'), 'conflict', conflict);
  await rejects(db, path, () => db.delete('doc', first.rev), 'conflict', conflict);
  await rejects(db, path, () => db.delete('doc', undefined), 'conflict', conflict);
  await rejects(db, path, () => db.delete('nothing', '1-abc'), 'not_found', 'missing');

  const deleted = await db.delete('doc', third.rev);
  assert.match(deleted.rev, /^4-/);
  await rejects(db, path, async () => db.get('doc'), 'not_found', 'deleted');
  await rejects(db, path, () => db.delete('doc', deleted.rev), 'not_found', 'deleted');
  assert.equal(
    db.get('doc', { rev: deleted.rev }).toString(),
    `{"_id":"doc","_rev":"${deleted.rev}","_deleted":true}`,
  );
  // Writing with the tombstone's revision conflicts; writing without a revision recreates.
  await rejects(
    db,
    path,
    () => db.put(`{"_id":"doc","_rev":"${deleted.rev}"}`),
    'conflict',
    conflict,
  );
  const recreated = await db.put('{"_id":"doc","v":5}');
  assert.match(recreated.rev, /^5-/);
  const revisions = parse(db.get('doc', { revs: true }))._revisions as {
    start: number;
    ids: string[];
  };
  assert.equal(revisions.start, 5);
  assert.equal(revisions.ids[1], deleted.rev.slice(2), 'the new revision extends the tombstone');

  const info = db.read((snapshot) => snapshot.info());
  assert.equal(info.docCount, 1);
  assert.equal(info.docDelCount, 0);
});

test('revision ids are deterministic', async (t) => {
  const { db: one } = await openDatabase(t);
  const { db: two } = await openDatabase(t);
  for (const db of [one, two]) {
    await db.put('{"_id":"a","n":1}');
    await db.put('{"_id":"b","n":1}');
  }
  assert.equal(one.get('a').toString(), two.get('a').toString());
  const a = parse(one.get('a'))._rev;
  const b = parse(one.get('b'))._rev;
  assert.equal(a, b, 'the id is not part of the revision id, as in CouchDB');
  const deleted = await one.delete('a', a as string);
  const other = await two.put(`{"_id":"a","_rev":"${a}","_deleted":true}`);
  assert.equal(deleted.rev, other.rev);
});

test('post generates an id', async (t) => {
  const { db } = await openDatabase(t);
  const { id } = await db.put('{"n":1}');
  assert.match(id, /^[0-9a-f]{32}$/);
  assert.equal(parse(db.get(id)).n, 1);
});

test('bulk results come in request order', async (t) => {
  const { db } = await openDatabase(t);
  const existing = await db.put('{"_id":"b"}');
  const results = await db.bulkDocs([
    '{"_id":"c","n":1}',
    '{"_id":"b"}',
    `{"_id":"b","_rev":"${existing.rev}","n":2}`,
    '{"_id":"a"}',
    '{"_id":"a"}',
    '{"_id":"_local/x","n":1}',
    '{"_id":"_design/d","views":{}}',
  ]);
  assert.deepEqual(
    results.map((result) =>
      result.ok ? [result.id, result.rev.split('-')[0]] : [result.id, result.error],
    ),
    [
      ['c', '1'],
      ['b', 'conflict'],
      ['b', '2'],
      ['a', '1'],
      ['a', 'conflict'],
      ['_local/x', '0'],
      ['_design/d', '1'],
    ],
  );
  assert.equal(
    db.read((snapshot) => snapshot.updateSeq),
    5,
  );
});

test('replicated revisions merge as given', async (t) => {
  const { db } = await openDatabase(t);
  const path = (start: number, ids: string[]) =>
    `"_revisions":{"start":${start},"ids":${JSON.stringify(ids)}}`;
  const results = await db.bulkDocs(
    [
      `{"_id":"r",${path(3, ['c3', 'b2', 'a1'])},"side":"left"}`,
      `{"_id":"r",${path(3, ['d3', 'b2', 'a1'])},"side":"right"}`,
      `{"_id":"r",${path(4, ['e4', 'd3'])},"_deleted":true}`,
      `{"_id":"s","_rev":"1-x1","n":1}`,
    ],
    { newEdits: false },
  );
  assert.deepEqual(
    results.map((result) => result.ok && result.rev),
    ['3-c3', '3-d3', '4-e4', '1-x1'],
  );
  const seq = db.read((snapshot) => snapshot.updateSeq);
  const again = await db.bulkDocs([`{"_id":"r",${path(3, ['c3', 'b2', 'a1'])},"side":"left"}`], {
    newEdits: false,
  });
  assert.deepEqual(again, [{ ok: true, id: 'r', rev: '3-c3' }]);
  assert.equal(
    db.read((snapshot) => snapshot.updateSeq),
    seq,
    'a known revision takes no sequence',
  );

  const doc = parse(db.get('r', { conflicts: true, deletedConflicts: true }));
  assert.equal(doc._rev, '3-c3', 'a live leaf beats a deleted one of higher position');
  assert.equal(doc.side, 'left');
  assert.deepEqual(doc._deleted_conflicts, ['4-e4']);
  assert.equal(doc._conflicts, undefined, 'no live conflicts');
  const all = JSON.parse(db.get('r', { openRevs: 'all' }).toString()) as Array<{
    ok: Record<string, unknown>;
  }>;
  assert.deepEqual(all.map((entry) => entry.ok._rev).sort(), ['3-c3', '4-e4']);

  await db.bulkDocs([`{"_id":"r",${path(3, ['f3', 'b2', 'a1'])},"side":"third"}`], {
    newEdits: false,
  });
  const winner = parse(db.get('r', { conflicts: true }));
  assert.equal(winner._rev, '3-f3', 'the higher revision id wins between equal positions');
  assert.deepEqual(winner._conflicts, ['3-c3']);
});

test('document read options', async (t) => {
  const { db, path } = await openDatabase(t);
  const one = await db.put('{"_id":"d","n":1}');
  const two = await db.put(`{"_id":"d","_rev":"${one.rev}","n":2}`);
  await db.bulkDocs(
    [`{"_id":"d","_revisions":{"start":2,"ids":["zz","${one.rev.slice(2)}"]},"n":"b"}`],
    {
      newEdits: false,
    },
  );
  const seq = db.read((snapshot) => snapshot.updateSeq);

  const full = parse(db.get('d', { revs: true, revsInfo: true, conflicts: true, localSeq: true }));
  assert.equal(full._rev, '2-zz');
  assert.deepEqual(full._revisions, { start: 2, ids: ['zz', one.rev.slice(2)] });
  assert.deepEqual(full._revs_info, [
    { rev: '2-zz', status: 'available' },
    { rev: one.rev, status: 'missing' },
  ]);
  assert.deepEqual(full._conflicts, [two.rev]);
  assert.equal(full._local_seq, seq);

  assert.equal(parse(db.get('d', { rev: two.rev })).n, 2);
  await rejects(db, path, async () => db.get('d', { rev: one.rev }), 'not_found', 'missing');
  await rejects(
    db,
    path,
    async () => db.get('d', { rev: 'bad' }),
    'bad_request',
    'Invalid rev format',
  );
  await rejects(db, path, async () => db.get('nothing'), 'not_found', 'missing');
  // `latest` follows a revision to the leaves below it.
  const latest = parse(db.get('d', { rev: one.rev, latest: true }));
  assert.equal(latest._rev, '2-zz');
  const open = JSON.parse(
    db.get('d', { openRevs: [one.rev, two.rev, '9-none'], latest: true }).toString(),
  ) as Array<Record<string, unknown>>;
  assert.deepEqual(
    open.map((entry) =>
      entry.ok ? (entry.ok as { _rev: string })._rev : `missing ${entry.missing}`,
    ),
    ['2-zz', two.rev, two.rev, 'missing 9-none'],
  );
  const plainOpen = JSON.parse(db.get('d', { openRevs: [one.rev] }).toString());
  assert.deepEqual(plainOpen, [{ missing: one.rev }]);
  await rejects(
    db,
    path,
    async () => db.get('nothing', { openRevs: 'all' }),
    'not_found',
    'missing',
  );
});

test('all_docs options', async (t) => {
  const { db } = await openDatabase(t);
  for (const id of ['b', 'a', 'd', 'c', '_design/x', 'é'])
    await db.put(`{"_id":"${id}","id":"${id}"}`);
  const c = parse(db.get('c'))._rev as string;
  await db.delete('c', c);
  await db.putLocal('_local/hidden', '{}');
  const ids = (result: ReturnType<typeof db.allDocs>) => result.rows.map((row) => row.key);

  const all = db.allDocs();
  assert.equal(all.totalRows, 5);
  assert.equal(all.offset, 0);
  assert.deepEqual(ids(all), ['_design/x', 'a', 'b', 'd', 'é']);
  assert.deepEqual(ids(db.allDocs({ descending: true })), ['é', 'd', 'b', 'a', '_design/x']);
  assert.deepEqual(ids(db.allDocs({ startKey: 'a', endKey: 'd' })), ['a', 'b', 'd']);
  assert.deepEqual(ids(db.allDocs({ startKey: 'a', endKey: 'd', inclusiveEnd: false })), [
    'a',
    'b',
  ]);
  assert.deepEqual(ids(db.allDocs({ startKeyDocId: 'b', endKeyDocId: 'd' })), ['b', 'd']);
  assert.deepEqual(
    ids(db.allDocs({ startKey: 'b', startKeyDocId: 'a' })),
    ['b', 'd', 'é'],
    'the key wins',
  );
  const page = db.allDocs({ startKey: 'a', skip: 1, limit: 2 });
  assert.deepEqual(ids(page), ['b', 'd']);
  assert.equal(page.offset, 2);
  const down = db.allDocs({ startKey: 'd', endKey: 'a', descending: true, inclusiveEnd: false });
  assert.deepEqual(ids(down), ['d', 'b']);
  assert.equal(down.offset, 1);

  const keyed = db.allDocs({ keys: ['b', 'c', 'zz'], includeDocs: true, updateSeq: true });
  assert.equal(keyed.offset, null);
  assert.equal(
    keyed.updateSeq,
    db.read((snapshot) => snapshot.formatSeq(snapshot.updateSeq)),
  );
  const [b, deleted, missing] = keyed.rows;
  assert.ok(b !== undefined, 'a row for b');
  assert.ok('doc' in b, 'the row has a doc member');
  assert.ok(b.doc, 'a live document has its body');
  assert.equal(parse(b.doc).id, 'b');
  assert.deepEqual(deleted, {
    id: 'c',
    key: 'c',
    value: { rev: deleted && 'value' in deleted ? deleted.value.rev : '', deleted: true },
    doc: null,
  });
  assert.deepEqual(missing, { key: 'zz', error: 'not_found' });

  await db.bulkDocs(['{"_id":"b","_rev":"1-0other","side":true}'], { newEdits: false });
  const [conflicted] = db.allDocs({ keys: ['b'], includeDocs: true, conflicts: true }).rows;
  assert.ok(conflicted !== undefined, 'a row for b');
  assert.ok('doc' in conflicted, 'the row has a doc member');
  assert.ok(conflicted.doc, 'the document is included');
  assert.equal(
    Array.isArray(parse(conflicted.doc)._conflicts),
    true,
    'conflicts with include_docs',
  );
});

test('changes options', async (t) => {
  const { db, path } = await openDatabase(t);
  await db.put('{"_id":"a","kind":"x","n":1}');
  const b = await db.put('{"_id":"b","kind":"y","n":2}');
  await db.put('{"_id":"c","kind":"x","n":3}');
  await db.put(`{"_id":"b","_rev":"${b.rev}","kind":"x","n":4}`);
  await db.putLocal('_local/never', '{}');
  const a = parse(db.get('a'))._rev as string;
  await db.delete('a', a);

  const all = db.changes();
  assert.deepEqual(
    all.results.map((row) => [row.id, row.deleted === true]),
    [
      ['c', false],
      ['b', false],
      ['a', true],
    ],
  );
  assert.deepEqual(
    all.results.map((row) => row.seq.split('-')[0]),
    ['3', '4', '5'],
  );
  assert.equal(all.pending, 0);
  assert.equal(all.lastSeq, all.results[2]!.seq);

  const limited = db.changes({ since: 3, limit: 1 });
  assert.deepEqual(
    limited.results.map((row) => row.id),
    ['b'],
  );
  assert.equal(limited.pending, 1);
  assert.deepEqual(
    db.changes({ since: all.results[0]!.seq }).results.map((row) => row.id),
    ['b', 'a'],
  );
  assert.deepEqual(db.changes({ since: 'now' }).results, []);
  assert.deepEqual(
    db.changes({ since: '4-0123456789abcdef' }).results.length,
    3,
    'another database rewinds',
  );
  assert.deepEqual(
    db.changes({ descending: true }).results.map((row) => row.id),
    ['a', 'b', 'c'],
  );
  assert.deepEqual(
    db.changes({ docIds: ['a', 'c'] }).results.map((row) => row.id),
    ['c', 'a'],
  );
  const selected = db.changes({ selector: { kind: 'x', n: { $gt: 2 } }, includeDocs: true });
  assert.deepEqual(
    selected.results.map((row) => row.id),
    ['c', 'b'],
  );
  assert.equal(parse(selected.results[1]!.doc!).n, 4);
  await rejects(
    db,
    path,
    async () => db.changes({ since: 'garbage' }),
    'invalid_since_seq',
    /Malformed/,
  );

  await db.bulkDocs(['{"_id":"c","_rev":"3-other","n":9}'], { newEdits: false });
  const styled = db.changes({ since: 5, style: 'all_docs', includeDocs: true, conflicts: true });
  assert.equal(styled.results.length, 1);
  const row = styled.results[0]!;
  assert.equal(row.changes.length, 2, 'every leaf, winner first');
  assert.equal(row.changes[0]!.rev, '3-other');
  assert.deepEqual(parse(row.doc!)._conflicts, [
    parse(db.get('c', { rev: row.changes[1]!.rev }))._rev,
  ]);
});

test('update events wake waiting feeds', async (t) => {
  const { db } = await openDatabase(t);
  assert.equal(await db.waitForChange(0, 10), false, 'times out without a change');
  const waiting = db.waitForChange(0, 60_000);
  await db.put('{"_id":"w"}');
  assert.equal(await waiting, true);
  const controller = new AbortController();
  const aborted = db.waitForChange(1, 60_000, controller.signal);
  controller.abort();
  assert.equal(await aborted, false);
});

test('revs_diff and bulk_get', async (t) => {
  const { db } = await openDatabase(t);
  const one = await db.put('{"_id":"a","n":1}');
  const two = await db.put(`{"_id":"a","_rev":"${one.rev}","n":2}`);
  const diff = db.revsDiff([
    ['a', [one.rev, two.rev, '3-new', '1-other']],
    ['b', ['1-x']],
    ['a2', []],
  ]);
  assert.deepEqual(diff, [
    ['a', { missing: ['3-new', '1-other'], possible_ancestors: [two.rev] }],
    ['b', { missing: ['1-x'] }],
  ]);
  const got = JSON.parse(
    db
      .bulkGet([{ id: 'a' }, { id: 'a', rev: one.rev }, { id: 'a', rev: two.rev }, { id: 'zz' }], {
        revs: true,
      })
      .toString(),
  ) as { results: Array<{ id: string; docs: Array<Record<string, Record<string, unknown>>> }> };
  const [winner, old, exact, missing] = got.results;
  assert.equal(winner!.docs[0]!.ok!._rev, two.rev);
  assert.deepEqual(winner!.docs[0]!.ok!._revisions, {
    start: 2,
    ids: [two.rev.slice(2), one.rev.slice(2)],
  });
  assert.deepEqual(old!.docs[0], {
    error: { id: 'a', rev: one.rev, error: 'not_found', reason: 'missing' },
  });
  assert.equal(exact!.docs[0]!.ok!.n, 2);
  assert.deepEqual(missing!.docs[0], {
    error: { id: 'zz', rev: 'undefined', error: 'not_found', reason: 'missing' },
  });
});

test('local documents', async (t) => {
  const { db, path } = await openDatabase(t);
  assert.equal(await db.putLocal('_local/cp', '{"seq":1}'), '0-1');
  assert.equal(await db.putLocal('_local/cp', '{"seq":2}', '0-1'), '0-2');
  // CouchDB 3.x does not compare a local document's revision, so a stale one still writes.
  assert.equal(await db.putLocal('_local/cp', '{"seq":3}', '0-1'), '0-2');
  assert.equal(db.get('_local/cp').toString(), '{"_id":"_local/cp","_rev":"0-2","seq":3}');
  assert.equal(
    db.read((snapshot) => snapshot.updateSeq),
    0,
    'local writes take no sequence',
  );
  assert.equal(db.allDocs().rows.length, 0);
  assert.equal(db.changes().results.length, 0);
  assert.equal(await db.deleteLocal('_local/cp', '0-2'), '0-0');
  await rejects(db, path, async () => db.get('_local/cp'), 'not_found', 'missing');
  await rejects(db, path, () => db.deleteLocal('_local/cp'), 'not_found', 'missing');
  await rejects(
    db,
    path,
    () => db.putLocal('_local/cp', '{}', '0-x'),
    'bad_request',
    'Invalid rev format',
  );
  await rejects(db, path, () => db.putLocal('plain', '{}'), 'bad_request', /not a _local/);
});

test('revs_limit stems histories', async (t) => {
  const { db } = await openDatabase(t, { revsLimit: 1000 });
  await db.setRevsLimit(3);
  assert.equal(
    db.read((snapshot) => snapshot.revsLimit()),
    3,
  );
  let rev = (await db.put('{"_id":"s","n":0}')).rev;
  const revs = [rev];
  for (let n = 1; n <= 5; n++) {
    rev = (await db.put(`{"_id":"s","_rev":"${rev}","n":${n}}`)).rev;
    revs.push(rev);
  }
  const doc = parse(db.get('s', { revs: true }));
  assert.deepEqual(doc._revisions, {
    start: 6,
    ids: revs
      .slice(3)
      .reverse()
      .map((r) => r.slice(2)),
  });
  const diff = db.revsDiff([['s', [revs[0]!]]]);
  assert.deepEqual(diff[0]![1].missing, [revs[0]], 'stemmed revisions are gone');
});

test('security object', async (t) => {
  const { db, path } = await openDatabase(t);
  assert.equal(
    db.read((snapshot) => snapshot.security().toString()),
    '{}',
  );
  await db.setSecurity('{"admins":{"names":["x"]},"members":{}}');
  assert.equal(
    db.read((snapshot) => snapshot.security().toString()),
    '{"admins":{"names":["x"]},"members":{}}',
  );
  await rejects(
    db,
    path,
    () => db.setSecurity('[]'),
    'bad_request',
    'Document must be a JSON object',
  );
  await rejects(db, path, () => db.setRevsLimit(0), 'bad_request', /positive/);
});

test('invalid documents are rejected before any write', async (t) => {
  const { db, path } = await openDatabase(t);
  await db.put('{"_id":"exists"}');
  const cases: Array<[string, () => Promise<unknown>, string, string | RegExp]> = [
    ['bad JSON', () => db.put('{"a":'), 'bad_request', 'invalid UTF-8 JSON'],
    ['not an object', () => db.put('[1]'), 'bad_request', 'Document must be a JSON object'],
    ['empty id', () => db.put('{"_id":""}'), 'illegal_docid', 'Document id must not be empty'],
    [
      'reserved id',
      () => db.put('{"_id":"_nope"}'),
      'illegal_docid',
      'Only reserved document ids may start with underscore.',
    ],
    [
      'unknown special member',
      () => db.put('{"_id":"x","_foo":1}'),
      'doc_validation',
      'Bad special document member: _foo',
    ],
    ['bad rev', () => db.put('{"_id":"x","_rev":"nope"}'), 'bad_request', 'Invalid rev format'],
    [
      'bad revisions',
      () => db.put('{"_id":"x","_revisions":{"start":"1","ids":[]}}'),
      'doc_validation',
      "_revisions.start isn't an integer.",
    ],
    [
      'replicated without revision',
      () => db.bulkDocs(['{"_id":"x"}'], { newEdits: false }),
      'bad_request',
      /needs `_rev` or `_revisions`/,
    ],
    [
      'one bad document fails the bulk',
      () => db.bulkDocs(['{"_id":"ok"}', '{"_id":"_bad"}']),
      'illegal_docid',
      /reserved/,
    ],
    ['bad delete id', () => db.delete('_bad', '1-a'), 'illegal_docid', /reserved/],
  ];
  for (const [name, action, error, reason] of cases) {
    await t.test(name, () => rejects(db, path, action, error, reason));
  }
});

test('document size limit', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'limit.couch');
  const db = await LocalDatabase.create(path, { name: 'limit', parse: { maxDocumentSize: 64 } });
  t.after(() => db.close());
  await db.put(`{"_id":"small","s":"${'x'.repeat(40)}"}`);
  await rejects(
    db,
    path,
    () => db.put(`{"_id":"big","s":"${'x'.repeat(80)}"}`),
    'document_too_large',
    'big',
  );
});
