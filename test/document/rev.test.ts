import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  canonicalRevId,
  compareRevIds,
  formatLocalRev,
  formatRev,
  nextLocalRevCounter,
  parseRev,
  revIdBytes,
  tryParseRev,
} from '../../src/document/rev.js';
import { newRevId, nextRev } from '../../src/document/revid.js';
import { CouchError } from '../../src/util/couch-error.js';
import { scaled } from '../support/scale.js';

const RUNS = scaled(300, 10000);
const HEX = '0123456789abcdef0123456789abcdef';

test('revisions parse like CouchDB', () => {
  const cases: [string, number, string][] = [
    ['1-abc', 1, 'abc'],
    ['01-abc', 1, 'abc'],
    ['+7-abc', 7, 'abc'],
    ['0-1', 0, '1'],
    ['1-', 1, ''],
    ['12-a-b', 12, 'a-b'],
    [`3-${HEX.toUpperCase()}`, 3, HEX],
    ['2-abcdefghijklmnop', 2, Buffer.from('abcdefghijklmnop').toString('hex')],
    ['2-ééééé', 2, 'ééééé'],
  ];
  for (const [text, pos, id] of cases) {
    assert.deepEqual(parseRev(text), { pos, id }, text);
  }
});

test('invalid revisions are rejected', () => {
  const cases: unknown[] = [
    '',
    'abc',
    '-1-a',
    '1.5-a',
    ' 1-a',
    '1 -a',
    'x-a',
    '0x1-a',
    '9007199254740993-a',
    `1-${'z'.repeat(32)}`,
    `1-${'é'.repeat(16)}`,
    5,
    null,
    ['1-a'],
  ];
  for (const text of cases) {
    assert.equal(tryParseRev(text), null, String(text));
    assert.throws(
      () => parseRev(text),
      (error: unknown) =>
        error instanceof CouchError &&
        error.error === 'bad_request' &&
        error.reason === 'Invalid rev format',
    );
  }
});

test('format inverts parse for canonical ids', () => {
  const ids = fc.oneof(
    fc.stringMatching(/^[0-9a-f]{32}$/),
    fc.string({ unit: 'binary', maxLength: 40 }).filter((text) => canonicalRevId(text) === text),
  );
  fc.assert(
    fc.property(fc.nat({ max: 2 ** 40 }), ids, (pos, id) => {
      assert.deepEqual(parseRev(formatRev({ pos, id })), { pos, id });
    }),
    { numRuns: RUNS },
  );
});

/** A revision id in canonical form: hex, or text of a length CouchDB keeps as text. */
const canonicalId = fc.oneof(
  fc.stringMatching(/^[0-9a-f]{32}$/),
  fc.string({ unit: 'binary', maxLength: 20 }).map((text) => canonicalRevId(text) ?? 'x'),
);

test('rev ids compare as CouchDB binaries', () => {
  fc.assert(
    fc.property(canonicalId, canonicalId, (a, b) => {
      const expected = Math.sign(Buffer.compare(revIdBytes(a), revIdBytes(b)));
      assert.equal(Math.sign(compareRevIds(a, b)), expected);
      assert.equal(Math.sign(compareRevIds(b, a)), expected === 0 ? 0 : -expected);
    }),
    { numRuns: RUNS },
  );
  assert.ok(compareRevIds(HEX, 'a') < 0, 'raw byte 0x01 sorts before text "a"');
  assert.ok(compareRevIds(`f${HEX.slice(1)}`, 'a') > 0, 'raw byte 0xf1 sorts after "a"');
  assert.ok(compareRevIds('ab', 'abc') < 0, 'a prefix sorts first');
});

