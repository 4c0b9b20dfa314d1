import assert from 'node:assert/strict';
import { pbkdf2Sync } from 'node:crypto';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  Authenticator,
  hashPassword,
  parseBasicCredentials,
  parsePasswordHash,
  verifyPassword,
} from '../../src/http/auth.js';
import {
  ADMIN_AUTH,
  ADMIN_NAME,
  ADMIN_PASSWORD,
  adminHash,
  assertError,
  basicAuth,
  startServer,
} from './harness.js';

const FEW_ITERATIONS = 10;

test('hashPassword writes the pbkdf2 sha256 form', async () => {
  const stored = await hashPassword('secret', FEW_ITERATIONS);
  assert.match(stored, /^-pbkdf2:sha256-[0-9a-f]{64},[0-9a-f]{32},10$/);
  const parsed = parsePasswordHash(stored);
  assert.ok(parsed !== null);
  assert.equal(await verifyPassword('secret', parsed), true);
  assert.equal(await verifyPassword('Secret', parsed), false);
});

test('salts differ per hash', async () => {
  const first = await hashPassword('same', FEW_ITERATIONS);
  const second = await hashPassword('same', FEW_ITERATIONS);
  assert.notEqual(first.split(',')[1], second.split(',')[1]);
});

test('passwords round-trip through the stored form', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.string({ unit: 'grapheme', maxLength: 40 }),
      fc.string(),
      async (password, other) => {
        const parsed = parsePasswordHash(await hashPassword(password, 2));
        assert.ok(parsed !== null);
        assert.equal(await verifyPassword(password, parsed), true);
        if (other !== password) assert.equal(await verifyPassword(other, parsed), false);
      },
    ),
    { numRuns: 50 },
  );
});

test('sha1 pbkdf2 hashes of CouchDB are accepted', async () => {
  const salt = 'a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5';
  const key = pbkdf2Sync('relax', salt, 10, 20, 'sha1').toString('hex');
  const parsed = parsePasswordHash(`-pbkdf2-${key},${salt},10`);
  assert.ok(parsed !== null);
  assert.equal(parsed.prf, 'sha');
  assert.equal(await verifyPassword('relax', parsed), true);
});

test('malformed password hashes are rejected', () => {
  for (const stored of [
    'plain',
    '-hashed-abc,salt',
    '-pbkdf2:sha256-abcd,salt,10',
    '-pbkdf2:md5-00,salt,10',
    `-pbkdf2:sha256-${'0'.repeat(64)},salt,0`,
    `-pbkdf2:sha256-${'0'.repeat(64)},salt,99999999999`,
  ]) {
    assert.equal(parsePasswordHash(stored), null, stored);
  }
});

test('basic credentials parsing', () => {
  assert.deepEqual(parseBasicCredentials(basicAuth('a', 'b:c')), { name: 'a', password: 'b:c' });
  assert.deepEqual(parseBasicCredentials('basic YTpi'), { name: 'a', password: 'b' });
  assert.equal(parseBasicCredentials(undefined), null);
  assert.equal(parseBasicCredentials('Bearer abc'), null);
  assert.equal(parseBasicCredentials('Basic !!!'), null);
  assert.equal(parseBasicCredentials(`Basic ${Buffer.from('nocolon').toString('base64')}`), null);
});

test('verified credentials are cached', async () => {
  const authenticator = new Authenticator([{ name: ADMIN_NAME, passwordHash: await adminHash() }]);
  for (let i = 0; i < 5; i++) {
    assert.deepEqual(await authenticator.authenticate(ADMIN_AUTH), {
      kind: 'admin',
      name: 'admin',
    });
  }
  assert.equal(authenticator.passwordChecks, 1);
  const wrong = basicAuth(ADMIN_NAME, 'wrong');
  for (let i = 0; i < 3; i++) {
    assert.deepEqual(await authenticator.authenticate(wrong), { kind: 'rejected', name: 'admin' });
  }
  assert.equal(authenticator.passwordChecks, 4, 'failures are not cached');
});

