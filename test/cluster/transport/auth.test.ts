/**
 * Authentication: a wrong secret, an unknown id, the wrong dial direction and a silent
 * connection are all rejected, and nothing an unauthenticated connection sent is processed.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { encodeFrame, FrameType } from '../../../src/cluster/transport/frame.js';
import { encodeHello, NONCE_BYTES, PROOF_BYTES } from '../../../src/cluster/transport/handshake.js';
import {
  closedSocket,
  connectRaw,
  controlFrameOf,
  recordMessages,
  startCluster,
  tryDialRaw,
  waitFor,
  waitForMesh,
} from './harness.js';

/** An address with no listener; the transports under test never dial these peers. */
const UNUSED_ADDRESS = '127.0.0.1:9';

test('a node with the wrong secret is rejected both ways', async (t) => {
  const wrongSecret = Buffer.from('not-the-cluster-secret-000000000', 'utf8');
  const cluster = await startCluster(t, ['n1', 'n2', 'n3'], {
    secretFor: (nodeId) => (nodeId === 'n2' ? wrongSecret : undefined) as Uint8Array,
  });
  const received = recordMessages(cluster.get('n2'));
  const upEvents: string[] = [];
  cluster.get('n2').on('peer-up', (peer) => upEvents.push(peer));

  // n1 dials n2 and rejects n2's proof; n2 dials n3 and rejects n3's proof.
  await waitFor(
    () =>
      cluster.get('n1').stats().handshakeFailures['bad-proof'] > 0 &&
      cluster.get('n2').stats().handshakeFailures['bad-proof'] > 0,
    'both handshakes with n2 to fail',
  );
  await waitFor(() => cluster.get('n1').isConnected('n3'), 'n1 and n3 to connect');
  assert.equal(cluster.get('n1').isConnected('n2'), false);
  assert.equal(cluster.get('n3').isConnected('n2'), false);
  assert.equal(cluster.get('n1').send('n2', 'control', 'secret?'), false);
  assert.deepEqual(upEvents, []);
  assert.deepEqual(received, []);
});

test('nothing an unauthenticated dialer sent is processed', async (t) => {
  const cluster = await startCluster(t, ['n1', 'n2'], { extraPeers: { a0: UNUSED_ADDRESS } });
  const received = recordMessages(cluster.get('n2'));
  await waitForMesh(cluster);

  // A valid hello, a forged proof and a message, all in one write.
  const socket = connectRaw(cluster.addresses.n2!);
  const hello = encodeHello({ version: 1, nonce: Buffer.alloc(NONCE_BYTES, 1), nodeId: 'a0' });
  socket.write(
    Buffer.concat([
      encodeFrame(FrameType.hello, hello),
      encodeFrame(FrameType.proof, Buffer.alloc(PROOF_BYTES, 2)),
      controlFrameOf('forged message'),
    ]),
  );
  await closedSocket(socket);
  await waitFor(
    () => cluster.get('n2').stats().handshakeFailures['bad-proof'] === 1,
    'the forged proof to be counted',
  );
  assert.deepEqual(received, []);
  assert.equal(cluster.get('n2').isConnected('a0'), false);
  assert.equal(cluster.get('n2').stats().control.itemsReceived, 0);
});

test('unknown ids and the wrong dial direction are rejected', async (t) => {
  const cluster = await startCluster(t, ['n1', 'n2', 'n3'], {
    extraPeers: { a0: UNUSED_ADDRESS },
  });
  await waitForMesh(cluster);
  const address = cluster.addresses.n2!;

  const unknown = await tryDialRaw('stranger', 'n2', address);
  assert.equal(unknown.ok, false);
  const higher = await tryDialRaw('n3', 'n2', address);
  assert.equal(higher.ok, false, 'n3 sorts after n2 and must not dial it');
  const impostor = await tryDialRaw('a0', 'n1', address);
  assert.equal(impostor.ok, false, 'the dialer expects n1 but reaches n2');
  if (!impostor.ok) assert.equal(impostor.failure, 'unexpected-peer');

  const failures = cluster.get('n2').stats().handshakeFailures;
  assert.equal(failures['unknown-peer'], 1);
  assert.equal(failures['wrong-direction'], 1);
  assert.equal(cluster.get('n2').isConnected('a0'), false);
  assert.equal(cluster.get('n2').isConnected('n3'), true, 'the real n3 keeps its connection');
});

test('silent connections time out; too many pending are refused', async (t) => {
  const cluster = await startCluster(t, ['n1'], {
    timing: { handshakeTimeoutMs: 300 },
    limits: { maxPendingHandshakes: 2 },
  });
  const address = cluster.addresses.n1!;
  const silent = [connectRaw(address), connectRaw(address)];
  await waitFor(
    () => cluster.get('n1').stats().pendingHandshakes === 2,
    'both silent sockets to be accepted',
  );
  const extra = connectRaw(address);
  await closedSocket(extra);
  await Promise.all(silent.map(closedSocket));
  const failures = cluster.get('n1').stats().handshakeFailures;
  assert.equal(failures['too-many-pending'], 1);
  assert.equal(failures.timeout, 2);
});
