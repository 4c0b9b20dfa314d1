import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { compareCodePoints } from '../../src/document/collate.js';
import { assertError, seed, startServer, type TestServer } from './harness.js';

const REV_B = `2-${'b'.repeat(32)}`;

async function withDb(t: Parameters<typeof startServer>[0]): Promise<TestServer> {
  const server = await startServer(t);
  await server.json('PUT', '/db', 201);
  t.after(() => assert.equal(server.backend.openSnapshots, 0, 'snapshots left open'));
  return server;
}

test('_bulk_docs writes and reports per document', async (t) => {
  const server = await withDb(t);
  const results = await server.json('POST', '/db/_bulk_docs', 201, {
    body: { docs: [{ _id: 'a', v: 1 }, { v: 2 }, { _id: 'a', v: 3 }] },
  });
  assert.equal(results.length, 3);
  assert.deepEqual(Object.keys(results[0]), ['ok', 'id', 'rev']);
  assert.match(results[1].id, /^[0-9a-f]{32}$/);
  assert.deepEqual(results[2], { id: 'a', error: 'conflict', reason: 'Document update conflict.' });
  const update = await server.json('POST', '/db/_bulk_docs', 201, {
    body: {
      docs: [
        { _id: 'a', _rev: results[0].rev, v: 4 },
        { _id: 'a', _rev: results[0].rev, _deleted: true },
      ],
    },
  });
  assert.equal(update[0].ok, true);
  assert.equal(update[1].error, 'conflict');
  assert.deepEqual(await server.json('POST', '/db/_bulk_docs', 201, { body: { docs: [] } }), []);
});

test('_bulk_docs rejects the whole request for one bad document', async (t) => {
  const server = await withDb(t);
  const cases: [unknown, number, string, string][] = [
    [
      { docs: [{ _id: 'ok' }, { _id: '_bad' }] },
      400,
      'illegal_docid',
      'Only reserved document ids may start with underscore.',
    ],
    [
      { docs: [{ _id: 'ok' }, { _x: 1 }] },
      400,
      'doc_validation',
      'Bad special document member: _x',
    ],
    [{ docs: [{ _id: 'ok' }, 5] }, 400, 'bad_request', 'Document must be a JSON object'],
    [{}, 400, 'bad_request', 'POST body must include `docs` parameter.'],
    [{ docs: {} }, 400, 'bad_request', 'POST body must include `docs` parameter.'],
    [[], 400, 'bad_request', 'Document must be a JSON object'],
    [
      { docs: [{ _id: 'x' }], new_edits: false },
      400,
      'bad_request',
      'When `new_edits: false`, the document needs `_rev` or `_revisions` specified',
    ],
  ];
  for (const [body, status, error, reason] of cases) {
    assertError(await server.request('POST', '/db/_bulk_docs', { body }), status, error, reason);
  }
  assert.equal((await server.json('GET', '/db', 200)).doc_count, 0);
  assertError(
    await server.request('POST', '/db/_bulk_docs', {
      body: '{"docs":[]}',
      headers: { 'content-type': 'text/plain' },
    }),
    415,
    'bad_content_type',
  );
});

test('_bulk_docs with new_edits false lists only errors', async (t) => {
  const server = await withDb(t);
  const docs = [
    { _id: 'r', _revisions: { start: 2, ids: ['b'.repeat(32), 'a'.repeat(32)] }, v: 1 },
    { _id: 'r', _rev: `1-${'c'.repeat(32)}`, v: 2 },
  ];
  assert.deepEqual(
    await server.json('POST', '/db/_bulk_docs', 201, { body: { docs, new_edits: false } }),
    [],
  );
  const doc = await server.json('GET', '/db/r?conflicts=true', 200);
  assert.equal(doc._rev, REV_B);
  assert.deepEqual(doc._conflicts, [`1-${'c'.repeat(32)}`]);
  // The same history again changes nothing.
  const before = (await server.json('GET', '/db', 200)).update_seq;
  await server.json('POST', '/db/_bulk_docs', 201, { body: { docs, new_edits: false } });
  assert.equal((await server.json('GET', '/db', 200)).update_seq, before);
});

test('_bulk_docs count limit', async (t) => {
  const server = await startServer(t, { maxBulkDocs: 3 });
  await server.json('PUT', '/db', 201);
  const docs = [{}, {}, {}, {}];
  assertError(
    await server.request('POST', '/db/_bulk_docs', { body: { docs } }),
    413,
    'max_bulk_docs_count_exceeded',
    '3',
  );
  await server.json('POST', '/db/_bulk_docs', 201, { body: { docs: docs.slice(1) } });
});

