/**
 * Shared setup for the security tests: a server with cookie sessions on, `_users` with three
 * users, and a database `secured` whose `_security` makes `dbadmin` its admin and `member` its
 * member. `outsider` is a user with no access to it.
 */
import type { TestContext } from 'node:test';
import type { LightMyRequestResponse } from 'fastify';
import type { HttpServerOptions } from '../../src/http/server.js';
import { ADMIN_AUTH, basicAuth, startServer, type TestServer } from './harness.js';

export const COOKIE_SECRET = Buffer.from('0123456789abcdef0123456789abcdef');
export const USER_PASSWORD = 'correct horse';
/** PBKDF2 iterations for users in tests, to keep them fast. */
export const TEST_USER_ITERATIONS = 1_000;
export const USERS = ['member', 'dbadmin', 'outsider'] as const;
export type Caller = 'anonymous' | (typeof USERS)[number] | 'admin';
export const CALLERS: readonly Caller[] = ['anonymous', 'outsider', 'member', 'dbadmin', 'admin'];

export const SECURITY = {
  admins: { names: ['dbadmin'], roles: [] },
  members: { names: ['member'], roles: [] },
};

export function authorizationOf(caller: Caller): Record<string, string> {
  if (caller === 'anonymous') return {};
  if (caller === 'admin') return { authorization: ADMIN_AUTH };
  return { authorization: basicAuth(caller, USER_PASSWORD) };
}

/** Sends a request as `caller`; a non-string body is sent as JSON. */
export function requestAs(
  server: TestServer,
  caller: Caller,
  method: string,
  url: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<LightMyRequestResponse> {
  return server.request(method, url, {
    anonymous: true,
    headers: { ...authorizationOf(caller), ...headers },
    ...(body === undefined ? {} : { body }),
  });
}

export async function createUser(server: TestServer, name: string, roles: string[] = []) {
  await server.json('PUT', `/_users/org.couchdb.user:${encodeURIComponent(name)}`, 201, {
    body: { name, type: 'user', roles, password: USER_PASSWORD },
  });
}

/** Starts a server with `_users`, the three users and the `secured` database. */
export async function startSecuredServer(
  t: TestContext,
  options: Partial<HttpServerOptions> = {},
): Promise<TestServer> {
  const server = await startServer(
    t,
    {},
    {
      security: {
        cookieSecret: COOKIE_SECRET,
        passwordIterations: TEST_USER_ITERATIONS,
        ...options.security,
      },
      ...(options.cors === undefined ? {} : { cors: options.cors }),
      ...(options.limits === undefined ? {} : { limits: options.limits }),
    },
  );
  await server.json('PUT', '/_users', 201);
  for (const name of USERS) await createUser(server, name);
  await server.json('PUT', '/secured', 201);
  await server.json('PUT', '/secured/_security', 200, { body: SECURITY });
  await server.json('PUT', '/secured/existing', 201, { body: { value: 1 } });
  return server;
}
