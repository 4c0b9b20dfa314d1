/**
 * `_users` over HTTP: passwords hashed before they are stored, signing up, reading and changing
 * one's own document only, and users authenticating with Basic credentials.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Authenticator, hashPassword } from '../../src/http/auth.js';
import { userStore } from '../../src/http/users.js';
import { assertError, basicAuth } from './harness.js';
import {
  requestAs,
  startSecuredServer,
  TEST_USER_ITERATIONS,
  USER_PASSWORD,
} from './security-support.js';

const MEMBER_DOC = '/_users/org.couchdb.user:member';

test('passwords are stored only as PBKDF2 hashes', async (t) => {
  const server = await startSecuredServer(t);
  const doc = await server.json('GET', MEMBER_DOC, 200);
  assert.equal(doc.password, undefined);
  assert.equal(doc.password_scheme, 'pbkdf2');
  assert.equal(doc.pbkdf2_prf, 'sha256');
  assert.equal(doc.iterations, TEST_USER_ITERATIONS);
  assert.match(doc.salt, /^[0-9a-f]{32}$/);
  assert.match(doc.derived_key, /^[0-9a-f]{64}$/);
  const changes = await server.json('GET', '/_users/_changes?include_docs=true', 200);
  for (const row of changes.results) {
    assert.equal(JSON.stringify(row.doc).includes(USER_PASSWORD), false, row.id);
  }
});

test('users read only their own document', async (t) => {
  const server = await startSecuredServer(t);
  const own = await requestAs(server, 'member', 'GET', MEMBER_DOC);
  assert.equal(own.statusCode, 200, own.body);
  const other = await requestAs(server, 'outsider', 'GET', MEMBER_DOC);
  assertError(other, 404, 'not_found', 'missing');
  const anonymous = await requestAs(server, 'anonymous', 'GET', MEMBER_DOC);
  assertError(anonymous, 401, 'unauthorized');
  for (const url of ['/_users', '/_users/_all_docs', '/_users/_changes', '/_users/_security']) {
    const response = await requestAs(server, 'member', 'GET', url);
    assertError(response, 403, 'forbidden', 'You are not a server admin.');
  }
});

test('anyone signs up without roles', async (t) => {
  const server = await startSecuredServer(t);
  const signup = await requestAs(server, 'anonymous', 'PUT', '/_users/org.couchdb.user:newbie', {
    name: 'newbie',
    type: 'user',
    roles: [],
    password: 'pw1',
  });
  assert.equal(signup.statusCode, 201, signup.body);
  const login = await server.request('GET', '/_session', {
    anonymous: true,
    headers: { authorization: basicAuth('newbie', 'pw1') },
  });
  assert.equal(JSON.parse(login.body).userCtx.name, 'newbie');

  const withRoles = await requestAs(server, 'anonymous', 'PUT', '/_users/org.couchdb.user:boss', {
    name: 'boss',
    type: 'user',
    roles: ['boss'],
    password: 'pw',
  });
  assertError(withRoles, 403, 'forbidden', 'Only server admins may change roles.');
});

test('user documents are validated', async (t) => {
  const server = await startSecuredServer(t);
  const cases: [string, unknown, RegExp][] = [
    ['org.couchdb.user:a', { name: 'b', type: 'user', roles: [] }, /must be org.couchdb.user:b/],
    ['org.couchdb.user:a', { name: 'a', type: 'admin', roles: [] }, /type must be user/],
    ['org.couchdb.user:a', { name: 'a', type: 'user', roles: 'x' }, /roles must be a list/],
    ['org.couchdb.user:a', { name: 'a', type: 'user', roles: ['_admin'] }, /reserved/],
    ['org.couchdb.user:_a', { name: '_a', type: 'user', roles: [] }, /reserved/],
    ['plain', { name: 'plain', type: 'user', roles: [] }, /org.couchdb.user:NAME/],
    ['org.couchdb.user:a', { name: 'a', type: 'user', roles: [], password: 5 }, /password/],
  ];
  for (const [id, body, reason] of cases) {
    const response = await server.request('PUT', `/_users/${id}`, { body });
    assertError(response, 403, 'forbidden', reason);
  }
});

test('users change their own password and nothing else', async (t) => {
  const server = await startSecuredServer(t);
  const doc = await requestAs(server, 'member', 'GET', MEMBER_DOC).then((r) => JSON.parse(r.body));

  const promote = await requestAs(server, 'member', 'PUT', MEMBER_DOC, { ...doc, roles: ['x'] });
  assertError(promote, 403, 'forbidden', 'Only server admins may change roles.');

  const others = await requestAs(server, 'outsider', 'PUT', MEMBER_DOC, { ...doc, password: 'x' });
  assertError(others, 403, 'forbidden', 'You may only update your own user document.');

  const changed = await requestAs(server, 'member', 'PUT', MEMBER_DOC, {
    ...doc,
    password: 'new password',
  });
  assert.equal(changed.statusCode, 201, changed.body);
  const oldPassword = await requestAs(server, 'member', 'GET', '/secured');
  assertError(oldPassword, 401, 'unauthorized', 'Name or password is incorrect.');
  const newPassword = await server.request('GET', '/secured', {
    anonymous: true,
    headers: { authorization: basicAuth('member', 'new password') },
  });
  assert.equal(newPassword.statusCode, 200, newPassword.body);
});

test('users cannot replicate into _users', async (t) => {
  const server = await startSecuredServer(t);
  const response = await requestAs(server, 'member', 'POST', '/_users/_bulk_docs', {
    new_edits: false,
    docs: [{ _id: 'org.couchdb.user:x', _rev: '1-abc', name: 'x', type: 'user', roles: [] }],
  });
  assertError(response, 403, 'forbidden');
});

test('bulk user writes report each document', async (t) => {
  const server = await startSecuredServer(t);
  const response = await requestAs(server, 'anonymous', 'POST', '/_users/_bulk_docs', {
    docs: [
      { _id: 'org.couchdb.user:ok1', name: 'ok1', type: 'user', roles: [], password: 'p' },
      { _id: 'org.couchdb.user:bad', name: 'bad', type: 'user', roles: ['r'], password: 'p' },
    ],
  });
  assert.equal(response.statusCode, 201, response.body);
  const [first, second] = JSON.parse(response.body);
  assert.equal(first.ok, true);
  assert.equal(second.error, 'forbidden');
  assert.equal(second.id, 'org.couchdb.user:bad');
});

test('user credentials are cached until the password changes', async (t) => {
  const server = await startSecuredServer(t);
  const authenticator = new Authenticator(
    [{ name: 'root', passwordHash: await hashPassword('root', TEST_USER_ITERATIONS) }],
    {},
    userStore(server.backend),
  );
  const header = basicAuth('member', USER_PASSWORD);
  for (let i = 0; i < 3; i++) {
    const outcome = await authenticator.authenticate(header);
    assert.deepEqual(outcome, { kind: 'user', name: 'member', roles: [] });
  }
  assert.equal(authenticator.passwordChecks, 1);

  const doc = await server.json('GET', MEMBER_DOC, 200);
  await server.json('PUT', MEMBER_DOC, 201, { body: { ...doc, roles: ['promoted'] } });
  const promoted = await authenticator.authenticate(header);
  assert.deepEqual(promoted, { kind: 'user', name: 'member', roles: ['promoted'] });
  assert.equal(authenticator.passwordChecks, 1, 'a role change keeps the cached password');

  const current = await server.json('GET', MEMBER_DOC, 200);
  await server.json('PUT', MEMBER_DOC, 201, { body: { ...current, password: 'other' } });
  assert.equal((await authenticator.authenticate(header)).kind, 'rejected');
  assert.equal(authenticator.passwordChecks, 2);
});
