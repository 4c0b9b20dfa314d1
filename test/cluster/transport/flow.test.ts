/**
 * Lanes and flow control over real sockets: control messages overtake a large bulk message,
 * and a peer that stops reading makes `send` return false with the sender's memory bounded.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { freePorts } from '../../support/ports.js';
import {
  createTransport,
  listenRaw,
  recordMessages,
  startCluster,
  waitFor,
  waitForMesh,
} from './harness.js';

const MIB = 1024 * 1024;
const KIB = 1024;

test('control messages overtake a large bulk message', async (t) => {
  const cluster = await startCluster(t, ['n1', 'n2']);
  const received = recordMessages(cluster.get('n2'));
  await waitForMesh(cluster);

  // Larger than the socket window plus what loopback kernel buffers hold.
  const body = new Uint8Array(40 * MIB);
  for (let index = 0; index < body.length; index += 4096) body[index] = index % 251;
  assert.equal(cluster.get('n1').send('n2', 'bulk', { big: body }), true);

  // One control message per event-loop turn, all sent after the bulk message.
  let controlSent = 0;
  const maxControl = 100_000;
  while (!received.some((entry) => entry.lane === 'bulk') && controlSent < maxControl) {
    assert.equal(cluster.get('n1').send('n2', 'control', { sequence: controlSent }), true);
    controlSent += 1;
    await nextTurn();
  }
  await waitFor(() => received.some((entry) => entry.lane === 'bulk'), 'the bulk message');

  const bulkPosition = received.findIndex((entry) => entry.lane === 'bulk');
  assert.ok(bulkPosition > 0, `control messages arrived before the bulk one (${bulkPosition})`);
  const sequences = received
    .filter((entry) => entry.lane === 'control')
    .map((entry) => (entry.message as { sequence: number }).sequence);
  assert.deepEqual(
    sequences,
    sequences.slice().sort((a, b) => a - b),
    'control order kept',
  );
  const big = (received[bulkPosition]!.message as { big: Uint8Array }).big;
  assert.equal(big.length, body.length);
  for (let index = 0; index < body.length; index += 4096) {
    if (big[index] !== body[index]) assert.fail(`byte ${index} differs`);
  }
  const stats = cluster.get('n1').stats();
  assert.ok(stats.bulk.framesSent >= body.length / (64 * KIB), 'the message went as fragments');
});

test('a peer that stops reading fills the budget, then drains', async (t) => {
  const [rawPort] = await freePorts(1);
  const limits = {
    budgetBytes: 1 * MIB,
    socketWindowBytes: 64 * KIB,
    controlReserveBytes: 64 * KIB,
  };
  const rawPeer = await listenRaw(t, 'z9', rawPort!, false);
  const [port] = await freePorts(1);
  const addresses = { n1: `127.0.0.1:${port}`, z9: `127.0.0.1:${rawPort}` };
  const sender = createTransport('n1', addresses, {
    limits,
    timing: { livenessTimeoutMs: 120_000 },
  });
  t.after(() => sender.stop());
  await sender.start();
  const peer = await rawPeer.accepted;
  await waitFor(() => sender.isConnected('z9'), 'the raw peer to connect');

  const message = { chunk: new Uint8Array(64 * KIB) };
  const maxMessages = 20_000;
  let accepted = 0;
  let maxUsed = 0;
  while (sender.send('z9', 'bulk', message)) {
    accepted += 1;
    assert.ok(accepted < maxMessages, 'send never returned false');
    await nextTurn();
    maxUsed = Math.max(maxUsed, sender.stats().budgetUsedBytes);
  }
  const stats = sender.stats();
  assert.equal(stats.dropped.budget, 1);
  assert.ok(maxUsed <= limits.budgetBytes + 64 * KIB + 64, `budget use ${maxUsed} stays bounded`);
  assert.equal(sender.send('z9', 'control', 'vote'), true, 'control still fits in its reserve');

  let writable = false;
  const waiting = sender.whenWritable('z9').then(() => {
    writable = true;
  });
  await nextTurn();
  assert.equal(writable, false, 'not writable while the peer does not read');
  peer.socket.resume();
  await waiting;
  assert.equal(sender.send('z9', 'bulk', message), true);
  await waitFor(() => sender.stats().budgetUsedBytes === 0, 'the backlog to drain');
  const bulkFrames = peer.frames.filter((frame) => frame.type !== 0x20 && frame.type !== 0x10);
  assert.ok(bulkFrames.length >= accepted + 1, 'every accepted message reached the peer');
});

test('whenWritable rejects when the transport stops', async (t) => {
  const cluster = await startCluster(t, ['n1', 'n2']);
  const waiting = cluster.get('n1').whenWritable('n2');
  await cluster.get('n1').stop();
  await assert.rejects(waiting, { name: 'PeerUnavailableError' });
  await assert.rejects(cluster.get('n1').whenWritable('n9'), { name: 'PeerUnavailableError' });
});

test('messages of one event-loop turn go out in one socket write', async (t) => {
  const quiet = { pingIntervalMs: 60_000, livenessTimeoutMs: 120_000 };
  const cluster = await startCluster(t, ['n1', 'n2'], { timing: quiet });
  const received = recordMessages(cluster.get('n2'));
  await waitForMesh(cluster);
  await waitFor(() => cluster.get('n1').stats().budgetUsedBytes === 0, 'an idle connection');
  const writesBefore = cluster.get('n1').stats().socketWrites;
  const count = 1000;
  for (let index = 0; index < count; index++) {
    assert.equal(cluster.get('n1').send('n2', index % 2 ? 'control' : 'bulk', { index }), true);
  }
  await waitFor(() => received.length === count, 'every message');
  assert.equal(cluster.get('n1').stats().socketWrites - writesBefore, 1);
});

test('messages over a lane limit are rejected at the sender', async (t) => {
  const limits = { fragmentBytes: 4 * KIB, maxMessageBytes: 64 * KIB };
  const cluster = await startCluster(t, ['n1', 'n2'], { limits });
  await waitForMesh(cluster);
  const sender = cluster.get('n1');
  assert.throws(() => sender.send('n2', 'control', new Uint8Array(4 * KIB)), {
    name: 'MessageTooLargeError',
  });
  assert.throws(() => sender.send('n2', 'bulk', new Uint8Array(64 * KIB)), {
    name: 'MessageTooLargeError',
  });
  await assert.rejects(sender.request('n2', new Uint8Array(64 * KIB), { timeoutMs: 1000 }), {
    name: 'MessageTooLargeError',
  });
  assert.equal(sender.send('n2', 'bulk', new Uint8Array(60 * KIB)), true);
});

test('a message over the receiver limit closes the connection, which recovers', async (t) => {
  const [first, second] = await freePorts(2);
  const addresses = { n1: `127.0.0.1:${first}`, n2: `127.0.0.1:${second}` };
  const sender = createTransport('n1', addresses, { limits: { maxMessageBytes: 1 * MIB } });
  const receiver = createTransport('n2', addresses, { limits: { maxMessageBytes: 256 * KIB } });
  t.after(() => Promise.all([sender.stop(), receiver.stop()]));
  const received = recordMessages(receiver);
  await Promise.all([sender.start(), receiver.start()]);
  await waitFor(() => sender.isConnected('n2'), 'the connection');

  assert.equal(sender.send('n2', 'bulk', new Uint8Array(512 * KIB)), true);
  await waitFor(() => receiver.stats().protocolErrors === 1, 'the receiver to reject it');
  await waitFor(() => sender.stats().connectionsOpened === 2, 'a new connection');
  await waitFor(() => sender.send('n2', 'control', 'after'), 'a send to succeed');
  await waitFor(() => received.some((entry) => entry.message === 'after'), 'the next message');
  assert.equal(received.filter((entry) => entry.lane === 'bulk').length, 0);
});
