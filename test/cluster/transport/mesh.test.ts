/** Three and four transports on 127.0.0.1 exchanging messages on both lanes. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setImmediate as nextTurn } from 'node:timers/promises';
import fc from 'fast-check';
import { freePorts } from '../../support/ports.js';
import { scaled } from '../../support/scale.js';
import { createTransport, recordMessages, startCluster, waitFor, waitForMesh } from './harness.js';

const MESSAGES_PER_LANE = 200;

test('three transports exchange messages on both lanes in order', async (t) => {
  const ids = ['n1', 'n2', 'n3'];
  const cluster = await startCluster(t, ids);
  const received = new Map(ids.map((id) => [id, recordMessages(cluster.get(id))]));
  await waitForMesh(cluster);

  for (let sequence = 0; sequence < MESSAGES_PER_LANE; sequence++) {
    for (const from of ids) {
      for (const to of ids) {
        if (from === to) continue;
        const body = new Uint8Array([sequence & 0xff, from.charCodeAt(1)]);
        assert.equal(cluster.get(from).send(to, 'control', { from, sequence }), true);
        assert.equal(cluster.get(from).send(to, 'bulk', { from, sequence, body }), true);
      }
    }
  }
  const expectedPerNode = 2 * MESSAGES_PER_LANE * (ids.length - 1);
  await waitFor(
    () => ids.every((id) => received.get(id)!.length === expectedPerNode),
    'every message',
  );

  for (const to of ids) {
    for (const from of ids) {
      if (from === to) continue;
      for (const lane of ['control', 'bulk'] as const) {
        const sequences = received
          .get(to)!
          .filter((entry) => entry.from === from && entry.lane === lane)
          .map((entry) => (entry.message as { sequence: number }).sequence);
        assert.deepEqual(
          sequences,
          Array.from({ length: MESSAGES_PER_LANE }, (_, index) => index),
          `${lane} lane ${from} -> ${to}`,
        );
      }
    }
  }
  const bulkMessage = received.get('n2')!.find((entry) => entry.lane === 'bulk')!;
  const body = (bulkMessage.message as { body: Uint8Array }).body;
  assert.ok(body instanceof Uint8Array, 'binary data arrives as Uint8Array');

  const stats = cluster.get('n1').stats();
  assert.equal(stats.connections, 2);
  assert.equal(stats.control.itemsSent, 2 * MESSAGES_PER_LANE);
  assert.equal(stats.bulk.itemsReceived, 2 * MESSAGES_PER_LANE);
  assert.ok(stats.control.framesSent >= stats.control.itemsSent);
  assert.equal(stats.dropped.notConnected, 0);
  assert.equal(stats.handshakeFailures['bad-proof'], 0);
});

test('one connection per pair, dialed by the lower id', async (t) => {
  const cluster = await startCluster(t, ['n1', 'n2', 'n3']);
  await waitForMesh(cluster);
  // Give a wrongly dialed second connection time to show up in the counters.
  await new Promise((resolve) => setTimeout(resolve, 300));
  for (const id of ['n1', 'n2', 'n3']) {
    const stats = cluster.get(id).stats();
    assert.equal(stats.connectionsOpened, 2, `${id} opened exactly two connections`);
    assert.equal(stats.handshakeFailures['wrong-direction'], 0);
  }
});

test('a peer added at run time gets connected', async (t) => {
  const cluster = await startCluster(t, ['n1', 'n2']);
  await waitForMesh(cluster);
  const [port] = await freePorts(1);
  const addresses = { ...cluster.addresses, n3: `127.0.0.1:${port}` };
  const newcomer = createTransport('n3', addresses);
  t.after(() => newcomer.stop());
  const received = recordMessages(newcomer);
  await newcomer.start();
  assert.equal(cluster.get('n1').isConnected('n3'), false);

  cluster.get('n1').setPeers(addresses);
  cluster.get('n2').setPeers(addresses);
  await waitFor(
    () => cluster.get('n1').isConnected('n3') && cluster.get('n2').isConnected('n3'),
    'n3 connected to both',
  );
  assert.equal(cluster.get('n1').send('n3', 'control', 'hello n3'), true);
  await waitFor(() => received.length === 1, 'the message to n3');
  assert.deepEqual(received[0], { from: 'n1', message: 'hello n3', lane: 'control' });

  cluster.get('n1').setPeers(cluster.addresses);
  assert.equal(cluster.get('n1').isConnected('n3'), false);
  assert.equal(cluster.get('n1').send('n3', 'control', 'gone'), false);
  assert.equal(cluster.get('n1').stats().dropped.unknownPeer, 1);
});

test('peer-up and peer-down events', async (t) => {
  const cluster = await startCluster(t, ['n1', 'n2']);
  const events: string[] = [];
  cluster.get('n1').on('peer-up', (peer) => events.push(`up ${peer}`));
  cluster.get('n1').on('peer-down', (peer) => events.push(`down ${peer}`));
  await waitForMesh(cluster);
  await cluster.get('n2').stop();
  await waitFor(() => events.includes('down n2'), 'peer-down for n2');
  assert.deepEqual(events, ['up n2', 'down n2']);
  assert.equal(cluster.get('n1').send('n2', 'control', 'lost'), false);
  assert.equal(cluster.get('n1').stats().dropped.notConnected, 1);
});

interface RandomSend {
  from: number;
  to: number;
  lane: 'control' | 'bulk';
  sizeBytes: number;
  /** Event-loop turns to wait after this send. */
  pauseTurns: number;
}

