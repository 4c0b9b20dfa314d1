import assert from 'node:assert/strict';
import { test } from 'node:test';
import { assertError, startServer } from './harness.js';

test('database lifecycle', async (t) => {
  const server = await startServer(t);
  assertError(await server.request('GET', '/db'), 404, 'not_found', 'Database does not exist.');

  const created = await server.request('PUT', '/db');
  assert.equal(created.statusCode, 201);
  assert.equal(created.body, '{"ok":true}\n');
  assert.equal(created.headers.location, 'http://localhost:80/db');
  assertError(
    await server.request('PUT', '/db'),
    412,
    'file_exists',
    'The database could not be created, the file already exists.',
  );

  const info = await server.json('GET', '/db', 200);
  assert.deepEqual(Object.keys(info), [
    'instance_start_time',
    'db_name',
    'purge_seq',
    'update_seq',
    'sizes',
    'props',
    'doc_del_count',
    'doc_count',
    'disk_format_version',
    'compact_running',
    'cluster',
  ]);
  assert.equal(info.db_name, 'db');
  assert.equal(info.instance_start_time, '0');
  assert.equal(typeof info.update_seq, 'string');

  const head = await server.request('HEAD', '/db');
  assert.equal(head.statusCode, 200);
  assert.equal(head.body, '');

  assert.deepEqual(await server.json('DELETE', '/db', 200), { ok: true });
  assertError(await server.request('DELETE', '/db'), 404, 'not_found', 'Database does not exist.');
  assert.equal((await server.request('HEAD', '/db')).statusCode, 404);
});

test('trailing slash names the database', async (t) => {
  const server = await startServer(t);
  assertError(await server.request('GET', '/db/'), 404, 'not_found', 'Database does not exist.');
  await server.json('PUT', '/db/', 201);
  assert.equal((await server.json('GET', '/db/', 200)).db_name, 'db');
  await server.json('DELETE', '/db/', 200);
});

test('encoded slashes belong to the name', async (t) => {
  const server = await startServer(t);
  await server.json('PUT', '/team%2Fdb', 201);
  assert.deepEqual(await server.json('GET', '/_all_dbs', 200), ['team/db']);
  assert.equal((await server.json('GET', '/team%2fdb', 200)).db_name, 'team/db');
  await server.json('PUT', '/team%2Fdb/doc', 201, { body: { a: 1 } });
  assert.equal((await server.json('GET', '/team%2Fdb/doc', 200)).a, 1);
  const created = await server.request('PUT', '/team%2Fdb2');
  assert.equal(created.headers.location, 'http://localhost:80/team%2Fdb2');
});

test('database names follow CouchDB rules', async (t) => {
  const server = await startServer(t);
  for (const name of ['a', 'a0_$()+-/x', '_users', '_replicator', '_global_changes', 'x/_users']) {
    await server.json('PUT', `/${encodeURIComponent(name)}`, 201);
  }
  for (const name of ['BadName', '9abc', '_badstart', 'Bad-Name', 'a b', 'a.b', 'é']) {
    const response = await server.request('PUT', `/${encodeURIComponent(name)}`);
    assertError(
      response,
      400,
      'illegal_database_name',
      `Name: '${name}'. Only lowercase characters (a-z), digits (0-9), and any of the characters _, $, (, ), +, -, and / are allowed. Must begin with a letter.`,
    );
    assertError(await server.request('GET', `/${encodeURIComponent(name)}`), 404, 'not_found');
  }
});

test('delete with rev hints at a document', async (t) => {
  const server = await startServer(t);
  await server.json('PUT', '/db', 201);
  assertError(await server.request('DELETE', '/db?rev=1-x'), 400, 'bad_request');
});

test('_ensure_full_commit answers 201', async (t) => {
  const server = await startServer(t);
  await server.json('PUT', '/db', 201);
  const body = await server.json('POST', '/db/_ensure_full_commit', 201, { body: '' });
  assert.deepEqual(body, { ok: true, instance_start_time: '0' });
  assertError(
    await server.request('POST', '/db/_ensure_full_commit'),
    415,
    'bad_content_type',
    'Content-Type must be application/json',
  );
  assertError(
    await server.request('POST', '/missing/_ensure_full_commit', { body: '' }),
    404,
    'not_found',
  );
});

test('_revs_limit reads and writes', async (t) => {
  const server = await startServer(t);
  await server.json('PUT', '/db', 201);
  const first = await server.request('GET', '/db/_revs_limit');
  assert.equal(first.body, '1000\n');
  assert.deepEqual(await server.json('PUT', '/db/_revs_limit', 200, { body: '5' }), { ok: true });
  assert.equal(await server.json('GET', '/db/_revs_limit', 200), 5);
  for (const body of ['0', '-1', '"5"', '1.5', '{}', 'x']) {
    assertError(await server.request('PUT', '/db/_revs_limit', { body }), 400, 'bad_request');
  }
});

test('_security reads and writes raw JSON', async (t) => {
  const server = await startServer(t);
  await server.json('PUT', '/db', 201);
  assert.equal((await server.request('GET', '/db/_security')).body, '{}\n');
  const security =
    '{ "admins": {"names": ["a"], "roles": []}, "members": {"roles": ["r"]}, "x": 1 }';
  assert.deepEqual(await server.json('PUT', '/db/_security', 200, { body: security }), {
    ok: true,
  });
  assert.equal(
    (await server.request('GET', '/db/_security')).body,
    '{"admins":{"names":["a"],"roles":[]},"members":{"roles":["r"]},"x":1}\n',
  );
  for (const body of [
    '[]',
    '{"admins":[]}',
    '{"members":{"names":[1]}}',
    '{"admins":{"roles":"r"}}',
  ]) {
    assertError(await server.request('PUT', '/db/_security', { body }), 400, 'bad_request');
  }
});

test('stale reads select local consistency', async (t) => {
  const server = await startServer(t);
  await server.json('PUT', '/db', 201);
  server.backend.consistencies.length = 0;
  await server.json('GET', '/db', 200);
  await server.json('GET', '/db?stable=false', 200);
  await server.json('GET', '/db/_all_docs?stale=ok', 200);
  await server.json('GET', '/db/_all_docs?stable=true', 200);
  assert.deepEqual(server.backend.consistencies, [
    'linearizable',
    'stale',
    'stale',
    'linearizable',
  ]);
});
