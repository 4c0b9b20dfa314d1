/**
 * The cluster benchmark's load generator against a real HTTP server on 127.0.0.1: every run
 * stops at its request bound, the status census counts every response, only the success
 * status counts as success, and the latency histogram contains exactly the successful requests.
 * Also the histogram's percentiles and the profile layer names, which the reports rely on.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { after, before, test } from 'node:test';
import fc from 'fast-check';
import { type Operation, runLoad } from '../../bench/load/generator.js';
import { LatencyHistogram } from '../../bench/load/histogram.js';
import { within } from '../../bench/load/timeout.js';
import { layerOf } from '../../bench/peers/cpu-profile.js';
import { freePort } from '../support/ports.js';

const HTTP_CREATED = 201;
const HTTP_CONFLICT = 409;
/** Generous bounds: every run here ends by its request count long before them. */
const RUN_SECONDS = 60;
const REQUEST_TIMEOUT_MS = 10_000;

let server: Server;
let origin: string;
/** Paths the server received, to check that every request was sent once. */
const received: string[] = [];

before(async () => {
  const port = await freePort();
  server = createServer((request, response) => {
    received.push(request.url ?? '');
    // A request to `/s/<status>/...` gets that status.
    const status = Number(/^\/s\/(\d{3})\//.exec(request.url ?? '')?.[1] ?? 500);
    response.writeHead(status, { 'content-type': 'application/json' });
    response.end('{}');
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  origin = `http://127.0.0.1:${port}`;
});

after(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

/** Builds an operation whose request `index` gets the status `statuses[index]`. */
function operationFor(statuses: readonly number[]): Operation {
  return {
    successStatus: HTTP_CREATED,
    build: (index) => ({
      origin,
      method: 'PUT',
      path: `/s/${statuses[index]}/${index}`,
      headers: {},
      body: '{}',
    }),
  };
}

test('closed loop counts every response', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.constantFrom(HTTP_CREATED, HTTP_CONFLICT, 503), { minLength: 1, maxLength: 60 }),
      fc.integer({ min: 1, max: 8 }),
      async (statuses, clients) => {
        received.length = 0;
        const result = await runLoad(operationFor(statuses), {
          label: 'test',
          mode: 'closed',
          clients,
          maxRequests: statuses.length,
          maxSeconds: RUN_SECONDS,
          requestTimeoutMs: REQUEST_TIMEOUT_MS,
        });
        const created = statuses.filter((status) => status === HTTP_CREATED).length;
        assert.equal(result.stoppedBy, 'requests');
        assert.equal(result.requests, statuses.length);
        assert.equal(received.length, statuses.length);
        assert.equal(new Set(received).size, statuses.length);
        assert.equal(result.successfulRequests, created);
        assert.equal(result.items, created);
        assert.equal(result.latency.count, created);
        const censusTotal = Object.values(result.census).reduce((sum, count) => sum + count, 0);
        assert.equal(censusTotal, statuses.length);
        assert.equal(result.census[String(HTTP_CREATED)] ?? 0, created);
      },
    ),
    { numRuns: 15 },
  );
});

test('open loop stops at its request bound', async () => {
  const statuses = Array.from({ length: 40 }, (_, i) => (i % 4 === 0 ? HTTP_CONFLICT : 201));
  received.length = 0;
  const result = await runLoad(operationFor(statuses), {
    label: 'test',
    mode: 'open',
    clients: 4,
    ratePerSecond: 2000,
    maxRequests: statuses.length,
    maxSeconds: RUN_SECONDS,
    requestTimeoutMs: REQUEST_TIMEOUT_MS,
  });
  assert.equal(result.stoppedBy, 'requests');
  assert.equal(result.requests, statuses.length);
  assert.equal(received.length, statuses.length);
  assert.equal(result.successfulRequests, 30);
  assert.equal(result.census[String(HTTP_CONFLICT)], 10);
  assert.equal(result.latency.count, 30);
});

test('network errors go to the census', async () => {
  const closedPort = await freePort();
  const result = await runLoad(
    {
      successStatus: HTTP_CREATED,
      build: () => ({
        origin: `http://127.0.0.1:${closedPort}`,
        method: 'GET',
        path: '/',
        headers: {},
      }),
    },
    {
      label: 'test',
      mode: 'closed',
      clients: 2,
      maxRequests: 6,
      maxSeconds: RUN_SECONDS,
      requestTimeoutMs: REQUEST_TIMEOUT_MS,
    },
  );
  assert.equal(result.requests, 6);
  assert.equal(result.successfulRequests, 0);
  assert.equal(result.census['error:ECONNREFUSED'], 6);
});

test('histogram percentiles match nearest rank', () => {
  fc.assert(
    fc.property(
      fc.array(fc.integer({ min: 1, max: 5_000_000 }), { minLength: 1, maxLength: 300 }),
      fc.constantFrom(0.5, 0.9, 0.99),
      (microseconds, fraction) => {
        const histogram = new LatencyHistogram();
        for (const value of microseconds) histogram.recordMs(value / 1000);
        const sorted = [...microseconds].sort((a, b) => a - b);
        const rank = Math.max(1, Math.ceil(sorted.length * fraction - 1e-9));
        const exact = sorted[rank - 1]! / 1000;
        const measured = histogram.percentileMs(fraction);
        histogram.destroy();
        // Three significant digits: within 0.1% of the recorded value, plus one microsecond.
        assert.ok(Math.abs(measured - exact) <= exact * 0.001 + 0.001, `${measured} vs ${exact}`);
      },
    ),
  );
});

test('within returns the fallback after its bound', async () => {
  const never = new Promise<string>(() => {});
  assert.equal(await within(never, 5, 'fallback'), 'fallback');
  assert.equal(await within(Promise.resolve('value'), 60_000, 'fallback'), 'value');
});

test('profile layers by script URL', () => {
  const cases: Array<[string, string, string]> = [
    ['(garbage collector)', '', 'v8/gc'],
    ['(idle)', '', 'v8/idle'],
    ['(program)', '', 'v8/program'],
    ['writeBuffer', '', 'native'],
    ['stage', 'file:///work/divan/dist/src/engine/database-file.js', 'divan/engine'],
    ['main', 'file:///work/divan/dist/bench/cluster.js', 'divan/bench'],
    ['runLoad', 'file:///work/divan/dist/bench/load/generator.js', 'divan/bench'],
    ['route', 'file:///work/divan/node_modules/fastify/lib/route.js', 'npm/fastify'],
    ['read', 'file:///w/node_modules/@node-rs/crc32/index.js', 'npm/@node-rs/crc32'],
    ['write', 'node:net', 'node/net'],
    ['loader', 'node:internal/modules/cjs/loader', 'node/modules'],
  ];
  for (const [functionName, url, layer] of cases) {
    assert.equal(layerOf({ functionName, url }), layer, `${functionName} ${url}`);
  }
});
