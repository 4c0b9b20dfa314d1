/**
 * Larger abuse runs against one in-process server on 127.0.0.1 (`npm run test:full` only):
 * thousands of open feeds from one user and from anonymous callers, and a request body past
 * the limit, while the server keeps serving others and loses no write.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ADMIN_AUTH, listen } from '../http/harness.js';
import { authorizationOf, type Caller, startSecuredServer } from '../http/security-support.js';

const FEEDS = 2_000;
const CAP = 100;

async function openFeed(base: string, caller: Caller, path: string) {
  const controller = new AbortController();
  const response = await fetch(`${base}${path}?feed=continuous&heartbeat=60000`, {
    headers: authorizationOf(caller),
    signal: controller.signal,
  });
  if (response.status !== 200) await response.text();
  // The response stays referenced, because undici cancels the body of a response that is
  // garbage-collected unread (nodejs/undici#3199), and that closes the feed early.
  return { status: response.status, response, close: () => controller.abort() };
}

test('thousands of feeds from one caller', async (t) => {
  const server = await startSecuredServer(t, {
    limits: { maxFeedsPerCaller: CAP },
    security: { defaultSecurity: 'everyone' },
  });
  server.backend.defaultSecurity = 'everyone';
  await server.json('PUT', '/open', 201);
  const base = await listen(server);

  for (const [caller, path] of [
    ['member', '/secured/_changes'],
    ['anonymous', '/open/_changes'],
  ] as const) {
    const feeds = await Promise.all(
      Array.from({ length: FEEDS }, () => openFeed(base, caller, path)),
    );
    const accepted = feeds.filter((feed) => feed.status === 200).length;
    const rejected = feeds.filter((feed) => feed.status === 429).length;
    assert.equal(accepted, CAP, caller);
    assert.equal(rejected, FEEDS - CAP, caller);

    const write = await fetch(`${base}/secured/during-${caller}`, {
      method: 'PUT',
      headers: { authorization: ADMIN_AUTH, 'content-type': 'application/json' },
      body: '{}',
    });
    assert.equal(write.status, 201, await write.text());
    for (const feed of feeds) feed.close();
  }
  const docs = await server.json('GET', '/secured/_all_docs', 200);
  assert.deepEqual(
    docs.rows.map((row: { id: string }) => row.id),
    ['during-anonymous', 'during-member', 'existing'],
  );
});

test('a body past the limit is rejected', async (t) => {
  const server = await startSecuredServer(t, { limits: { maxRequestBodyBytes: 1024 * 1024 } });
  const base = await listen(server);
  const big = Buffer.alloc(2 * 1024 * 1024, 'a');
  const response = await fetch(`${base}/secured/big`, {
    method: 'PUT',
    headers: { authorization: ADMIN_AUTH, 'content-type': 'application/json' },
    body: big,
  }).catch((error: unknown) => error);
  if (response instanceof Response) assert.equal(response.status, 413);
  const after = await server.json('GET', '/secured/existing', 200);
  assert.equal(after.value, 1);
});
