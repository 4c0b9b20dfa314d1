import assert from 'node:assert/strict';
import { test } from 'node:test';
import { pino } from 'pino';
import { createHttpServer } from '../../src/http/server.js';
import {
  ADMIN_AUTH,
  ADMIN_NAME,
  adminHash,
  assertError,
  assertJsonReply,
  startServer,
} from './harness.js';
import { MemoryBackend } from './memory-backend.js';

test('welcome body', async (t) => {
  const server = await startServer(t);
  const body = await server.json('GET', '/', 200);
  assert.deepEqual(Object.keys(body), ['couchdb', 'version', 'uuid', 'features', 'vendor']);
  assert.equal(body.couchdb, 'Welcome');
  assert.equal(body.uuid, server.backend.server().uuid);
  assert.deepEqual(body.vendor, { name: 'Divan', version: '0.1.0' });
  const head = await server.request('HEAD', '/');
  assert.equal(head.statusCode, 200);
  assert.equal(head.body, '');
});

test('every JSON reply carries CouchDB headers', async (t) => {
  const server = await startServer(t);
  for (const url of ['/', '/_up', '/_all_dbs', '/nope', '/_nope']) {
    const response = await server.request('GET', url);
    assertJsonReply(response);
    assert.equal(response.headers['cache-control'], 'must-revalidate', url);
    assert.ok(response.body.endsWith('\n'), url);
  }
});

test('request ids differ per request', async (t) => {
  const server = await startServer(t);
  const ids = new Set<string>();
  for (let i = 0; i < 20; i++) {
    ids.add(String((await server.request('GET', '/_up')).headers['x-couch-request-id']));
  }
  assert.equal(ids.size, 20);
});

test('_up answers ok', async (t) => {
  const server = await startServer(t);
  assert.deepEqual(await server.json('GET', '/_up', 200), { status: 'ok', seeds: {} });
});

test('_all_dbs lists and pages', async (t) => {
  const server = await startServer(t);
  for (const name of ['c', 'a', 'e', 'b', 'd']) await server.json('PUT', `/${name}`, 201);
  assert.deepEqual(await server.json('GET', '/_all_dbs', 200), ['a', 'b', 'c', 'd', 'e']);
  const cases: [string, string[]][] = [
    ['?descending=true', ['e', 'd', 'c', 'b', 'a']],
    ['?limit=2&skip=1', ['b', 'c']],
    ['?startkey="b"&endkey="d"', ['b', 'c', 'd']],
    ['?start_key="b"&end_key="d"&inclusive_end=false', ['b', 'c']],
    ['?descending=true&startkey="d"&endkey="b"', ['d', 'c', 'b']],
  ];
  for (const [query, expected] of cases) {
    assert.deepEqual(await server.json('GET', `/_all_dbs${query}`, 200), expected, query);
  }
  assertError(await server.request('GET', '/_all_dbs?limit=x'), 400, 'query_parse_error');
  assertError(await server.request('GET', '/_all_dbs?startkey=nojson'), 400, 'query_parse_error');
});

test('_uuids counts and limits', async (t) => {
  const server = await startServer(t, { maxUuidCount: 10 });
  const one = await server.json('GET', '/_uuids', 200);
  assert.equal(one.uuids.length, 1);
  assert.match(one.uuids[0], /^[0-9a-f]{32}$/);
  const many = await server.json('GET', '/_uuids?count=10', 200);
  assert.equal(new Set(many.uuids).size, 10);
  assertError(await server.request('GET', '/_uuids?count=11'), 400, 'bad_request');
  assertError(await server.request('GET', '/_uuids?count=-1'), 400, 'query_parse_error');
});

test('_node/_local/_system reports process facts', async (t) => {
  const server = await startServer(t);
  await server.json('PUT', '/db', 201);
  const body = await server.json('GET', '/_node/_local/_system', 200);
  assert.ok(body.memory.rss > 0);
  assert.equal(typeof body.event_loop_delay_ms.p99, 'number');
  assert.equal(body.open_database_files, 1);
  assert.equal(body.raft_groups, 2);
  assertError(await server.request('GET', '/_node/other/_system'), 404, 'not_found');
});