test('local revision counters follow CouchDB', () => {
  const cases: [string[], number, boolean, number | null][] = [
    [[], 0, false, 1],
    [['5'], 0, false, 6],
    [['+5'], 0, false, 6],
    [['-3'], 0, false, -2],
    [['5'], 0, true, 0],
    [[], 0, true, 0],
    [['5'], 1, false, null],
    [['a'], 0, false, null],
    [[''], 0, false, null],
    [[], 2, false, null],
  ];
  for (const [ids, start, deleted, expected] of cases) {
    assert.equal(nextLocalRevCounter({ start, ids }, deleted), expected, JSON.stringify(ids));
  }
  assert.equal(formatLocalRev(7), '0-7');
});

/** Encodes the revision id input exactly as the revid.ts header describes, independently. */
function documentedEncoding(
  deleted: boolean,
  parent: { pos: number; id: string } | null,
  body: Buffer,
  attachments: { name: string; contentType: string; digest: string }[],
): Buffer {
  const u32 = (value: number) => {
    const bytes = Buffer.alloc(4);
    bytes.writeUInt32BE(value);
    return bytes;
  };
  const text = (value: string) =>
    Buffer.concat([u32(Buffer.byteLength(value)), Buffer.from(value)]);
  const position = Buffer.alloc(8);
  position.writeBigUInt64BE(BigInt(parent?.pos ?? 0));
  return Buffer.concat([
    Buffer.of(1, deleted ? 1 : 0),
    position,
    text(parent?.id ?? ''),
    u32(body.length),
    body,
    u32(attachments.length),
    ...attachments.flatMap((a) => [text(a.name), text(a.contentType), text(a.digest)]),
  ]);
}

const revIdInputs = fc.record({
  deleted: fc.boolean(),
  parent: fc.option(fc.record({ pos: fc.nat({ max: 2 ** 40 }), id: canonicalId })),
  body: fc.uint8Array({ maxLength: 64 }).map((bytes) => Buffer.from(bytes)),
  attachments: fc.array(
    fc.record({ name: fc.string(), contentType: fc.string(), digest: fc.string() }),
    { maxLength: 3 },
  ),
});

test('rev ids hash the documented encoding', () => {
  fc.assert(
    fc.property(revIdInputs, (input) => {
      const expected = createHash('md5')
        .update(documentedEncoding(input.deleted, input.parent, input.body, input.attachments))
        .digest('hex');
      assert.equal(newRevId(input), expected);
      assert.match(expected, /^[0-9a-f]{32}$/);
    }),
    { numRuns: RUNS },
  );
});

test('every input field changes rev id', () => {
  const base = {
    deleted: false,
    parent: { pos: 2, id: HEX },
    body: Buffer.from('{"a":1}'),
    attachments: [
      { name: 'ab', contentType: 'c', digest: 'md5-1' },
      { name: 'x', contentType: 'y', digest: 'md5-2' },
    ],
  };
  const variants = [
    { ...base, deleted: true },
    { ...base, parent: { pos: 3, id: HEX } },
    { ...base, parent: { pos: 2, id: `f${HEX.slice(1)}` } },
    { ...base, parent: null },
    { ...base, body: Buffer.from('{"a":2}') },
    { ...base, attachments: [] },
    { ...base, attachments: [...base.attachments].reverse() },
    { ...base, attachments: [{ ...base.attachments[0]!, name: 'a', contentType: 'bc' }] },
    { ...base, attachments: [{ ...base.attachments[0]!, digest: 'md5-3' }] },
  ];
  const ids = new Set([newRevId(base), ...variants.map(newRevId)]);
  assert.equal(ids.size, variants.length + 1);
  assert.equal(newRevId(base), newRevId({ ...base, body: Buffer.from('{"a":1}') }));
});

test('next rev position follows parent', () => {
  const first = nextRev({ deleted: false, parent: null, body: Buffer.from('{}') });
  assert.equal(first.pos, 1);
  const second = nextRev({ deleted: false, parent: first, body: Buffer.from('{}') });
  assert.equal(second.pos, 2);
  assert.notEqual(second.id, first.id);
});
