/**
 * Connection lifecycle: reconnecting after a peer stops and starts again, a silent peer
 * reported down by the liveness check, and a new connection replacing an old one.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { freePorts } from '../../support/ports.js';
import {
  closedSocket,
  createTransport,
  dialRaw,
  listenRaw,
  recordMessages,
  startCluster,
  waitFor,
  waitForMesh,
} from './harness.js';

/** An address with no listener; the transports under test never dial these peers. */
const UNUSED_ADDRESS = '127.0.0.1:9';

test('peers reconnect after a node stops and starts again', async (t) => {
  const cluster = await startCluster(t, ['n1', 'n2', 'n3']);
  await waitForMesh(cluster);
  const down: string[] = [];
  cluster.get('n2').on('peer-down', (peer) => down.push(peer));

  // n3 only accepts (its id sorts last); n1 only dials.
  for (const restarted of ['n3', 'n1']) {
    await cluster.get(restarted).stop();
    await waitFor(() => down.includes(restarted), `peer-down for ${restarted}`);
    const replacement = createTransport(restarted, cluster.addresses);
    t.after(() => replacement.stop());
    const received = recordMessages(replacement);
    await replacement.start();
    cluster.transports.set(restarted, replacement);
    await waitForMesh(cluster);
    assert.equal(cluster.get('n2').send(restarted, 'control', `welcome back ${restarted}`), true);
    await waitFor(() => received.length === 1, `a message to the new ${restarted}`);
  }
  assert.equal(cluster.get('n2').stats().connectionsOpened, 4);
});

test('a peer that goes silent is reported down', async (t) => {
  const [rawPort, port] = await freePorts(2);
  const rawPeer = await listenRaw(t, 'z9', rawPort!, true);
  const addresses = { n1: `127.0.0.1:${port}`, z9: `127.0.0.1:${rawPort}` };
  const transport = createTransport('n1', addresses, {
    timing: { pingIntervalMs: 50, livenessTimeoutMs: 400 },
  });
  t.after(() => transport.stop());
  const reasons: string[] = [];
  transport.on('peer-down', (_peer, reason) => reasons.push(reason));
  await transport.start();
  const peer = await rawPeer.accepted;

  // The raw peer reads but never replies to a ping.
  await waitFor(() => reasons.length > 0, 'peer-down for the silent peer');
  assert.match(reasons[0]!, /nothing received/);
  assert.ok(transport.stats().pingsSent > 0);
  assert.ok(
    peer.frames.some((frame) => frame.type === 0x10),
    'the peer was pinged',
  );
  await closedSocket(peer.socket);
});

test('pings measure the round-trip time', async (t) => {
  const cluster = await startCluster(t, ['n1', 'n2'], { timing: { pingIntervalMs: 20 } });
  await waitFor(() => cluster.get('n1').stats().peers.n2?.rttMs != null, 'a round trip');
  const rtt = cluster.get('n1').stats().peers.n2!.rttMs!;
  assert.ok(rtt >= 0 && Number.isFinite(rtt));
  assert.ok(cluster.get('n2').stats().pongsSent > 0);
});

test('a new connection from a peer replaces the old one', async (t) => {
  const cluster = await startCluster(t, ['n1'], { extraPeers: { a0: UNUSED_ADDRESS } });
  const events: string[] = [];
  cluster.get('n1').on('peer-up', (peer) => events.push(`up ${peer}`));
  cluster.get('n1').on('peer-down', (peer, reason) => events.push(`down ${peer}: ${reason}`));

  const first = await dialRaw('a0', 'n1', cluster.addresses.n1!);
  await waitFor(() => cluster.get('n1').isConnected('a0'), 'the first connection');
  const second = await dialRaw('a0', 'n1', cluster.addresses.n1!);
  await closedSocket(first.socket);
  assert.equal(second.closed, false);
  assert.deepEqual(events, ['up a0', 'down a0: replaced by a new connection', 'up a0']);
  assert.equal(cluster.get('n1').send('a0', 'control', 'to the new one'), true);
  await waitFor(() => second.frames.some((frame) => frame.type === 0x20), 'the message');
});