test('_raft routes', async (t) => {
  const server = await startServer(t);
  await server.json('PUT', '/db', 201);
  const node = await server.json('GET', '/_node/_local/_raft', 200);
  assert.equal(node.role, 'leader');
  assert.deepEqual(node.groups, [{ db: 'db', role: 'leader' }]);
  const group = await server.json('GET', '/db/_raft', 200);
  for (const key of ['node', 'role', 'term', 'leader', 'commit_index', 'applied_index']) {
    assert.ok(key in group, key);
  }
  assertError(
    await server.request('GET', '/missing/_raft'),
    404,
    'not_found',
    'Database does not exist.',
  );
});

test('wrong methods answer 405 with Allow', async (t) => {
  const server = await startServer(t);
  await server.json('PUT', '/db', 201);
  const cases: [string, string, string][] = [
    ['POST', '/', 'GET,HEAD'],
    ['DELETE', '/_all_dbs', 'GET,HEAD'],
    ['POST', '/_uuids', 'GET,HEAD'],
    ['GET', '/db/_bulk_docs', 'POST'],
    ['GET', '/db/_revs_diff', 'POST'],
    ['PUT', '/db/_changes', 'GET,HEAD,POST'],
    ['DELETE', '/db/_security', 'GET,HEAD,PUT'],
    ['POST', '/db/doc', 'COPY,DELETE,GET,HEAD,PUT'],
    ['PATCH', '/db', 'DELETE,GET,HEAD,POST,PUT'],
  ];
  for (const [method, url, allowed] of cases) {
    const response = await server.request(method, url, { body: {} });
    assertError(response, 405, 'method_not_allowed', `Only ${allowed} allowed`);
    assert.equal(response.headers.allow, allowed, `${method} ${url}`);
  }
});

test('unknown underscore routes answer 404', async (t) => {
  const server = await startServer(t);
  for (const url of ['/_foo', '/_dbs', '/_foo/bar', '/_node']) {
    assertError(await server.request('GET', url), 404, 'not_found');
  }
  assertError(
    await server.request('PUT', '/_foo'),
    400,
    'illegal_database_name',
    /^Name: '_foo'\. Only lowercase/,
  );
});

test('repeated slashes collapse', async (t) => {
  const server = await startServer(t);
  assert.deepEqual(await server.json('GET', '//_up', 200), { status: 'ok', seeds: {} });
  assert.deepEqual(await server.json('GET', '///_all_dbs//', 200), []);
});

test('malformed percent escapes answer 400', async (t) => {
  const server = await startServer(t);
  assertError(await server.request('GET', '/db%zz'), 400, 'bad_request');
  assertError(await server.request('GET', '/db/%'), 400, 'bad_request');
});

test('unimplemented routes answer 501', async (t) => {
  const server = await startServer(t);
  await server.json('PUT', '/db', 201);
  assertError(await server.request('POST', '/db/_find', { body: {} }), 501, 'not_implemented');
  assertError(
    await server.request('POST', '/db/_compact/ddoc', { body: {} }),
    501,
    'not_implemented',
  );
  // The memory backend implements neither purge nor compaction.
  assertError(await server.request('POST', '/db/_purge', { body: {} }), 501, 'not_implemented');
  assertError(await server.request('POST', '/db/_compact', { body: {} }), 501, 'not_implemented');
});

test('one log line per request', async (t) => {
  const lines: Record<string, unknown>[] = [];
  const logger = pino(
    { level: 'info' },
    { write: (line: string) => lines.push(JSON.parse(line) as Record<string, unknown>) },
  );
  const app = createHttpServer({
    backend: new MemoryBackend(),
    admins: [{ name: ADMIN_NAME, passwordHash: await adminHash() }],
    logger,
  });
  t.after(() => app.close());
  await app.inject({ method: 'PUT', url: '/db', headers: { authorization: ADMIN_AUTH } });
  const response = await app.inject({ method: 'GET', url: '/db/missing?x=1' });
  assert.equal(lines.length, 2);
  const line = lines[1]!;
  assert.equal(line.level, 30);
  assert.equal(line.msg, 'request');
  assert.equal(line.reqId, response.headers['x-couch-request-id']);
  assert.equal(line.method, 'GET');
  assert.equal(line.path, '/db/missing');
  assert.equal(line.status, 401);
  assert.equal(typeof line.durationMs, 'number');
  assert.equal(line.user, null);
  assert.equal(line.db, 'db');
  assert.equal(lines[0]!.user, ADMIN_NAME);
  assert.equal(lines[0]!.db, 'db');
});
