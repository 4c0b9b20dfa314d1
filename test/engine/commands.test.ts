/**
 * Commands: every kind round-trips through its encoding, a payload cut into prefix and
 * segments joins back byte for byte, and anything `encodeCommand` could not have written is
 * rejected with `CommandFormatError`, never decoded into a wrong command.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  ATTACHMENT_CHUNK_BYTES,
  type Command,
  CommandFormatError,
  commandSegments,
  decodeCommand,
  documentsCommand,
  encodeCommand,
  joinCommand,
  splitCommand,
} from '../../src/engine/commands.js';
import { scaled } from '../support/scale.js';

const RUNS = scaled(300, 5000);

const bytesArbitrary = fc.uint8Array({ maxLength: 64 }).map((bytes) => Buffer.from(bytes));
/** Plain objects, as commands are built, so decoded commands compare equal. */
const plain = { noNullPrototype: true } as const;
const revisionsArbitrary = fc.record(
  {
    start: fc.nat({ max: 2 ** 40 }),
    ids: fc.array(fc.string({ maxLength: 34 }), { maxLength: 4 }),
  },
  plain,
);
const requestIdArbitrary = fc.string({ maxLength: 40 });
const revposArbitrary = fc.option(fc.nat({ max: 2 ** 40 }), { nil: null });
const attachmentArbitrary = fc.oneof(
  fc.record(
    {
      kind: fc.constant('stub' as const),
      name: fc.string({ maxLength: 12 }),
      revpos: revposArbitrary,
    },
    plain,
  ),
  fc.record(
    {
      kind: fc.constant('data' as const),
      name: fc.string({ maxLength: 12 }),
      contentType: fc.string({ maxLength: 20 }),
      encoding: fc.constantFrom('identity' as const, 'gzip' as const),
      revpos: revposArbitrary,
      length: fc.nat({ max: 2 ** 40 }),
      digest: fc.uint8Array({ minLength: 16, maxLength: 16 }).map((bytes) => Buffer.from(bytes)),
      chunks: fc.array(bytesArbitrary, { maxLength: 3 }),
    },
    plain,
  ),
);

const commandArbitrary: fc.Arbitrary<Command> = fc.oneof(
  fc.record(
    {
      kind: fc.constant('documents' as const),
      requestId: requestIdArbitrary,
      newEdits: fc.boolean(),
      docs: fc.array(
        fc.record(
          {
            id: fc.string({ maxLength: 20 }),
            revisions: revisionsArbitrary,
            deleted: fc.boolean(),
            body: bytesArbitrary,
            attachments: fc.option(fc.array(attachmentArbitrary, { maxLength: 3 }), { nil: null }),
          },
          plain,
        ),
        { maxLength: 5 },
      ),
    },
    plain,
  ),
  fc.record(
    {
      kind: fc.constant('local_put' as const),
      requestId: requestIdArbitrary,
      id: fc.string(),
      revisions: revisionsArbitrary,
      body: bytesArbitrary,
    },
    plain,
  ),
  fc.record(
    {
      kind: fc.constant('local_delete' as const),
      requestId: requestIdArbitrary,
      id: fc.string(),
      revisions: revisionsArbitrary,
    },
    plain,
  ),
  fc.record(
    {
      kind: fc.constant('revs_limit' as const),
      requestId: requestIdArbitrary,
      limit: fc.nat(),
    },
    plain,
  ),
  fc.record(
    {
      kind: fc.constant('security' as const),
      requestId: requestIdArbitrary,
      security: bytesArbitrary,
    },
    plain,
  ),
  fc.record({ kind: fc.constant('noop' as const), requestId: requestIdArbitrary }, plain),
  fc.record(
    {
      kind: fc.constant('purge' as const),
      requestId: requestIdArbitrary,
      docs: fc.array(
        fc.record(
          {
            uuid: fc.string({ maxLength: 32 }),
            id: fc.string({ maxLength: 20 }),
            revs: fc.array(fc.string({ maxLength: 34 }), { maxLength: 3 }),
          },
          plain,
        ),
        { maxLength: 4 },
      ),
    },
    plain,
  ),
  fc.record(
    {
      kind: fc.constant('purged_infos_limit' as const),
      requestId: requestIdArbitrary,
      limit: fc.nat(),
    },
    plain,
  ),
  fc.record({ kind: fc.constant('compact' as const), requestId: requestIdArbitrary }, plain),
);

