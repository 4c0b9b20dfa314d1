/**
 * The frame layer without sockets: items queued on both lanes, drained with random
 * allowances, cut at random byte boundaries, decoded and reassembled must come out the same,
 * in order per lane. Random bytes must only ever raise ProtocolError.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { type Item, packMessage, unpackItem } from '../../../src/cluster/transport/codec.js';
import {
  encodeFrame,
  FRAME_HEADER_BYTES,
  FrameDecoder,
  FrameType,
  MAX_FRAME_PAYLOAD_BYTES,
  MIN_FRAGMENT_BYTES,
  ProtocolError,
} from '../../../src/cluster/transport/frame.js';
import { Inbound, type Lane } from '../../../src/cluster/transport/inbound.js';
import { NO_TAG, OutboundQueue } from '../../../src/cluster/transport/outbound.js';
import { createCounters } from '../../../src/cluster/transport/stats.js';

const FRAGMENT_BYTES = MIN_FRAGMENT_BYTES;
const MAX_MESSAGE_BYTES = 8 * FRAGMENT_BYTES;

type Command =
  | { kind: 'push'; lane: Lane; body: Uint8Array }
  | { kind: 'drain'; allowance: number };

const bodyArbitrary = fc.oneof(
  fc.uint8Array({ maxLength: 64 }),
  fc.uint8Array({ minLength: FRAGMENT_BYTES - 16, maxLength: FRAGMENT_BYTES + 16 }),
  fc.uint8Array({ minLength: 2 * FRAGMENT_BYTES, maxLength: 5 * FRAGMENT_BYTES }),
);

const commandArbitrary: fc.Arbitrary<Command> = fc.oneof(
  fc.record({
    kind: fc.constant('push' as const),
    lane: fc.constant('control' as const),
    body: fc.uint8Array({ maxLength: FRAGMENT_BYTES - 32 }),
  }),
  fc.record({
    kind: fc.constant('push' as const),
    lane: fc.constant('bulk' as const),
    body: bodyArbitrary,
  }),
  fc.record({
    kind: fc.constant('drain' as const),
    allowance: fc.nat({ max: 3 * FRAGMENT_BYTES }),
  }),
);

interface Decoded {
  lane: Lane;
  item: Item;
}

/** Runs the commands through a queue; returns the wire bytes and the queue. */
function encodeCommands(commands: Command[]): { wire: Buffer; queue: OutboundQueue } {
  const queue = new OutboundQueue(FRAGMENT_BYTES, createCounters());
  const chunks: Buffer[] = [];
  for (const command of commands) {
    if (command.kind === 'push') {
      const packed = packMessage({ body: command.body });
      if (command.lane === 'control') queue.pushControlItem(packed, NO_TAG);
      else queue.pushBulkItem(packed, NO_TAG);
    } else {
      // Copies: the queue's buffers may be views of a shared msgpackr buffer.
      for (const chunk of queue.drain(command.allowance)) chunks.push(Buffer.from(chunk));
    }
  }
  while (queue.hasBulk || queue.hasControl) {
    for (const chunk of queue.drain(FRAGMENT_BYTES)) chunks.push(Buffer.from(chunk));
  }
  return { wire: Buffer.concat(chunks), queue };
}

/** Feeds `wire` cut at `cuts` through decoder and inbound; returns the items in order. */
function decodeWire(wire: Buffer, cuts: number[], expectComplete = true): Decoded[] {
  const decoded: Decoded[] = [];
  const inbound = new Inbound(MAX_MESSAGE_BYTES, createCounters(), {
    onItem: (lane, payload) => decoded.push({ lane, item: unpackItem(payload) }),
    onPing: () => {},
    onPong: () => {},
  });
  const decoder = new FrameDecoder(MAX_FRAME_PAYLOAD_BYTES, inbound.onFrame);
  let start = 0;
  for (const cut of [...cuts.map((cut) => cut % (wire.length + 1))].sort((a, b) => a - b)) {
    decoder.push(wire.subarray(start, cut));
    start = cut;
  }
  decoder.push(wire.subarray(start));
  if (expectComplete) assert.equal(decoder.bufferedBytes, 0, 'no bytes left over');
  return decoded;
}

function bodiesOf(decoded: Decoded[], lane: Lane): Uint8Array[] {
  return decoded
    .filter((entry) => entry.lane === lane)
    .map((entry) => {
      assert.equal(entry.item[0], 0);
      return Uint8Array.from((entry.item[1] as { body: Uint8Array }).body);
    });
}

test('frames round-trip through random splits, in order per lane', () => {
  fc.assert(
    fc.property(
      fc.array(commandArbitrary, { maxLength: 40 }),
      fc.array(fc.nat(), { maxLength: 30 }),
      (commands, cuts) => {
        const { wire, queue } = encodeCommands(commands);
        assert.equal(queue.queuedBytes, 0, 'queue empty after draining');
        const decoded = decodeWire(wire, cuts);
        for (const lane of ['control', 'bulk'] as const) {
          const sent = commands
            .filter((command) => command.kind === 'push' && command.lane === lane)
            .map((command) => Uint8Array.from((command as { body: Uint8Array }).body));
          assert.deepEqual(bodiesOf(decoded, lane), sent, `${lane} lane`);
        }
        const tallies = queue.tallies;
        assert.equal(tallies.control.bytesSent + tallies.bulk.bytesSent, wire.length);
      },
    ),
    { numRuns: 150 },
  );
});

