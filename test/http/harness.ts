/**
 * Shared setup for HTTP tests: a server over a `MemoryBackend` with one admin, requests
 * through `inject()` with the admin's credentials, and a listening server on 127.0.0.1 for
 * streaming tests. Passwords are hashed with few PBKDF2 iterations to keep tests fast.
 */
import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { hashPassword } from '../../src/http/auth.js';
import type { HttpLimits } from '../../src/http/limits.js';
import { createHttpServer, type HttpServerOptions } from '../../src/http/server.js';
import { MemoryBackend } from './memory-backend.js';

/** A parsed reply; tests read its fields directly and assert each one. */
// biome-ignore lint/suspicious/noExplicitAny: reply shapes vary per route and are asserted field by field
export type JsonReply = any;

export const ADMIN_NAME = 'admin';
export const ADMIN_PASSWORD = 'p@ss wörd:with colon';
const TEST_ITERATIONS = 1_000;

let cachedHash: Promise<string> | null = null;

export function adminHash(): Promise<string> {
  cachedHash ??= hashPassword(ADMIN_PASSWORD, TEST_ITERATIONS);
  return cachedHash;
}

export function basicAuth(name: string, password: string): string {
  return `Basic ${Buffer.from(`${name}:${password}`).toString('base64')}`;
}

export const ADMIN_AUTH = basicAuth(ADMIN_NAME, ADMIN_PASSWORD);

export interface RequestOptions {
  readonly body?: unknown;
  readonly headers?: Record<string, string>;
  /** Send no Authorization header. */
  readonly anonymous?: boolean;
}

export class TestServer {
  constructor(
    readonly app: FastifyInstance,
    readonly backend: MemoryBackend,
  ) {}

  /** Sends a request as the admin; a non-Buffer, non-string body is sent as JSON. */
  request(
    method: string,
    url: string,
    options: RequestOptions = {},
  ): Promise<LightMyRequestResponse> {
    const headers: Record<string, string> = { ...options.headers };
    if (!options.anonymous) headers.authorization ??= ADMIN_AUTH;
    let payload: string | Buffer | undefined;
    if (options.body !== undefined) {
      payload =
        typeof options.body === 'string' || Buffer.isBuffer(options.body)
          ? options.body
          : JSON.stringify(options.body);
      headers['content-type'] ??= 'application/json';
    }
    return this.app.inject({
      method: method as 'GET',
      url,
      headers,
      ...(payload === undefined ? {} : { payload }),
    });
  }

  /** Sends a request and returns the parsed JSON body after checking the status. */
  async json(
    method: string,
    url: string,
    status: number,
    options: RequestOptions = {},
  ): Promise<JsonReply> {
    const response = await this.request(method, url, options);
    assert.equal(response.statusCode, status, `${method} ${url}: ${response.body}`);
    assertJsonReply(response);
    return response.body === '' ? undefined : JSON.parse(response.body);
  }
}

/** Checks the headers every JSON reply carries. */
export function assertJsonReply(response: LightMyRequestResponse): void {
  assert.equal(response.headers['content-type'], 'application/json');
  assert.match(String(response.headers['x-couch-request-id']), /^[0-9a-f]{10}$/);
}

/** Checks a CouchDB error reply. */
export function assertError(
  response: LightMyRequestResponse,
  status: number,
  error: string,
  reason?: string | RegExp,
): void {
  assert.equal(response.statusCode, status, response.body);
  assertJsonReply(response);
  const body = JSON.parse(response.body);
  assert.deepEqual(Object.keys(body), ['error', 'reason']);
  assert.equal(body.error, error);
  if (typeof reason === 'string') assert.equal(body.reason, reason);
  else if (reason !== undefined) assert.match(body.reason, reason);
}

export async function startServer(
  t: TestContext,
  limits: Partial<HttpLimits> = {},
  options: Partial<HttpServerOptions> = {},
): Promise<TestServer> {
  const backend = new MemoryBackend();
  const app = createHttpServer({
    backend,
    admins: [{ name: ADMIN_NAME, passwordHash: await adminHash() }],
    limits,
    version: '0.1.0',
    ...options,
  });
  t.after(() => app.close());
  await app.ready();
  return new TestServer(app, backend);
}

/** Starts listening on a free port of 127.0.0.1 and returns the base URL. */
export async function listen(server: TestServer): Promise<string> {
  await server.app.listen({ host: '127.0.0.1', port: 0 });
  const address = server.app.server.address();
  assert.ok(address !== null && typeof address === 'object');
  return `http://127.0.0.1:${address.port}`;
}

/** Creates a database and writes `docs` to it through `_bulk_docs`; returns the results. */
export async function seed(server: TestServer, db: string, docs: unknown[]): Promise<JsonReply[]> {
  const existing = await server.request('GET', `/${db}`);
  if (existing.statusCode === 404) await server.json('PUT', `/${db}`, 201);
  return server.json('POST', `/${db}/_bulk_docs`, 201, { body: { docs } });
}