test('every command kind round-trips', () => {
  fc.assert(
    fc.property(commandArbitrary, (command) => {
      const encoded = encodeCommand(command);
      assert.deepEqual(decodeCommand(encoded), command);
      assert.ok(encodeCommand(decodeCommand(encoded)).equals(encoded), 'encoding is canonical');
    }),
    { numRuns: RUNS },
  );
});

test('split payload joins back byte for byte', () => {
  fc.assert(
    fc.property(commandArbitrary, (command) => {
      const encoded = encodeCommand(command);
      const { command: decoded, split } = splitCommand(encoded);
      assert.deepEqual(decoded, command);
      assert.deepEqual(split.segments, commandSegments(command));
      assert.ok(joinCommand(split).equals(encoded));
    }),
    { numRuns: RUNS },
  );
});

test('truncated or extended payloads are rejected', () => {
  fc.assert(
    fc.property(
      commandArbitrary,
      fc.nat(),
      fc.uint8Array({ minLength: 1, maxLength: 8 }),
      (command, cut, extra) => {
        const encoded = encodeCommand(command);
        const length = cut % encoded.length;
        assert.throws(() => decodeCommand(encoded.subarray(0, length)), CommandFormatError);
        assert.throws(() => decodeCommand(Buffer.concat([encoded, extra])), CommandFormatError);
      },
    ),
    { numRuns: RUNS },
  );
});

test('damaged payloads never decode to another command', () => {
  fc.assert(
    fc.property(
      commandArbitrary,
      fc.nat(),
      fc.integer({ min: 1, max: 255 }),
      (command, at, flip) => {
        const encoded = Buffer.from(encodeCommand(command));
        const offset = at % encoded.length;
        encoded[offset]! ^= flip;
        try {
          const decoded = decodeCommand(encoded);
          // A flip inside a string or segment gives another valid command of the same shape.
          assert.ok(
            encodeCommand(decoded).equals(encoded),
            'a decoded payload re-encodes to itself',
          );
        } catch (error) {
          assert.ok(error instanceof CommandFormatError, String(error));
        }
      },
    ),
    { numRuns: RUNS },
  );
});

test('unknown version and kind are rejected', () => {
  const encoded = Buffer.from(encodeCommand({ kind: 'noop', requestId: 'r' }));
  const newer = Buffer.from(encoded);
  newer[0] = 2;
  assert.throws(() => decodeCommand(newer), /unknown command format version 2/);
  const unknownKind = Buffer.from(encoded);
  unknownKind[1] = 99;
  assert.throws(() => decodeCommand(unknownKind), /unknown command kind 99/);
  assert.throws(() => decodeCommand(Buffer.alloc(0)), CommandFormatError);
});

test('documents command from a write request', () => {
  const body = Buffer.from('{"n":12345678901234567890}');
  const data = Buffer.alloc(ATTACHMENT_CHUNK_BYTES * 2 + 5, 7);
  const digest = Buffer.alloc(16, 1);
  const command = documentsCommand('n1-b1-1', {
    newEdits: false,
    docs: [
      {
        id: 'x',
        revisions: { start: 2, ids: ['b', 'a'] },
        deleted: false,
        body,
        attachments: null,
      },
      {
        id: 'y',
        revisions: { start: 0, ids: [] },
        deleted: true,
        body,
        attachments: [
          { kind: 'stub', name: 'a.txt', revpos: 1 },
          {
            kind: 'data',
            name: 'b.bin',
            contentType: 'application/octet-stream',
            encoding: 'identity',
            revpos: null,
            length: data.length,
            digest,
            data,
          },
        ],
      },
    ],
  });
  const chunks = [
    data.subarray(0, ATTACHMENT_CHUNK_BYTES),
    data.subarray(ATTACHMENT_CHUNK_BYTES, 2 * ATTACHMENT_CHUNK_BYTES),
    data.subarray(2 * ATTACHMENT_CHUNK_BYTES),
  ];
  assert.deepEqual(commandSegments(command), [body, body, ...chunks]);
  const decoded = decodeCommand(encodeCommand(command));
  assert.deepEqual(decoded, command);
});
