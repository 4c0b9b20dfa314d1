/**
 * TLS on both ports: the HTTP API over HTTPS (with `Secure` session cookies), and the peer
 * transport, where nodes with the shared certificate connect and a node whose certificate the
 * CA did not sign is rejected before the HMAC handshake. A real cluster started with the
 * `--peer-tls-*` flags replicates over TLS.
 */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { test } from 'node:test';
import { Agent, request } from 'undici';
import { Transport, type TransportTls } from '../../src/cluster/transport/index.js';
import { createHttpServer } from '../../src/http/server.js';
import { silentLogger } from '../../src/util/log.js';
import { adminHash } from '../http/harness.js';
import { MemoryBackend } from '../http/memory-backend.js';
import { TestCluster, type TestNode, waitFor } from '../support/cluster.js';
import { freePorts } from '../support/ports.js';
import { tempDir } from '../support/tmp.js';
import { selfSignedCertificate } from './certs.js';

const SECRET = Buffer.from('tls-test-cluster-secret-01234567', 'utf8');
const TIMING = { reconnectInitialDelayMs: 20, reconnectMaxDelayMs: 200, pingIntervalMs: 100 };

async function waitUntil(condition: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 2_000 && !condition(); i++) {
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  assert.ok(condition(), `timed out waiting for ${what}`);
}

test('HTTP over TLS', async (t) => {
  const dir = await tempDir(t);
  const certificate = selfSignedCertificate(dir, 'http');
  if (certificate === null) {
    t.skip('openssl is not installed');
    return;
  }
  const app = createHttpServer({
    backend: new MemoryBackend(),
    admins: [{ name: 'admin', passwordHash: await adminHash() }],
    security: { cookieSecret: SECRET },
    tls: { key: certificate.key, cert: certificate.cert },
  });
  t.after(() => app.close());
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  assert.ok(address !== null && typeof address === 'object');
  const base = `https://127.0.0.1:${address.port}`;
  const agent = new Agent({ connect: { ca: certificate.cert } });
  t.after(() => agent.close());

  const welcome = await request(`${base}/`, { dispatcher: agent });
  assert.equal(welcome.statusCode, 200);
  assert.equal(((await welcome.body.json()) as { couchdb: string }).couchdb, 'Welcome');

  const login = await request(`${base}/_session`, {
    dispatcher: agent,
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'admin', password: 'p@ss wörd:with colon' }),
  });
  await login.body.text();
  assert.equal(login.statusCode, 200);
  assert.match(String(login.headers['set-cookie']), /; Secure$/);

  const untrusted = new Agent();
  t.after(() => untrusted.close());
  await assert.rejects(request(`${base}/`, { dispatcher: untrusted }));
});

function startTransport(
  t: { after: (fn: () => Promise<void>) => void },
  nodeId: string,
  addresses: Record<string, string>,
  tls: TransportTls,
): Promise<Transport> {
  const transport = new Transport({
    nodeId,
    listen: addresses[nodeId]!,
    peers: addresses,
    secret: SECRET,
    timing: TIMING,
    logger: silentLogger,
    tls,
  });
  t.after(() => transport.stop());
  return transport.start().then(() => transport);
}

test('peer transport over TLS', async (t) => {
  const dir = await tempDir(t);
  const shared = selfSignedCertificate(dir, 'cluster');
  const rogue = selfSignedCertificate(dir, 'rogue');
  if (shared === null || rogue === null) {
    t.skip('openssl is not installed');
    return;
  }
  const ports = (await freePorts(4)) as [number, number, number, number];
  const [a0, n1Address, n2Address, z9] = ports.map((port) => `127.0.0.1:${port}`);
  const addresses = { a0: a0!, n1: n1Address!, n2: n2Address!, z9: z9! };
  const clusterTls = { key: shared.key, cert: shared.cert };
  const n1 = await startTransport(t, 'n1', addresses, clusterTls);
  const n2 = await startTransport(t, 'n2', addresses, clusterTls);
  // a0 and z9 know the secret but hold a certificate the cluster's CA did not sign. The lower
  // id dials, so a0 is rejected by the servers of n1 and n2, and z9 by their clients.
  const rogueTls = { key: rogue.key, cert: rogue.cert, ca: shared.cert };
  const rogueDialer = await startTransport(t, 'a0', addresses, rogueTls);
  const rogueAcceptor = await startTransport(t, 'z9', addresses, rogueTls);

  const received: unknown[] = [];
  n2.onMessage((_from, payload) => received.push(payload));
  await waitUntil(() => n1.isConnected('n2'), 'n1 and n2 to connect');
  assert.equal(n1.send('n2', 'control', { hello: 'over tls' }), true);
  await waitUntil(() => received.length === 1, 'the message to arrive');
  assert.deepEqual(received, [{ hello: 'over tls' }]);

  await waitUntil(
    () => n1.stats().handshakeFailures.tls > 0 && n2.stats().handshakeFailures.tls > 0,
    'the servers to reject the rogue dialer',
  );
  await waitUntil(
    () => n1.stats().dialFailures > 0 && n2.stats().dialFailures > 0,
    'the clients to reject the rogue acceptor',
  );
  for (const transport of [n1, n2]) {
    assert.equal(transport.isConnected('a0'), false);
    assert.equal(transport.isConnected('z9'), false);
  }
  assert.equal(rogueDialer.isConnected('n1'), false);
  assert.equal(rogueAcceptor.isConnected('n2'), false);
  assert.deepEqual(received, [{ hello: 'over tls' }]);
});

test('a real cluster over peer TLS', async (t) => {
  const dir = await tempDir(t);
  const shared = selfSignedCertificate(dir, 'cluster');
  if (shared === null) {
    t.skip('openssl is not installed');
    return;
  }
  const cluster = await TestCluster.start(t, {
    extraArgs: ['--peer-tls-key', shared.keyFile, '--peer-tls-cert', shared.certFile],
  });
  const [first, second, third] = cluster.nodes as [TestNode, TestNode, TestNode];
  assert.equal((await cluster.httpRetry(first, 'PUT', '/encrypted')).status, 201);
  const write = await cluster.httpRetry(second, 'PUT', '/encrypted/doc', { over: 'tls' });
  assert.equal(write.status, 201, write.body);
  const read = await cluster.httpRetry(third, 'GET', '/encrypted/doc');
  assert.equal((read.json as { over: string }).over, 'tls');

  // A plain TCP peer is rejected by the TLS layer, which proves the port speaks TLS.
  const tlsFailures = async () => {
    const system = await cluster.http(third, 'GET', '/_node/_local/_system');
    const divan = (system.json as { divan: { transport: { handshakeFailures: { tls: number } } } })
      .divan;
    return divan.transport.handshakeFailures.tls;
  };
  assert.equal(await tlsFailures(), 0);
  await plainConnection(third.peerPort);
  await waitFor('the plain connection to be rejected', async () => (await tlsFailures()) > 0);
});

/** Connects without TLS, sends a few bytes and resolves when the node closes the socket. */
function plainConnection(port: number): Promise<void> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.on('connect', () => socket.write(Buffer.from('not a TLS hello\r\n\r\n')));
    socket.on('error', () => resolve());
    socket.on('close', () => resolve());
  });
}
