/**
 * Cookie sessions: logging in with JSON and form bodies, `GET /_session`, logging out, and
 * cookies that must not work (forged, expired, signed with another secret, or issued before a
 * password change).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import type { LightMyRequestResponse } from 'fastify';
import { parseSession, signSession } from '../../src/security/cookie.js';
import { assertError, type TestServer } from './harness.js';
import { COOKIE_SECRET, requestAs, startSecuredServer, USER_PASSWORD } from './security-support.js';

const MEMBER_DOC = '/_users/org.couchdb.user:member';

function sessionCookieOf(response: LightMyRequestResponse): string {
  const header = String(response.headers['set-cookie']);
  const match = /^AuthSession=([^;]*);/.exec(header);
  assert.ok(match !== null, header);
  return match[1]!;
}

function withCookie(server: TestServer, method: string, url: string, cookie: string) {
  return server.request(method, url, {
    anonymous: true,
    headers: { cookie: `other=1; AuthSession=${cookie}` },
  });
}

async function login(server: TestServer, name: string, password: string) {
  return server.request('POST', '/_session', { anonymous: true, body: { name, password } });
}

async function saltOf(server: TestServer, name: string): Promise<string> {
  const doc = await server.json('GET', `/_users/org.couchdb.user:${name}`, 200);
  return doc.salt;
}

test('login sets a cookie that authenticates', async (t) => {
  const server = await startSecuredServer(t);
  const response = await login(server, 'member', USER_PASSWORD);
  assert.equal(response.statusCode, 200, response.body);
  assert.deepEqual(JSON.parse(response.body), { ok: true, name: 'member', roles: [] });
  const header = String(response.headers['set-cookie']);
  assert.match(header, /; Path=\/; Max-Age=600; HttpOnly; SameSite=Lax$/);

  const cookie = sessionCookieOf(response);
  const read = await withCookie(server, 'GET', '/secured/existing', cookie);
  assert.equal(read.statusCode, 200, read.body);
  const session = JSON.parse((await withCookie(server, 'GET', '/_session', cookie)).body);
  assert.deepEqual(session, {
    ok: true,
    userCtx: { name: 'member', roles: [] },
    info: {
      authentication_handlers: ['cookie', 'default'],
      authenticated: 'cookie',
      authentication_db: '_users',
    },
  });
});

test('form logins and admin sessions work', async (t) => {
  const server = await startSecuredServer(t);
  const response = await server.request('POST', '/_session', {
    anonymous: true,
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: 'name=admin&password=p%40ss%20w%C3%B6rd%3Awith%20colon',
  });
  assert.equal(response.statusCode, 200, response.body);
  assert.deepEqual(JSON.parse(response.body).roles, ['_admin']);
  const list = await withCookie(server, 'GET', '/_all_dbs', sessionCookieOf(response));
  assert.equal(list.statusCode, 200, list.body);
});

test('wrong logins get 401', async (t) => {
  const server = await startSecuredServer(t);
  const bodies = [
    { name: 'member', password: 'wrong' },
    { name: 'nobody', password: USER_PASSWORD },
    { name: '', password: '' },
    { name: 'member' },
    { name: 5, password: USER_PASSWORD },
  ];
  for (const body of bodies) {
    const response = await server.request('POST', '/_session', { anonymous: true, body });
    assertError(response, 401, 'unauthorized', 'Name or password is incorrect.');
    assert.equal(response.headers['set-cookie'], undefined);
  }
});

test('GET /_session reports anonymous and Basic callers', async (t) => {
  const server = await startSecuredServer(t);
  const anonymous = JSON.parse((await requestAs(server, 'anonymous', 'GET', '/_session')).body);
  assert.deepEqual(anonymous, {
    ok: true,
    userCtx: { name: null, roles: [] },
    info: { authentication_handlers: ['cookie', 'default'] },
  });
  const basic = JSON.parse((await requestAs(server, 'admin', 'GET', '/_session')).body);
  assert.deepEqual(basic.userCtx, { name: 'admin', roles: ['_admin'] });
  assert.equal(basic.info.authenticated, 'default');
});

test('logout clears the cookie', async (t) => {
  const server = await startSecuredServer(t);
  const response = await server.request('DELETE', '/_session', { anonymous: true });
  assert.equal(response.statusCode, 200);
  assert.match(String(response.headers['set-cookie']), /^AuthSession=; .*Max-Age=0/);
});

test('next redirects only within the server', async (t) => {
  const server = await startSecuredServer(t);
  const body = { name: 'member', password: USER_PASSWORD };
  const local = await server.request('POST', '/_session?next=/secured', { anonymous: true, body });
  assert.equal(local.statusCode, 302);
  assert.equal(local.headers.location, '/secured');
  const away = await server.request('POST', '/_session?next=//evil.example', {
    anonymous: true,
    body,
  });
  assert.equal(away.statusCode, 200);
  assert.equal(away.headers.location, undefined);
});

test('expired and foreign cookies are anonymous', async (t) => {
  const server = await startSecuredServer(t);
  const salt = await saltOf(server, 'member');
  const nowS = Math.floor(Date.now() / 1000);
  const cookies = {
    expired: signSession(COOKIE_SECRET, 'member', nowS - 601, salt),
    otherSecret: signSession(Buffer.alloc(32, 7), 'member', nowS, salt),
    otherSalt: signSession(COOKIE_SECRET, 'member', nowS, 'f'.repeat(32)),
    unknownUser: signSession(COOKIE_SECRET, 'ghost', nowS, salt),
    garbage: 'not a cookie',
  };
  for (const [what, cookie] of Object.entries(cookies)) {
    const response = await withCookie(server, 'GET', '/secured', cookie);
    assertError(response, 401, 'unauthorized', 'You are not authorized to access this db.');
    assert.ok(what.length > 0);
  }
  const fresh = signSession(COOKIE_SECRET, 'member', nowS, salt);
  assert.equal((await withCookie(server, 'GET', '/secured', fresh)).statusCode, 200);
});

test('old cookies are refreshed', async (t) => {
  const server = await startSecuredServer(t);
  const salt = await saltOf(server, 'member');
  const nowS = Math.floor(Date.now() / 1000);
  const young = await withCookie(
    server,
    'GET',
    '/secured',
    signSession(COOKIE_SECRET, 'member', nowS, salt),
  );
  assert.equal(young.headers['set-cookie'], undefined);
  const old = await withCookie(
    server,
    'GET',
    '/secured',
    signSession(COOKIE_SECRET, 'member', nowS - 120, salt),
  );
  assert.equal(old.statusCode, 200);
  const refreshed = parseSession(sessionCookieOf(old));
  assert.ok(refreshed !== null && refreshed.issuedAtS >= nowS);
});

test('a password change ends sessions', async (t) => {
  const server = await startSecuredServer(t);
  const cookie = sessionCookieOf(await login(server, 'member', USER_PASSWORD));
  assert.equal((await withCookie(server, 'GET', '/secured', cookie)).statusCode, 200);
  const doc = await server.json('GET', MEMBER_DOC, 200);
  await server.json('PUT', MEMBER_DOC, 201, { body: { ...doc, password: 'changed' } });
  assertError(await withCookie(server, 'GET', '/secured', cookie), 401, 'unauthorized');
});

test('tampered cookies never authenticate', async (t) => {
  const server = await startSecuredServer(t);
  const cookie = sessionCookieOf(await login(server, 'member', USER_PASSWORD));
  await fc.assert(
    fc.asyncProperty(
      fc.nat({ max: cookie.length - 1 }),
      fc.constantFrom(...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.'),
      async (position, replacement) => {
        fc.pre(cookie[position] !== replacement);
        const tampered = cookie.slice(0, position) + replacement + cookie.slice(position + 1);
        const response = await withCookie(server, 'GET', '/secured', tampered);
        // A change in base64url padding bits can decode to the same bytes; that cookie is the
        // same cookie, so it may authenticate.
        const same = parseSession(tampered);
        const original = parseSession(cookie)!;
        const equivalent =
          same !== null &&
          same.name === original.name &&
          same.issuedAtS === original.issuedAtS &&
          same.mac.equals(original.mac);
        if (!equivalent) assert.equal(response.statusCode, 401, tampered);
      },
    ),
    { numRuns: 200 },
  );
});

test('sessions are off without a cookie secret', async (t) => {
  const server = await startSecuredServer(t, { security: { cookieSecret: null } });
  const response = await login(server, 'member', USER_PASSWORD);
  assertError(response, 501, 'not_implemented');
});