test('_bulk_get returns revisions and errors', async (t) => {
  const server = await withDb(t);
  const [a] = await seed(server, 'db', [{ _id: 'a', v: 1 }, { _id: 'gone' }]);
  const gone = await server.json('GET', '/db/gone', 200);
  await server.json('DELETE', `/db/gone?rev=${gone._rev}`, 200);
  const body = {
    docs: [
      { id: 'a' },
      { id: 'a', rev: a.rev },
      { id: 'a', rev: '1-abc' },
      { id: 'missing' },
      { id: 'gone' },
      { rev: '1-x' },
    ],
  };
  const result = await server.json('POST', '/db/_bulk_get?revs=true', 200, { body });
  const [plain, withRev, badRev, missing, deleted, noId] = result.results;
  assert.equal(plain.id, 'a');
  assert.equal(plain.docs[0].ok._rev, a.rev);
  assert.deepEqual(plain.docs[0].ok._revisions, { start: 1, ids: [a.rev.slice(2)] });
  assert.equal(withRev.docs[0].ok.v, 1);
  assert.deepEqual(badRev.docs[0], {
    error: { id: 'a', rev: '1-abc', error: 'not_found', reason: 'missing' },
  });
  assert.deepEqual(missing.docs[0], {
    error: { id: 'missing', rev: 'undefined', error: 'not_found', reason: 'missing' },
  });
  assert.deepEqual(deleted.docs[0], {
    error: { id: 'gone', rev: 'undefined', error: 'not_found', reason: 'deleted' },
  });
  assert.equal(noId.docs[0].error.error, 'illegal_docid');
  assertError(
    await server.request('POST', '/db/_bulk_get', { body: {} }),
    400,
    'bad_request',
    "Missing JSON list of 'docs'.",
  );
});

test('_bulk_get count limit', async (t) => {
  const server = await startServer(t, { maxBulkGet: 1 });
  await server.json('PUT', '/db', 201);
  assertError(
    await server.request('POST', '/db/_bulk_get', { body: { docs: [{ id: 'a' }, { id: 'b' }] } }),
    413,
    'max_bulk_get_count_exceeded',
    '1',
  );
});

test('_revs_diff lists missing revisions', async (t) => {
  const server = await withDb(t);
  const [a] = await seed(server, 'db', [{ _id: 'a' }]);
  const raw = `{"a":${JSON.stringify([a.rev, REV_B])},"10":["1-x"],"__proto__":["1-y"],"c":${JSON.stringify([a.rev])}}`;
  const response = await server.request('POST', '/db/_revs_diff', { body: raw });
  assert.equal(response.statusCode, 200);
  assert.equal(
    response.body,
    `{"a":{"missing":["${REV_B}"],"possible_ancestors":["${a.rev}"]},"10":{"missing":["1-x"]},"__proto__":{"missing":["1-y"]},"c":{"missing":["${a.rev}"]}}\n`,
  );
  assertError(
    await server.request('POST', '/db/_revs_diff', { body: { a: ['bad'] } }),
    400,
    'bad_request',
    'Invalid rev format',
  );
  assertError(
    await server.request('POST', '/db/_revs_diff', { body: { a: 'x' } }),
    400,
    'bad_request',
  );
});

