/**
 * Bad input on the peer port: garbage, truncated and oversized frames, before and after the
 * handshake, close that one connection. The node keeps serving its other peers.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { packMessage } from '../../../src/cluster/transport/codec.js';
import {
  encodeFrame,
  FRAME_HEADER_BYTES,
  FrameType,
  MAX_FRAME_PAYLOAD_BYTES,
} from '../../../src/cluster/transport/frame.js';
import { encodeHello, NONCE_BYTES } from '../../../src/cluster/transport/handshake.js';
import {
  closedSocket,
  connectRaw,
  controlFrameOf,
  dialRaw,
  type Received,
  recordMessages,
  startCluster,
  type TestCluster,
  waitFor,
  waitForMesh,
} from './harness.js';

/** An address with no listener; the transports under test never dial these peers. */
const UNUSED_ADDRESS = '127.0.0.1:9';

/** Checks that n2 still exchanges messages with n1 and n3 both ways. */
async function assertServing(
  cluster: TestCluster,
  received: Map<string, Received[]>,
): Promise<void> {
  const marker = `still serving ${Math.random()}`;
  for (const [from, to] of [
    ['n1', 'n2'],
    ['n2', 'n1'],
    ['n3', 'n2'],
    ['n2', 'n3'],
  ] as const) {
    assert.equal(cluster.get(from).send(to, 'control', marker), true, `${from} -> ${to}`);
  }
  await waitFor(
    () =>
      ['n1', 'n3'].every((id) => received.get(id)!.some((entry) => entry.message === marker)) &&
      received.get('n2')!.filter((entry) => entry.message === marker).length === 2,
    'messages after the bad input',
  );
}

function headerOnly(type: number, payloadBytes: number): Buffer {
  const header = Buffer.alloc(FRAME_HEADER_BYTES);
  header.writeUInt32BE(payloadBytes, 0);
  header[4] = type;
  return header;
}

async function startThree(t: Parameters<typeof startCluster>[0]) {
  const cluster = await startCluster(t, ['n1', 'n2', 'n3'], {
    extraPeers: { a0: UNUSED_ADDRESS },
  });
  const received = new Map(['n1', 'n2', 'n3'].map((id) => [id, recordMessages(cluster.get(id))]));
  await waitForMesh(cluster);
  return { cluster, received };
}

test('garbage before the handshake closes only that connection', async (t) => {
  const { cluster, received } = await startThree(t);
  const address = cluster.addresses.n2!;
  const hello = encodeFrame(
    FrameType.hello,
    encodeHello({ version: 1, nonce: Buffer.alloc(NONCE_BYTES), nodeId: 'a0' }),
  );
  const inputs: Array<[string, Buffer]> = [
    ['oversized header', headerOnly(FrameType.hello, 0xffffffff)],
    ['control frame first', controlFrameOf('too early')],
    [
      'wrong version',
      encodeFrame(FrameType.hello, Buffer.concat([Buffer.of(9), hello.subarray(6)])),
    ],
    ['truncated hello', hello.subarray(0, hello.length - 3)],
    ['empty hello', encodeFrame(FrameType.hello, Buffer.alloc(0))],
    ...fc
      .sample(fc.uint8Array({ minLength: 1, maxLength: 600 }), { numRuns: 10, seed: 42 })
      .map((bytes, index): [string, Buffer] => [`random bytes ${index}`, Buffer.from(bytes)]),
  ];
  for (const [name, bytes] of inputs) {
    const socket = connectRaw(address);
    socket.end(bytes);
    await closedSocket(socket);
    assert.equal(cluster.get('n2').isConnected('a0'), false, name);
  }
  await assertServing(cluster, received);
  assert.equal(cluster.get('n2').stats().control.itemsReceived, 2, 'only the check messages');
  const failures = cluster.get('n2').stats().handshakeFailures;
  assert.ok(failures.malformed + failures.closed + failures['version-mismatch'] >= inputs.length);
});

test('bad frames from an authenticated peer close only that connection', async (t) => {
  const { cluster, received } = await startThree(t);
  const address = cluster.addresses.n2!;

  const valid = await dialRaw('a0', 'n2', address);
  valid.socket.write(controlFrameOf({ hello: 'from a0' }));
  await waitFor(
    () => received.get('n2')!.some((entry) => entry.from === 'a0'),
    'the valid message from a0',
  );
  valid.socket.destroy();

  const garbageItem = Buffer.from([0xc1, 0xc1, 0xc1]);
  const inputs: Array<[string, Buffer]> = [
    ['oversized frame', headerOnly(FrameType.control, MAX_FRAME_PAYLOAD_BYTES + 1)],
    ['invalid MessagePack', encodeFrame(FrameType.control, garbageItem)],
    ['not an item', encodeFrame(FrameType.bulk, packMessage(7).subarray(FRAME_HEADER_BYTES + 2))],
    ['unknown frame type', encodeFrame(0x7f as FrameType, Buffer.alloc(4))],
    ['handshake frame after the handshake', encodeFrame(FrameType.hello, Buffer.alloc(40))],
    ['tiny fragment', encodeFrame(FrameType.bulkPart, Buffer.alloc(10))],
    ['short ping', encodeFrame(FrameType.ping, Buffer.alloc(2))],
  ];
  for (const [name, bytes] of inputs) {
    const peer = await dialRaw('a0', 'n2', address);
    peer.socket.write(bytes);
    await closedSocket(peer.socket);
    assert.ok(peer.closed, name);
  }
  assert.equal(cluster.get('n2').stats().protocolErrors, inputs.length);

  // A truncated frame followed by the end of the connection delivers nothing.
  const truncated = await dialRaw('a0', 'n2', address);
  const frame = controlFrameOf('never complete');
  truncated.socket.end(frame.subarray(0, frame.length - 2));
  await closedSocket(truncated.socket);

  await assertServing(cluster, received);
  const fromA0 = received.get('n2')!.filter((entry) => entry.from === 'a0');
  assert.deepEqual(
    fromA0.map((entry) => entry.message),
    [{ hello: 'from a0' }],
  );
});

test('a throwing message handler does not break the connection', async (t) => {
  const cluster = await startCluster(t, ['n1', 'n2']);
  await waitForMesh(cluster);
  const seen: unknown[] = [];
  cluster.get('n2').onMessage((_from, message) => {
    seen.push(message);
    if (message === 'boom') throw new Error('handler bug');
  });
  cluster.get('n1').send('n2', 'control', 'boom');
  cluster.get('n1').send('n2', 'control', 'after');
  await waitFor(() => seen.length === 2, 'both messages');
  assert.deepEqual(seen, ['boom', 'after']);
  assert.equal(cluster.get('n2').stats().handlerErrors, 1);
  assert.equal(cluster.get('n2').isConnected('n1'), true);
});
