import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { test } from 'node:test';
import { resolveLimits } from '../../src/http/limits.js';
import { ADMIN_AUTH, assertError, listen, startServer } from './harness.js';

test('request body limit answers 413', async (t) => {
  const server = await startServer(t, { maxRequestBodyBytes: 1_000 });
  await server.json('PUT', '/db', 201);
  const body = JSON.stringify({ v: 'x'.repeat(2_000) });
  assertError(
    await server.request('PUT', '/db/doc', { body }),
    413,
    'too_large',
    'the request entity is too large',
  );
  await server.json('PUT', '/db/doc', 201, { body: { v: 'x'.repeat(100) } });
});

test('document size limit answers 413', async (t) => {
  const server = await startServer(t, { maxDocumentBytes: 100 });
  await server.json('PUT', '/db', 201);
  const big = { v: 'x'.repeat(200) };
  assertError(
    await server.request('PUT', '/db/doc', { body: big }),
    413,
    'document_too_large',
    'doc',
  );
  assertError(
    await server.request('POST', '/db/_bulk_docs', {
      body: { docs: [{ _id: 'small' }, { _id: 'big', ...big }] },
    }),
    413,
    'document_too_large',
    'big',
  );
  assert.equal((await server.json('GET', '/db', 200)).doc_count, 0);
});

test('JSON depth limit answers 400', async (t) => {
  const server = await startServer(t, { maxJsonDepth: 10 });
  await server.json('PUT', '/db', 201);
  const deep = `{"a":${'['.repeat(20)}${']'.repeat(20)}}`;
  assertError(
    await server.request('PUT', '/db/doc', { body: deep }),
    400,
    'bad_request',
    /nesting/,
  );
  const bulk = `{"docs":[${deep}]}`;
  assertError(
    await server.request('POST', '/db/_bulk_docs', { body: bulk }),
    400,
    'bad_request',
    /nesting/,
  );
  const query = encodeURIComponent('['.repeat(20) + ']'.repeat(20));
  assertError(await server.request('GET', `/db/_all_docs?keys=${query}`), 400, 'query_parse_error');
});

test('document id length limit', async (t) => {
  const server = await startServer(t, { maxDocIdBytes: 5 });
  await server.json('PUT', '/db', 201);
  assertError(
    await server.request('PUT', '/db/abcdef', { body: {} }),
    400,
    'illegal_docid',
    'Document id is too long',
  );
  await server.json('PUT', '/db/abcde', 201, { body: {} });
});

test('URL length limit answers 414', async (t) => {
  const server = await startServer(t, { maxUrlBytes: 200 });
  assertError(
    await server.request('GET', `/db/${'x'.repeat(300)}`),
    414,
    'too_long',
    'the request uri is too long',
  );
});

test('oversized headers answer 431 over a socket', async (t) => {
  const server = await startServer(t, { maxUrlBytes: 1_000, maxHeaderBytes: 2_000 });
  const base = await listen(server);
  const port = Number(new URL(base).port);
  const socket = connect(port, '127.0.0.1');
  const chunks: Buffer[] = [];
  socket.on('data', (chunk) => chunks.push(chunk));
  socket.write(`GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'y'.repeat(5_000)}\r\n\r\n`);
  await new Promise((resolve) => socket.on('close', resolve));
  const text = Buffer.concat(chunks).toString();
  assert.match(text, /^HTTP\/1\.1 431 /);
  assert.match(text, /content-type: application\/json/i);
  assert.ok(
    text.endsWith('{"error":"too_large","reason":"the request line and headers are too large"}\n'),
  );
  const ok = await fetch(`${base}/_up`, { headers: { authorization: ADMIN_AUTH } });
  assert.equal(ok.status, 200);
});

test('garbage on the socket answers 400', async (t) => {
  const server = await startServer(t);
  const base = await listen(server);
  const socket = connect(Number(new URL(base).port), '127.0.0.1');
  const chunks: Buffer[] = [];
  socket.on('data', (chunk) => chunks.push(chunk));
  socket.write('NOT AN HTTP REQUEST\r\n\r\n');
  await new Promise((resolve) => socket.on('close', resolve));
  assert.match(Buffer.concat(chunks).toString(), /^HTTP\/1\.1 400 [\s\S]*"error":"bad_request"/);
});

test('limits are checked when resolved', () => {
  assert.throws(() => resolveLimits({ maxJsonDepth: 0 }));
  assert.throws(() => resolveLimits({ maxBulkDocs: -1 }));
  assert.throws(() => resolveLimits({ maxUrlBytes: 10, maxHeaderBytes: 5 }));
  assert.equal(resolveLimits().maxDocumentBytes, 8_000_000);
});
