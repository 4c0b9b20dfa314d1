/**
 * Per-database access control over HTTP: every endpoint family, as each kind of caller, against
 * CouchDB 3.x's status codes and error bodies.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { assertError } from './harness.js';
import { CALLERS, type Caller, requestAs, startSecuredServer } from './security-support.js';

const NOT_MEMBER_ANONYMOUS = 'You are not authorized to access this db.';
const NOT_MEMBER = 'You are not allowed to access this db.';
const NOT_DB_ADMIN = 'You are not a db or server admin.';
const NOT_SERVER_ADMIN = 'You are not a server admin.';

/** Expected outcome per caller: a success status, or a denial (401/403 with its reason). */
type Expected = number | readonly [number, string];

interface Case {
  readonly method: string;
  /** `$` is replaced by a name unique to the caller, so writes do not conflict. */
  readonly url: string;
  readonly body?: unknown;
  readonly outcomes: Readonly<Record<Caller, Expected>>;
}

const MEMBER_READ = {
  anonymous: [401, NOT_MEMBER_ANONYMOUS],
  outsider: [403, NOT_MEMBER],
  member: 200,
  dbadmin: 200,
  admin: 200,
} as const;

function memberWrite(status: number) {
  return { ...MEMBER_READ, member: status, dbadmin: status, admin: status } as const;
}

function adminWrite(status: number) {
  return {
    anonymous: [401, NOT_DB_ADMIN],
    outsider: [403, NOT_DB_ADMIN],
    member: [403, NOT_DB_ADMIN],
    dbadmin: status,
    admin: status,
  } as const;
}

const SERVER_ADMIN_ONLY = (status: number) =>
  ({
    anonymous: [401, NOT_SERVER_ADMIN],
    outsider: [401, NOT_SERVER_ADMIN],
    member: [401, NOT_SERVER_ADMIN],
    dbadmin: [401, NOT_SERVER_ADMIN],
    admin: status,
  }) as const;

const CASES: readonly Case[] = [
  { method: 'GET', url: '/secured', outcomes: MEMBER_READ },
  { method: 'GET', url: '/secured/existing', outcomes: MEMBER_READ },
  { method: 'GET', url: '/secured/_all_docs', outcomes: MEMBER_READ },
  { method: 'GET', url: '/secured/_changes', outcomes: MEMBER_READ },
  { method: 'GET', url: '/secured/_security', outcomes: MEMBER_READ },
  { method: 'GET', url: '/secured/_revs_limit', outcomes: MEMBER_READ },
  {
    method: 'POST',
    url: '/secured/_revs_diff',
    body: { existing: ['1-x'] },
    outcomes: MEMBER_READ,
  },
  {
    method: 'POST',
    url: '/secured/_bulk_get',
    body: { docs: [{ id: 'existing' }] },
    outcomes: MEMBER_READ,
  },
  { method: 'PUT', url: '/secured/doc-$', body: { a: 1 }, outcomes: memberWrite(201) },
  { method: 'POST', url: '/secured', body: { _id: 'post-$' }, outcomes: memberWrite(201) },
  { method: 'PUT', url: '/secured/_local/cp-$', body: { a: 1 }, outcomes: memberWrite(201) },
  {
    method: 'POST',
    url: '/secured/_bulk_docs',
    body: { docs: [{ _id: 'bulk-$' }] },
    outcomes: memberWrite(201),
  },
  { method: 'PUT', url: '/secured/_design/d-$', body: { views: {} }, outcomes: adminWrite(201) },
  { method: 'PUT', url: '/secured/_revs_limit', body: 50, outcomes: adminWrite(200) },
  { method: 'POST', url: '/secured/_compact', body: {}, outcomes: adminWrite(501) },
  { method: 'GET', url: '/_all_dbs', outcomes: SERVER_ADMIN_ONLY(200) },
  { method: 'GET', url: '/_node/_local/_system', outcomes: SERVER_ADMIN_ONLY(200) },
  { method: 'PUT', url: '/made-by-$', outcomes: SERVER_ADMIN_ONLY(201) },
  { method: 'GET', url: '/secured/_raft', outcomes: SERVER_ADMIN_ONLY(200) },
];

function check(response: { statusCode: number; body: string }, expected: Expected, what: string) {
  if (typeof expected === 'number') {
    assert.equal(response.statusCode, expected, `${what}: ${response.body}`);
    return;
  }
  const [status, reason] = expected;
  assertError(response as never, status, status === 401 ? 'unauthorized' : 'forbidden', reason);
}