test('_all_docs layout and options', async (t) => {
  const server = await withDb(t);
  const results = await seed(
    server,
    'db',
    ['b', 'a', 'c', 'd'].map((id) => ({ _id: id, v: id })),
  );
  const revOf = (id: string) => results.find((result: { id: string }) => result.id === id).rev;
  await server.json('DELETE', `/db/d?rev=${revOf('d')}`, 200);

  const response = await server.request('GET', '/db/_all_docs');
  assert.equal(
    response.body,
    `{"total_rows":3,"offset":0,"rows":[\r\n` +
      ['a', 'b', 'c']
        .map((id) => `{"id":"${id}","key":"${id}","value":{"rev":"${revOf(id)}"}}`)
        .join(',\r\n') +
      '\r\n]}\n',
  );
  const ids = async (query: string) =>
    (await server.json('GET', `/db/_all_docs${query}`, 200)).rows.map(
      (row: { id: string }) => row.id,
    );
  assert.deepEqual(await ids('?descending=true'), ['c', 'b', 'a']);
  assert.deepEqual(await ids('?startkey="b"'), ['b', 'c']);
  assert.deepEqual(await ids('?endkey="b"&inclusive_end=false'), ['a']);
  assert.deepEqual(await ids('?key="b"'), ['b']);
  assert.deepEqual(await ids('?skip=1&limit=1'), ['b']);
  assert.deepEqual(await ids('?startkey=1'), ['a', 'b', 'c']);
  assert.deepEqual(await ids('?endkey=null'), []);
  const paged = await server.json('GET', '/db/_all_docs?startkey="b"&skip=1&update_seq=true', 200);
  assert.equal(paged.offset, 2);
  assert.equal(typeof paged.update_seq, 'string');
  const withDocs = await server.json('GET', '/db/_all_docs?include_docs=true&limit=1', 200);
  assert.deepEqual(withDocs.rows[0].doc, { _id: 'a', _rev: revOf('a'), v: 'a' });
  assertError(
    await server.request('GET', '/db/_all_docs?startkey="c"&endkey="a"'),
    400,
    'query_parse_error',
  );
  assertError(await server.request('GET', '/db/_all_docs?limit=-2'), 400, 'query_parse_error');
});

test('_all_docs with keys', async (t) => {
  const server = await withDb(t);
  const [a, gone] = await seed(server, 'db', [{ _id: 'a' }, { _id: 'gone' }]);
  const removed = await server.json('DELETE', `/db/gone?rev=${gone.rev}`, 200);
  const keys = '["gone", "a", 12345678901234567890123, "none"]';
  const post = await server.request('POST', '/db/_all_docs?include_docs=true', {
    body: `{"keys": ${keys}}`,
  });
  assert.equal(post.statusCode, 200);
  assert.ok(post.body.includes('{"key":12345678901234567890123,"error":"not_found"}'));
  const body = JSON.parse(post.body);
  assert.equal(body.offset, null);
  assert.deepEqual(body.rows[0], {
    id: 'gone',
    key: 'gone',
    value: { rev: removed.rev, deleted: true },
    doc: null,
  });
  assert.equal(body.rows[1].doc._rev, a.rev);
  assert.deepEqual(body.rows[3], { key: 'none', error: 'not_found' });
  const get = await server.json('GET', `/db/_all_docs?keys=${encodeURIComponent('["a"]')}`, 200);
  assert.equal(get.rows[0].id, 'a');
  assertError(
    await server.request('GET', '/db/_all_docs?keys=["a"]&key="a"'),
    400,
    'query_parse_error',
  );
});

test('_all_docs ranges match a model', async (t) => {
  const server = await withDb(t);
  const ids = ['a', 'ab', 'b', 'é', 'z', 'Z', '0', 'a b', '💡', 'aa'];
  await seed(
    server,
    'db',
    ids.map((id) => ({ _id: id })),
  );
  const sorted = ids.slice().sort(compareCodePoints);
  await fc.assert(
    fc.asyncProperty(
      fc.option(fc.oneof(fc.constantFrom(...ids), fc.string({ unit: 'grapheme', maxLength: 3 }))),
      fc.option(fc.oneof(fc.constantFrom(...ids), fc.string({ unit: 'grapheme', maxLength: 3 }))),
      fc.boolean(),
      fc.boolean(),
      async (start, end, descending, inclusiveEnd) => {
        const params = new URLSearchParams({
          descending: String(descending),
          inclusive_end: String(inclusiveEnd),
        });
        if (start !== null) params.set('startkey', JSON.stringify(start));
        if (end !== null) params.set('end_key', JSON.stringify(end));
        const order = (x: string, y: string) =>
          descending ? -compareCodePoints(x, y) : compareCodePoints(x, y);
        if (start !== null && end !== null && order(start, end) > 0) {
          assertError(
            await server.request('GET', `/db/_all_docs?${params}`),
            400,
            'query_parse_error',
          );
          return;
        }
        const expected = (descending ? sorted.slice().reverse() : sorted).filter(
          (id) =>
            (start === null || order(id, start) >= 0) &&
            (end === null || order(id, end) < 0 || (inclusiveEnd && id === end)),
        );
        const body = await server.json('GET', `/db/_all_docs?${params}`, 200);
        assert.deepEqual(
          body.rows.map((row: { id: string }) => row.id),
          expected,
        );
      },
    ),
    { numRuns: 150 },
  );
});