test('credential cache expires and is bounded', async () => {
  let now = 0;
  const hash = await hashPassword('pw', FEW_ITERATIONS);
  const admins = ['a', 'b', 'c'].map((name) => ({ name, passwordHash: hash }));
  const authenticator = new Authenticator(admins, {
    cacheEntries: 2,
    cacheTtlMs: 1_000,
    now: () => now,
  });
  await authenticator.authenticate(basicAuth('a', 'pw'));
  await authenticator.authenticate(basicAuth('b', 'pw'));
  await authenticator.authenticate(basicAuth('c', 'pw'));
  assert.equal(authenticator.cacheSize, 2);
  assert.equal(authenticator.passwordChecks, 3);
  await authenticator.authenticate(basicAuth('c', 'pw'));
  assert.equal(authenticator.passwordChecks, 3, 'c is cached');
  await authenticator.authenticate(basicAuth('a', 'pw'));
  assert.equal(authenticator.passwordChecks, 4, 'a was evicted');
  now = 2_000;
  await authenticator.authenticate(basicAuth('a', 'pw'));
  assert.equal(authenticator.passwordChecks, 5, 'a expired');
});

test('public routes need no credentials', async (t) => {
  const server = await startServer(t);
  for (const url of ['/', '/_up']) {
    const response = await server.request('GET', url, { anonymous: true });
    assert.equal(response.statusCode, 200, url);
  }
});

test('anonymous requests get CouchDB reasons', async (t) => {
  const server = await startServer(t);
  await server.json('PUT', '/db', 201);
  const cases: [string, string, string][] = [
    ['GET', '/_all_dbs', 'You are not a server admin.'],
    ['GET', '/_uuids', 'You are not a server admin.'],
    ['GET', '/_node/_local/_system', 'You are not a server admin.'],
    ['PUT', '/other', 'You are not a server admin.'],
    ['DELETE', '/db', 'You are not a server admin.'],
    ['GET', '/db', 'You are not authorized to access this db.'],
    ['GET', '/db/doc', 'You are not authorized to access this db.'],
    ['GET', '/db/_all_docs', 'You are not authorized to access this db.'],
    ['POST', '/db/_bulk_docs', 'You are not authorized to access this db.'],
    ['GET', '/missing/_changes', 'You are not authorized to access this db.'],
  ];
  for (const [method, url, reason] of cases) {
    const response = await server.request(method, url, { anonymous: true, body: { docs: [] } });
    assertError(response, 401, 'unauthorized', reason);
    assert.equal(response.headers['www-authenticate'], undefined, `${method} ${url}`);
  }
  assert.equal(server.backend.openSnapshots, 0);
});

test('wrong credentials are rejected', async (t) => {
  const server = await startServer(t);
  const headers = [
    basicAuth(ADMIN_NAME, 'wrong'),
    basicAuth('nobody', ADMIN_PASSWORD),
    basicAuth('', ''),
  ];
  for (const authorization of headers) {
    const response = await server.request('GET', '/_all_dbs', { headers: { authorization } });
    assertError(response, 401, 'unauthorized', 'Name or password is incorrect.');
  }
  const bearer = await server.request('GET', '/_all_dbs', {
    headers: { authorization: 'Bearer x' },
  });
  assertError(bearer, 401, 'unauthorized', 'You are not a server admin.');
});

test('WWW-Authenticate only when the client asks', async (t) => {
  const server = await startServer(t);
  const response = await server.request('GET', '/_all_dbs', {
    anonymous: true,
    headers: { 'x-couchdb-www-authenticate': 'Basic realm="server"' },
  });
  assertError(response, 401, 'unauthorized');
  assert.equal(response.headers['www-authenticate'], 'Basic realm="server"');
});

test('unauthenticated bodies are rejected before size checks', async (t) => {
  const server = await startServer(t, { maxRequestBodyBytes: 100 });
  const response = await server.request('POST', '/db/_bulk_docs', {
    anonymous: true,
    body: 'x'.repeat(1_000),
  });
  assertError(response, 401, 'unauthorized');
});