test('a control item overtakes the rest of a large bulk item', () => {
  fc.assert(
    fc.property(fc.integer({ min: 3, max: 6 }), (fragments) => {
      const queue = new OutboundQueue(FRAGMENT_BYTES, createCounters());
      queue.pushBulkItem(packMessage({ body: new Uint8Array(fragments * FRAGMENT_BYTES) }), NO_TAG);
      const first = queue.drain(FRAGMENT_BYTES).map((chunk) => Buffer.from(chunk));
      queue.pushControlItem(packMessage({ body: 'urgent' }), NO_TAG);
      const rest: Buffer[] = [];
      while (queue.hasBulk || queue.hasControl) {
        for (const chunk of queue.drain(FRAGMENT_BYTES)) rest.push(Buffer.from(chunk));
      }
      const decoded = decodeWire(Buffer.concat([...first, ...rest]), []);
      assert.deepEqual(
        decoded.map((entry) => entry.lane),
        ['control', 'bulk'],
      );
    }),
    { numRuns: 20 },
  );
});

test('random bytes raise only ProtocolError', () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ maxLength: 2048 }),
      fc.array(fc.nat(), { maxLength: 8 }),
      (bytes, cuts) => {
        try {
          decodeWire(Buffer.from(bytes), cuts, false);
        } catch (error) {
          assert.ok(error instanceof ProtocolError, `unexpected ${String(error)}`);
        }
      },
    ),
    { numRuns: 300 },
  );
});

test('random frame payloads raise only ProtocolError', () => {
  const types = Object.values(FrameType);
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.constantFrom(...types), fc.uint8Array({ maxLength: 1500 })), {
        maxLength: 10,
      }),
      (frames) => {
        const wire = Buffer.concat(frames.map(([type, payload]) => encodeFrame(type, payload)));
        try {
          decodeWire(wire, [], false);
        } catch (error) {
          assert.ok(error instanceof ProtocolError, `unexpected ${String(error)}`);
        }
      },
    ),
    { numRuns: 300 },
  );
});

test('an oversized frame is rejected from its header alone', () => {
  const frames: number[] = [];
  const decoder = new FrameDecoder(1000, (type) => frames.push(type));
  const header = Buffer.alloc(FRAME_HEADER_BYTES);
  header.writeUInt32BE(1001, 0);
  header[4] = FrameType.control;
  assert.throws(() => decoder.push(header), ProtocolError);
  assert.equal(decoder.bufferedBytes, 0);
  decoder.push(encodeFrame(FrameType.control, Buffer.alloc(1)));
  assert.deepEqual(frames, [], 'a stopped decoder passes nothing on');
});

test('a paused decoder keeps frames until resumed', () => {
  const seen: string[] = [];
  const decoder = new FrameDecoder(100, (type) => {
    seen.push(`first ${type}`);
    decoder.pause();
  });
  decoder.push(
    Buffer.concat([
      encodeFrame(FrameType.welcome, Buffer.alloc(0)),
      encodeFrame(FrameType.control, Buffer.from([0x92, 0, 1])),
    ]),
  );
  assert.deepEqual(seen, [`first ${FrameType.welcome}`]);
  decoder.resume((type) => seen.push(`second ${type}`));
  assert.deepEqual(seen, [`first ${FrameType.welcome}`, `second ${FrameType.control}`]);
});

test('inbound rejects broken fragment sequences', () => {
  const makeInbound = () =>
    new Inbound(4 * MIN_FRAGMENT_BYTES, createCounters(), {
      onItem: () => {},
      onPing: () => {},
      onPong: () => {},
    });
  const part = Buffer.alloc(MIN_FRAGMENT_BYTES);

  const wholeInside = makeInbound();
  wholeInside.onFrame(FrameType.bulkPart, part);
  assert.throws(() => wholeInside.onFrame(FrameType.bulk, Buffer.alloc(3)), ProtocolError);

  const tinyPart = makeInbound();
  assert.throws(() => tinyPart.onFrame(FrameType.bulkPart, Buffer.alloc(10)), ProtocolError);

  const oversized = makeInbound();
  for (let index = 0; index < 4; index++) oversized.onFrame(FrameType.bulkPart, part);
  assert.throws(() => oversized.onFrame(FrameType.bulkEnd, Buffer.alloc(1)), ProtocolError);

  const handshakeLate = makeInbound();
  assert.throws(() => handshakeLate.onFrame(FrameType.hello, Buffer.alloc(40)), ProtocolError);
  assert.throws(() => handshakeLate.onFrame(FrameType.ping, Buffer.alloc(3)), ProtocolError);
});

test('unpackItem rejects malformed items', () => {
  const bad: Array<[string, Buffer]> = [
    ['not an array', Buffer.from([0x01])],
    ['unknown kind', Buffer.from([0x92, 0x09, 0x01])],
    ['request without id', Buffer.from([0x92, 0x01, 0x01])],
    ['negative request id', Buffer.from([0x93, 0x01, 0xff, 0xc0])],
    ['failure reason not a string', Buffer.from([0x93, 0x03, 0x01, 0x01])],
    ['truncated', Buffer.from([0x92, 0x00])],
    ['trailing bytes', Buffer.from([0x92, 0x00, 0x01, 0x01])],
    ['empty', Buffer.alloc(0)],
  ];
  for (const [name, bytes] of bad) {
    assert.throws(() => unpackItem(bytes), ProtocolError, name);
  }
  assert.deepEqual(unpackItem(Buffer.from([0x93, 0x02, 0x07, 0xc0])), [2, 7, null]);
});
