/**
 * The real HTTP server on 127.0.0.1 over an `EngineBackend` in a temp directory, with an admin,
 * for the engine's HTTP tests. Requests go through undici's `request`, which returns bodies as
 * sent (a gzip body stays gzip), so tests see the bytes the server wrote.
 */
import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import { request } from 'undici';
import { hashPassword } from '../../src/http/auth.js';
import { createHttpServer } from '../../src/http/server.js';
import { tempDir } from '../support/tmp.js';
import { EngineBackend } from './engine-backend.js';

/** The server admin every request authenticates as. */
export const ADMIN = { name: 'admin', password: 'secret' };
const PASSWORD_ITERATIONS = 1_000;

export interface Reply {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly bytes: Buffer;
  /** The body parsed as JSON; throws when it is not JSON. */
  // biome-ignore lint/suspicious/noExplicitAny: reply shapes vary per route and are asserted field by field
  json(): any;
}

export interface TestServer {
  readonly backend: EngineBackend;
  readonly dir: string;
  /** `http://127.0.0.1:<port>`. */
  readonly base: string;
  /** The `Authorization` header value of the admin. */
  readonly authorization: string;
  send(
    method: string,
    path: string,
    body?: unknown,
    headers?: Record<string, string>,
  ): Promise<Reply>;
}

/** Starts a server; a `body` that is a Buffer or string is sent as is, anything else as JSON. */
export async function startEngineServer(t: TestContext): Promise<TestServer> {
  const dir = await tempDir(t);
  const backend = new EngineBackend(dir);
  const app = createHttpServer({
    backend,
    admins: [
      { name: ADMIN.name, passwordHash: await hashPassword(ADMIN.password, PASSWORD_ITERATIONS) },
    ],
    version: '0.1.0',
  });
  t.after(async () => {
    await app.close();
    await backend.close();
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  assert.ok(address !== null && typeof address === 'object');
  const base = `http://127.0.0.1:${address.port}`;
  const authorization = `Basic ${Buffer.from(`${ADMIN.name}:${ADMIN.password}`).toString('base64')}`;
  const send: TestServer['send'] = async (method, path, body, headers = {}) => {
    const raw = body === undefined || Buffer.isBuffer(body) || typeof body === 'string';
    const response = await request(`${base}${path}`, {
      method: method as 'GET',
      headers: {
        authorization,
        ...(raw ? {} : { 'content-type': 'application/json' }),
        ...headers,
      },
      body: raw ? (body as Buffer | string | undefined) : JSON.stringify(body),
    });
    const bytes = Buffer.from(await response.body.arrayBuffer());
    return {
      status: response.statusCode,
      headers: response.headers,
      bytes,
      json: () => JSON.parse(bytes.toString('utf8')),
    };
  };
  return { backend, dir, base, authorization, send };
}
