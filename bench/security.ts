/**
 * `npm run bench -- security [--requests N]`: what authentication and access control cost per
 * request, in process (fastify `inject`, no sockets) over the in-memory test backend, so the
 * figures isolate the HTTP layer. Scenarios read one document of a database with a
 * `_security` object:
 * - as a server admin by Basic (cached credentials, no `_security` read);
 * - as a member by Basic (cached credentials, plus the `_security` read and check);
 * - as a member by `AuthSession` cookie (HMAC check and user lookup, plus the check);
 * and the first request of a user, which pays one PBKDF2 run at 50,000 iterations.
 */
import { performance } from 'node:perf_hooks';
import { hashPassword } from '../src/http/auth.js';
import { createHttpServer } from '../src/http/server.js';
import { MemoryBackend } from '../test/http/memory-backend.js';
import { BenchReport, progress } from './report.js';

const DEFAULT_REQUESTS = 5_000;
const COOKIE_SECRET = Buffer.from('bench-cookie-secret-0123456789abcdef');
const PASSWORD = 'bench password';
const MS_PER_SECOND = 1_000;
/** Measured rounds; one more round runs first, unmeasured. */
const ROUNDS = 5;

function basic(name: string): string {
  return `Basic ${Buffer.from(`${name}:${PASSWORD}`).toString('base64')}`;
}

function parseRequests(args: string[]): number {
  const index = args.indexOf('--requests');
  if (index < 0) return DEFAULT_REQUESTS;
  const value = Number(args[index + 1]);
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new Error(`invalid --requests '${args[index + 1]}': expected a positive integer`);
  }
  return value;
}

export async function main(args: string[]): Promise<void> {
  const requests = parseRequests(args);
  const app = createHttpServer({
    backend: new MemoryBackend(),
    admins: [{ name: 'admin', passwordHash: await hashPassword(PASSWORD) }],
    security: { cookieSecret: COOKIE_SECRET },
  });
  await app.ready();
  const admin = { authorization: basic('admin') };
  const send = (method: string, url: string, headers: Record<string, string>, body?: unknown) =>
    app.inject({
      method: method as 'GET',
      url,
      headers: {
        ...headers,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { payload: JSON.stringify(body) }),
    });

  progress('setting up _users, a member and a database');
  await send('PUT', '/_users', admin);
  await send('PUT', '/_users/org.couchdb.user:member', admin, {
    name: 'member',
    type: 'user',
    roles: [],
    password: PASSWORD,
  });
  await send('PUT', '/db', admin);
  await send('PUT', '/db/_security', admin, { members: { names: ['member'] } });
  await send('PUT', '/db/doc', admin, { value: 1 });

  const report = new BenchReport('security');
  const firstStart = performance.now();
  const first = await send('GET', '/db/doc', { authorization: basic('member') });
  report.measure('first user request', 'latency', 'ms', performance.now() - firstStart);
  if (first.statusCode !== 200) throw new Error(`member read failed: ${first.body}`);

  const login = await send('POST', '/_session', {}, { name: 'member', password: PASSWORD });
  const cookie = String(login.headers['set-cookie']).split(';')[0]!;

  const scenarios: [string, Record<string, string>][] = [
    ['admin basic', admin],
    ['member basic', { authorization: basic('member') }],
    ['member cookie', { cookie }],
  ];
  // Rounds interleave the scenarios, so a change in machine load hits them all alike.
  const seconds = new Map<string, number>(scenarios.map(([scenario]) => [scenario, 0]));
  const perRound = Math.ceil(requests / ROUNDS);
  for (let round = 0; round <= ROUNDS; round++) {
    progress(`round ${round} of ${ROUNDS} (round 0 warms up)`);
    for (const [scenario, headers] of scenarios) {
      const start = performance.now();
      for (let i = 0; i < perRound; i++) {
        const response = await send('GET', '/db/doc', headers);
        if (response.statusCode !== 200) throw new Error(`${scenario} failed: ${response.body}`);
      }
      const elapsed = (performance.now() - start) / MS_PER_SECOND;
      if (round > 0) seconds.set(scenario, seconds.get(scenario)! + elapsed);
    }
  }
  for (const [scenario] of scenarios) {
    const rate = (perRound * ROUNDS) / seconds.get(scenario)!;
    report.measure(scenario, 'document reads per second', 'req/s', rate);
  }
  await app.close();
  report.save({ requests });
}
