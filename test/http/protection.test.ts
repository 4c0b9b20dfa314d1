/**
 * What protects a node from its clients: CORS (off by default), the cap on open `_changes`
 * feeds per caller, and slowing down repeated wrong passwords.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Authenticator, hashPassword } from '../../src/http/auth.js';
import { FeedLimiter, feedKey } from '../../src/http/feed-limiter.js';
import { ADMIN_AUTH, basicAuth, listen, type TestServer } from './harness.js';
import { authorizationOf, type Caller, startSecuredServer } from './security-support.js';

const ORIGIN = 'https://app.example';

test('CORS is off by default', async (t) => {
  const server = await startSecuredServer(t);
  const response = await server.request('GET', '/', { headers: { origin: ORIGIN } });
  assert.equal(response.headers['access-control-allow-origin'], undefined);
  const preflight = await server.request('OPTIONS', '/secured', {
    anonymous: true,
    headers: { origin: ORIGIN, 'access-control-request-method': 'GET' },
  });
  assert.notEqual(preflight.statusCode, 204);
});

test('CORS preflights and requests', async (t) => {
  const server = await startSecuredServer(t, {
    cors: { origins: [ORIGIN], credentials: true, maxAgeS: 60 },
  });
  const preflight = await server.request('OPTIONS', '/secured/doc', {
    anonymous: true,
    headers: {
      origin: ORIGIN,
      'access-control-request-method': 'PUT',
      'access-control-request-headers': 'Content-Type, Authorization',
    },
  });
  assert.equal(preflight.statusCode, 204);
  assert.equal(preflight.headers['access-control-allow-origin'], ORIGIN);
  assert.equal(preflight.headers['access-control-allow-credentials'], 'true');
  assert.equal(preflight.headers['access-control-max-age'], '60');
  assert.match(String(preflight.headers['access-control-allow-methods']), /PUT/);

  const response = await server.request('GET', '/secured', { headers: { origin: ORIGIN } });
  assert.equal(response.statusCode, 200);
  assert.equal(response.headers['access-control-allow-origin'], ORIGIN);
  assert.match(String(response.headers['access-control-expose-headers']), /etag/);

  const denied: Record<string, string>[] = [
    { origin: 'https://evil.example', 'access-control-request-method': 'GET' },
    { origin: ORIGIN, 'access-control-request-method': 'PATCH' },
    {
      origin: ORIGIN,
      'access-control-request-method': 'GET',
      'access-control-request-headers': 'x-not-allowed',
    },
  ];
  for (const headers of denied) {
    const reply = await server.request('OPTIONS', '/secured', { anonymous: true, headers });
    assert.equal(reply.statusCode, 204);
    assert.equal(reply.headers['access-control-allow-origin'], undefined, JSON.stringify(headers));
  }
  const foreign = await server.request('GET', '/', { headers: { origin: 'https://evil.example' } });
  assert.equal(foreign.headers['access-control-allow-origin'], undefined);
});

test('CORS wildcard without credentials', async (t) => {
  const server = await startSecuredServer(t, { cors: { origins: ['*'] } });
  const response = await server.request('GET', '/', { headers: { origin: ORIGIN } });
  assert.equal(response.headers['access-control-allow-origin'], '*');
  assert.equal(response.headers['access-control-allow-credentials'], undefined);
});

/** Opens a continuous feed as `caller`; resolves with its status and a way to close it. */
async function openFeed(base: string, caller: Caller) {
  const controller = new AbortController();
  const response = await fetch(`${base}/secured/_changes?feed=continuous&heartbeat=60000`, {
    headers: authorizationOf(caller),
    signal: controller.signal,
  });
  if (response.status !== 200) await response.text();
  // The response stays referenced, because undici cancels the body of a response that is
  // garbage-collected unread (nodejs/undici#3199), and that closes the feed early.
  return {
    status: response.status,
    response,
    close: () => controller.abort(),
  };
}