test('every endpoint family as every caller', async (t) => {
  const server = await startSecuredServer(t);
  for (const { method, url, body, outcomes } of CASES) {
    for (const caller of CALLERS) {
      const target = url.replace('$', caller);
      const sent =
        body === undefined ? undefined : JSON.parse(JSON.stringify(body).replace('$', caller));
      const response = await requestAs(server, caller, method, target, sent);
      check(response, outcomes[caller], `${caller} ${method} ${target}`);
    }
  }
  assert.equal(server.backend.openSnapshots, 0);
});

test('design documents in _bulk_docs need a db admin', async (t) => {
  const server = await startSecuredServer(t);
  const body = { docs: [{ _id: 'plain' }, { _id: '_design/sneaky' }] };
  const denied = await requestAs(server, 'member', 'POST', '/secured/_bulk_docs', body);
  assertError(denied, 403, 'forbidden', NOT_DB_ADMIN);
  const allowed = await requestAs(server, 'dbadmin', 'POST', '/secured/_bulk_docs', body);
  assert.equal(allowed.statusCode, 201, allowed.body);
});

test('writes carry the caller and access level', async (t) => {
  const server = await startSecuredServer(t);
  const before = server.backend.authorizations.length;
  await requestAs(server, 'member', 'PUT', '/secured/carried', { a: 1 });
  await requestAs(server, 'dbadmin', 'PUT', '/secured/_design/carried', {});
  await requestAs(server, 'dbadmin', 'PUT', '/secured/_security', { members: { names: [] } });
  const carried = server.backend.authorizations.slice(before);
  assert.deepEqual(carried, [
    { user: { name: 'member', roles: [] }, access: 'member' },
    { user: { name: 'dbadmin', roles: [] }, access: 'admin' },
    { user: { name: 'dbadmin', roles: [] }, access: 'admin' },
  ]);
});

test('roles grant membership and admin rights', async (t) => {
  const server = await startSecuredServer(t);
  await server.json('PUT', '/_users/org.couchdb.user:reader', 201, {
    body: { name: 'reader', type: 'user', roles: ['readers'], password: 'pw' },
  });
  const auth = { authorization: `Basic ${Buffer.from('reader:pw').toString('base64')}` };
  const before = await server.request('GET', '/secured', { anonymous: true, headers: auth });
  assertError(before, 403, 'forbidden', NOT_MEMBER);
  await server.json('PUT', '/secured/_security', 200, {
    body: { admins: { roles: ['readers'] }, members: { names: ['member'] } },
  });
  const after = await server.request('PUT', '/secured/_design/by-role', {
    anonymous: true,
    headers: auth,
    body: {},
  });
  assert.equal(after.statusCode, 201, after.body);
});

test('empty members follow default security', async (t) => {
  for (const mode of ['admin_only', 'everyone'] as const) {
    const server = await startSecuredServer(t, { security: { defaultSecurity: mode } });
    server.backend.defaultSecurity = mode;
    await server.json('PUT', '/open', 201);
    const read = await requestAs(server, 'anonymous', 'GET', '/open');
    const write = await requestAs(server, 'outsider', 'PUT', '/open/doc', { a: 1 });
    const design = await requestAs(server, 'outsider', 'PUT', '/open/_design/d', {});
    if (mode === 'everyone') {
      assert.equal(read.statusCode, 200, read.body);
      assert.equal(write.statusCode, 201, write.body);
    } else {
      assertError(read, 401, 'unauthorized', NOT_MEMBER_ANONYMOUS);
      assertError(write, 403, 'forbidden', NOT_MEMBER);
    }
    assertError(design, 403, 'forbidden', NOT_DB_ADMIN);
  }
});

test('missing databases reveal nothing to outsiders', async (t) => {
  const server = await startSecuredServer(t);
  const anonymous = await requestAs(server, 'anonymous', 'GET', '/nowhere');
  assertError(anonymous, 401, 'unauthorized', NOT_MEMBER_ANONYMOUS);
  const outsider = await requestAs(server, 'outsider', 'GET', '/nowhere/doc');
  assertError(outsider, 403, 'forbidden', NOT_MEMBER);
  const admin = await requestAs(server, 'admin', 'GET', '/nowhere');
  assertError(admin, 404, 'not_found', 'Database does not exist.');
});