/** Returns the body of message `sequence` of run `run`: bytes derived from both. */
function bodyFor(run: number, sequence: number, sizeBytes: number): Uint8Array {
  const body = new Uint8Array(sizeBytes);
  for (let index = 0; index < sizeBytes; index++)
    body[index] = (run * 31 + sequence * 7 + index) & 0xff;
  return body;
}

test('random traffic arrives complete and in order per lane', async (t) => {
  const ids = ['n1', 'n2', 'n3'];
  const fragmentBytes = 1024;
  const cluster = await startCluster(t, ids, { limits: { fragmentBytes } });
  const received = new Map(ids.map((id) => [id, recordMessages(cluster.get(id))]));
  await waitForMesh(cluster);
  const sendArbitrary: fc.Arbitrary<RandomSend> = fc
    .record({
      from: fc.nat({ max: 2 }),
      offset: fc.integer({ min: 1, max: 2 }),
      lane: fc.constantFrom('control' as const, 'bulk' as const),
      sizeBytes: fc.nat({ max: 12 * fragmentBytes }),
      pauseTurns: fc.nat({ max: 2 }),
    })
    .map(({ from, offset, lane, sizeBytes, pauseTurns }) => ({
      from,
      to: (from + offset) % 3,
      lane,
      // Control messages must fit in one fragment with their envelope.
      sizeBytes: lane === 'control' ? sizeBytes % (fragmentBytes - 64) : sizeBytes,
      pauseTurns,
    }));
  let run = 0;

  await fc.assert(
    fc.asyncProperty(fc.array(sendArbitrary, { minLength: 1, maxLength: 60 }), async (sends) => {
      run += 1;
      for (const list of received.values()) list.length = 0;
      for (const [sequence, send] of sends.entries()) {
        const message = { run, sequence, body: bodyFor(run, sequence, send.sizeBytes) };
        assert.equal(cluster.get(ids[send.from]!).send(ids[send.to]!, send.lane, message), true);
        for (let turn = 0; turn < send.pauseTurns; turn++) await nextTurn();
      }
      await waitFor(
        () =>
          [...received.values()].reduce((total, list) => total + list.length, 0) === sends.length,
        'every random message',
      );
      for (const [sequence, send] of sends.entries()) {
        const entry = received
          .get(ids[send.to]!)!
          .find((candidate) => (candidate.message as { sequence: number }).sequence === sequence);
        assert.ok(entry, `message ${sequence} arrived`);
        assert.equal(entry.from, ids[send.from]);
        assert.equal(entry.lane, send.lane);
        const body = (entry.message as { body: Uint8Array }).body;
        assert.deepEqual(Uint8Array.from(body), bodyFor(run, sequence, send.sizeBytes));
      }
      for (const [to, list] of received) {
        for (const from of ids) {
          for (const lane of ['control', 'bulk'] as const) {
            const sequences = list
              .filter((entry) => entry.from === from && entry.lane === lane)
              .map((entry) => (entry.message as { sequence: number }).sequence);
            const sorted = [...sequences].sort((a, b) => a - b);
            assert.deepEqual(sequences, sorted, `${lane} ${from} -> ${to} in order`);
          }
        }
      }
    }),
    { numRuns: scaled(8, 100) },
  );
  for (const id of ids) assert.equal(cluster.get(id).stats().protocolErrors, 0);
});