async function openUntilAccepted(base: string, caller: Caller, attempts: number) {
  for (let i = 0; i < attempts; i++) {
    const feed = await openFeed(base, caller);
    if (feed.status === 200) return feed;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  assert.fail(`no feed accepted for ${caller} after ${attempts} attempts`);
}

async function feedCapScenario(server: TestServer, cap: number, attempts: number) {
  const base = await listen(server);
  const feeds = await Promise.all(Array.from({ length: attempts }, () => openFeed(base, 'member')));
  const accepted = feeds.filter((feed) => feed.status === 200);
  const rejected = feeds.filter((feed) => feed.status === 429);
  assert.equal(accepted.length, cap);
  assert.equal(rejected.length, attempts - cap);

  const other = await openFeed(base, 'dbadmin');
  assert.equal(other.status, 200, 'another user is not affected');
  const read = await fetch(`${base}/secured/existing`, { headers: { authorization: ADMIN_AUTH } });
  assert.equal(read.status, 200, 'the node keeps serving');
  await read.text();

  accepted[0]!.close();
  const again = await openUntilAccepted(base, 'member', 500);
  for (const feed of [...accepted, other, again]) feed.close();
}

test('open feeds are capped per user', async (t) => {
  const server = await startSecuredServer(t, { limits: { maxFeedsPerCaller: 20 } });
  await feedCapScenario(server, 20, 200);
});

test('feed limiter counts per key', () => {
  const limiter = new FeedLimiter(2);
  const alice = feedKey('alice', '10.0.0.1');
  const anonymous = feedKey(null, '10.0.0.1');
  limiter.acquire(alice);
  limiter.acquire(alice);
  assert.throws(() => limiter.acquire(alice), { status: 429, error: 'too_many_requests' });
  limiter.acquire(anonymous);
  limiter.release(alice);
  limiter.acquire(alice);
  assert.equal(limiter.openFeeds(alice), 2);
  assert.equal(limiter.callers, 2);
  limiter.release(alice);
  limiter.release(alice);
  limiter.release(anonymous);
  assert.equal(limiter.callers, 0);
});

test('repeated failures are slowed down', async () => {
  const delays: number[] = [];
  let now = 0;
  const authenticator = new Authenticator(
    [{ name: 'root', passwordHash: await hashPassword('right', 1_000) }],
    {
      freeFailures: 3,
      failureDelayMs: 100,
      maxFailureDelayMs: 1_000,
      failureWindowMs: 60_000,
      now: () => now,
      sleep: async (ms) => {
        delays.push(ms);
      },
    },
  );
  for (let i = 0; i < 8; i++) {
    assert.equal(
      (await authenticator.authenticate(basicAuth('root', `wrong${i}`))).kind,
      'rejected',
    );
  }
  assert.deepEqual(delays, [100, 200, 400, 800, 1_000]);

  const other = await authenticator.authenticate(basicAuth('someone', 'x'));
  assert.equal(other.kind, 'rejected');
  assert.equal(delays.length, 5, 'other names are not slowed down');

  assert.equal((await authenticator.authenticate(basicAuth('root', 'right'))).kind, 'admin');
  assert.equal(delays.length, 6, 'the right password waits too while slowed down');
  await authenticator.authenticate(basicAuth('root', 'wrong again'));
  assert.equal(delays.length, 6, 'a success forgets the failures');

  for (let i = 0; i < 6; i++) await authenticator.authenticate(basicAuth('root', 'bad'));
  const slowed = delays.length;
  assert.ok(slowed > 6);
  now = 120_000;
  await authenticator.authenticate(basicAuth('root', 'bad'));
  assert.equal(delays.length, slowed, 'failures expire after the window');
});

test('failure tracking is bounded', async () => {
  const authenticator = new Authenticator([], {
    failureEntries: 10,
    sleep: async () => undefined,
  });
  for (let i = 0; i < 50; i++) await authenticator.authenticate(basicAuth(`user${i}`, 'x'));
  assert.equal(authenticator.trackedFailures, 10);
});
