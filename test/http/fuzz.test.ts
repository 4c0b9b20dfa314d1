/**
 * Bad input of every kind: random bytes, random JSON and random paths against every route.
 * Each reply must be a 2xx, 3xx or 4xx (or the 501 of an unimplemented route), carry CouchDB's headers, and an error
 * must have CouchDB's body shape. Long feeds are given `timeout=0` so nothing waits.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import type { LightMyRequestResponse } from 'fastify';
import { seed, startServer } from './harness.js';

const METHODS = ['GET', 'HEAD', 'PUT', 'POST', 'DELETE', 'COPY'];
const PATHS = [
  '/',
  '/_all_dbs',
  '/_uuids',
  '/db',
  '/db/doc',
  '/db/_design/app',
  '/db/_local/check',
  '/db/_all_docs',
  '/db/_bulk_docs',
  '/db/_bulk_get',
  '/db/_revs_diff',
  '/db/_changes',
  '/db/_revs_limit',
  '/db/_security',
  '/db/_ensure_full_commit',
  '/missing/_changes',
];
const QUERY_NAMES = [
  'rev',
  'revs',
  'open_revs',
  'latest',
  'keys',
  'key',
  'startkey',
  'endkey',
  'limit',
  'skip',
  'descending',
  'include_docs',
  'since',
  'feed',
  'style',
  'filter',
  'doc_ids',
  'heartbeat',
  'seq_interval',
  'new_edits',
  'count',
  'conflicts',
];

function checkReply(response: LightMyRequestResponse, label: string): void {
  // 501 is the deliberate reply for routes Divan does not implement yet (views, _find).
  const deliberate = response.statusCode === 501;
  assert.ok(
    response.statusCode < 500 || deliberate,
    `${label}: ${response.statusCode} ${response.body}`,
  );
  assert.match(String(response.headers['x-couch-request-id']), /^[0-9a-f]{10}$/, label);
  if (response.statusCode >= 400 && response.body !== '') {
    assert.equal(response.headers['content-type'], 'application/json', label);
    const body = JSON.parse(response.body);
    assert.equal(typeof body.error, 'string', label);
    assert.equal(typeof body.reason, 'string', label);
  }
}

const jsonValue = fc.jsonValue({ maxDepth: 4 });
const body = fc.oneof(
  fc.uint8Array({ maxLength: 200 }).map((bytes) => Buffer.from(bytes)),
  jsonValue.map((value) => JSON.stringify(value)),
  fc
    .record({ docs: fc.array(jsonValue, { maxLength: 5 }), new_edits: fc.boolean() })
    .map((v) => JSON.stringify(v)),
  fc.dictionary(fc.string(), fc.array(fc.string(), { maxLength: 3 })).map((v) => JSON.stringify(v)),
  fc
    .record({ _id: fc.string(), _rev: fc.string(), _revisions: jsonValue, _deleted: jsonValue })
    .map((v) => JSON.stringify(v)),
);
const query = fc
  .array(
    fc.tuple(
      fc.constantFrom(...QUERY_NAMES),
      fc.oneof(
        fc.string(),
        jsonValue.map((v) => JSON.stringify(v)),
      ),
    ),
    {
      maxLength: 4,
    },
  )
  .map((pairs) => {
    const params = new URLSearchParams(pairs);
    params.set('timeout', '0');
    return params.toString();
  });

test('random requests never fail with 500', async (t) => {
  const server = await startServer(t);
  await seed(server, 'db', [{ _id: 'doc', v: 1 }, { _id: '_design/app' }]);
  await server.json('PUT', '/db/_local/check', 201, { body: {} });
  await fc.assert(
    fc.asyncProperty(
      fc.constantFrom(...METHODS),
      fc.constantFrom(...PATHS),
      query,
      body,
      fc.constantFrom('application/json', 'text/plain', 'application/json; charset=utf-8', ''),
      async (method, path, search, payload, contentType) => {
        const headers: Record<string, string> = { destination: 'copy' };
        if (contentType !== '') headers['content-type'] = contentType;
        const response = await server.request(method, `${path}?${search}`, {
          body: payload,
          headers,
        });
        checkReply(response, `${method} ${path}?${search}`);
      },
    ),
    { numRuns: 1_500 },
  );
  assert.equal(server.backend.openSnapshots, 0);
});

test('random paths never fail with 500', async (t) => {
  const server = await startServer(t);
  await seed(server, 'db', [{ _id: 'doc' }]);
  const segment = fc.oneof(
    fc.string(),
    fc.constantFrom(
      '_design',
      '_local',
      '_all_docs',
      '_changes',
      '_node',
      '_local',
      'db',
      '%',
      '%2F',
      '%FF',
      '..',
    ),
  );
  await fc.assert(
    fc.asyncProperty(
      fc.constantFrom(...METHODS),
      fc.array(segment, { maxLength: 5 }),
      async (method, segments) => {
        const path = `/${segments.map((part) => part.replace(/[?#\s]/g, '')).join('/')}`;
        const response = await server.request(method, encodeURI(path).replace(/%25/g, '%'), {
          body: '{}',
        });
        checkReply(response, `${method} ${path}`);
      },
    ),
    { numRuns: 1_000 },
  );
});
