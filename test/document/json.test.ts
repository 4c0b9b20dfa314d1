import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  buildObject,
  decodeMember,
  minifyJson,
  scanJson,
  scanObject,
  spliceObject,
} from '../../src/document/json.js';
import { CouchError } from '../../src/util/couch-error.js';
import { scaled } from '../support/scale.js';

const RUNS = scaled(500, 10000);

function expectCouchError(action: () => unknown, error: string, reason: string): void {
  assert.throws(action, (thrown: unknown) => {
    assert.ok(thrown instanceof CouchError, `expected a CouchError, got ${String(thrown)}`);
    assert.equal(thrown.error, error);
    assert.equal(thrown.reason, reason);
    return true;
  });
}

function expectInvalidJson(input: string | Uint8Array): void {
  const bytes = typeof input === 'string' ? Buffer.from(input) : input;
  expectCouchError(() => scanJson(bytes), 'bad_request', 'invalid UTF-8 JSON');
}

/** Serializes like JSON.stringify, with `gap` around every structural token. */
function spaced(value: unknown, gap: string): string {
  if (Array.isArray(value)) {
    return `[${gap}${value.map((item) => spaced(item, gap)).join(`${gap},${gap}`)}${gap}]`;
  }
  if (value !== null && typeof value === 'object') {
    const members = Object.entries(value).map(
      ([key, item]) => `${JSON.stringify(key)}${gap}:${gap}${spaced(item, gap)}`,
    );
    return `{${gap}${members.join(`${gap},${gap}`)}${gap}}`;
  }
  return JSON.stringify(value);
}

const gaps = fc.constantFrom('', ' ', '\t', ' \r\n ');

test('invalid JSON is rejected with CouchDB error', () => {
  const cases = [
    '',
    '   ',
    '{',
    '}',
    '{"a":1,}',
    '[1,]',
    '[,1]',
    '01',
    '-01',
    '1.',
    '.5',
    '1e',
    '1e+',
    '+1',
    '-',
    'NaN',
    'Infinity',
    "{'a':1}",
    '{"a" 1}',
    '{"a":1 "b":2}',
    '{1:2}',
    '"abc',
    '"\\x"',
    '"\\u12"',
    '"\\u12g4"',
    '"\\ud800"',
    '"\\udc00"',
    '"\\ud800\\u0041"',
    '"\\ud800x"',
    '"a\tb"',
    '"a\nb"',
    'tru',
    'nul',
    'True',
    '{"a":1}}',
    '[1] [2]',
    '\ufeff{}',
    '\f{}',
    '{"a":1}\u00a0',
    '[1 2]',
  ];
  for (const input of cases) expectInvalidJson(input);
});

test('invalid UTF-8 is rejected as invalid JSON', () => {
  const quote = 0x22;
  expectInvalidJson(Uint8Array.of(quote, 0xff, quote));
  expectInvalidJson(Uint8Array.of(quote, 0xc0, 0xaf, quote));
  expectInvalidJson(Uint8Array.of(quote, 0xed, 0xa0, 0x80, quote));
  expectInvalidJson(Uint8Array.of(quote, 0xe2, 0x82, quote));
  expectInvalidJson(Uint8Array.of(0xc3, 0xa9));
});

test('valid non-objects are rejected as documents', () => {
  for (const input of ['[]', '1', '"x"', 'null', 'true']) {
    assert.equal(scanJson(Buffer.from(input)).kind === 'object', false);
    expectCouchError(
      () => scanObject(Buffer.from(input)),
      'bad_request',
      'Document must be a JSON object',
    );
  }
});

test('nesting deeper than maximum is rejected', () => {
  const maxDepth = 7;
  const atLimit = `${'['.repeat(maxDepth)}${']'.repeat(maxDepth)}`;
  const overLimit = `${'[{"a":'.repeat(4)}1${'}]'.repeat(4)}`;
  assert.equal(scanJson(Buffer.from(atLimit), { maxDepth }).kind, 'array');
  expectCouchError(
    () => scanJson(Buffer.from(overLimit), { maxDepth }),
    'bad_request',
    'JSON nesting is deeper than the maximum of 7',
  );
});

test('acceptance agrees with JSON.parse on random text', () => {
  // No `d` or `D`, so no escape can name a UTF-16 surrogate (which JSON.parse accepts alone).
  const alphabet = [...'{}[],:"\\ \t\n\r\f0123456789.eE+-truefalsn/bu', 'é', '😀', '\u0001'];
  const text = fc.array(fc.constantFrom(...alphabet), { maxLength: 40 }).map((c) => c.join(''));
  const jsonish = fc.oneof(
    text,
    fc.json().map((json) => json.slice(0, json.length - 1)),
    fc.json(),
  );
  fc.assert(
    fc.property(jsonish, (input) => {
      let expected = true;
      try {
        JSON.parse(input);
      } catch {
        expected = false;
      }
      let actual = true;
      try {
        scanJson(Buffer.from(input));
      } catch (error) {
        assert.ok(error instanceof CouchError);
        actual = false;
      }
      assert.equal(actual, expected, `input ${JSON.stringify(input)}`);
    }),
    { numRuns: RUNS * 5 },
  );
});

test('minify equals compact JSON.stringify', () => {
  fc.assert(
    fc.property(fc.jsonValue({ stringUnit: 'binary' }), gaps, (value, gap) => {
      const bytes = Buffer.from(spaced(value, gap));
      const scanned = scanJson(bytes);
      const minified = minifyJson(bytes, scanned.start, scanned.end);
      assert.equal(minified.toString('utf8'), JSON.stringify(value));
      assert.deepEqual(JSON.parse(minified.toString('utf8')), JSON.parse(bytes.toString('utf8')));
    }),
    { numRuns: RUNS },
  );
});

test('scan finds members in order', () => {
  const objects = fc
    .dictionary(fc.string({ unit: 'binary' }), fc.jsonValue(), { maxKeys: 8 })
    .map((object) => JSON.parse(JSON.stringify(object)) as Record<string, unknown>);
  fc.assert(
    fc.property(objects, gaps, (object, gap) => {
      const scanned = scanObject(Buffer.from(spaced(object, gap)));
      assert.deepEqual(
        scanned.members.map((member) => member.key),
        Object.keys(object),
      );
      for (const member of scanned.members) {
        assert.deepEqual(decodeMember(scanned, member), object[member.key]);
        assert.equal(member.compact, gap === '');
      }
      assert.equal(scanned.compact, gap === '');
    }),
    { numRuns: RUNS },
  );
});

test('escaped keys are decoded', () => {
  const scanned = scanObject(
    Buffer.from('{"\\u005fid":1,"caf\\u00e9":2,"\\ud83d\\ude00":3,"é":4}'),
  );
  assert.deepEqual(
    scanned.members.map((member) => member.key),
    ['_id', 'café', '😀', 'é'],
  );
});

test('array elements are spans', () => {
  const bytes = Buffer.from('[ {"a": 1} , 2,"x" ,[ ] ]');
  const scanned = scanJson(bytes);
  const texts = scanned.elements.map((span) => bytes.toString('utf8', span.start, span.end));
  assert.deepEqual(texts, ['{"a": 1}', '2', '"x"', '[ ]']);
  assert.deepEqual(
    scanned.elements.map((span) => span.compact),
    [false, true, true, false],
  );
  const inner = scanObject(bytes, {
    start: scanned.elements[0]!.start,
    end: scanned.elements[0]!.end,
  });
  assert.deepEqual(
    inner.members.map((member) => member.key),
    ['a'],
  );
});

test('numbers and escapes keep their bytes', () => {
  const text =
    '{ "big": 123456789012345678901234567890, "neg": -0, "exp": 1E+400, "frac": 1.50,' +
    ' "esc": "\\u00e9\\/\\"", "keys": {"b": 1, "a": 2, "1": 3} }';
  const scanned = scanObject(Buffer.from(text));
  const body = buildObject(scanned, () => true).toString('utf8');
  assert.equal(
    body,
    '{"big":123456789012345678901234567890,"neg":-0,"exp":1E+400,"frac":1.50,' +
      '"esc":"\\u00e9\\/\\"","keys":{"b":1,"a":2,"1":3}}',
  );
});

test('buildObject keeps chosen members', () => {
  const objects = fc.dictionary(
    fc.oneof(
      fc.string(),
      fc.string().map((key) => `_${key}`),
    ),
    fc.jsonValue(),
    { maxKeys: 8 },
  );
  fc.assert(
    fc.property(objects, gaps, (object, gap) => {
      const scanned = scanObject(Buffer.from(spaced(object, gap)));
      const body = buildObject(scanned, (member) => !member.key.startsWith('_'));
      const expected = Object.fromEntries(
        Object.entries(object).filter(([key]) => !key.startsWith('_')),
      );
      assert.equal(body.toString('utf8'), JSON.stringify(expected));
    }),
    { numRuns: RUNS },
  );
});

test('unchanged compact object is not copied', () => {
  const bytes = Buffer.from('{"a":1,"b":[2]}');
  const body = buildObject(scanObject(bytes), () => true);
  assert.equal(body.buffer, bytes.buffer);
  assert.equal(body.byteOffset, bytes.byteOffset);
});

test('spliceObject wraps body members', () => {
  const cases: [string, string, string, string][] = [
    ['{}', '', '', '{}'],
    ['{}', '"_id":"a"', '', '{"_id":"a"}'],
    ['{}', '', '"_deleted":true', '{"_deleted":true}'],
    ['{}', '"_id":"a"', '"_deleted":true', '{"_id":"a","_deleted":true}'],
    ['{"x":1}', '"_id":"a"', '', '{"_id":"a","x":1}'],
    ['{"x":1}', '', '"z":2', '{"x":1,"z":2}'],
    ['{"x":1,"y":2}', '"_id":"é"', '"z":2', '{"_id":"é","x":1,"y":2,"z":2}'],
  ];
  for (const [body, leading, trailing, expected] of cases) {
    assert.equal(spliceObject(Buffer.from(body), leading, trailing).toString('utf8'), expected);
  }
});

test('splice round trip matches JSON.parse', () => {
  const objects = fc.dictionary(fc.string({ unit: 'binary' }), fc.jsonValue(), { maxKeys: 6 });
  fc.assert(
    fc.property(objects, fc.string({ unit: 'binary' }), (object, id) => {
      const body = buildObject(scanObject(Buffer.from(JSON.stringify(object))), () => true);
      const leading = `"_id":${JSON.stringify(id)}`;
      const spliced = spliceObject(body, leading, '"_deleted":true');
      const parsed = JSON.parse(spliced.toString('utf8'));
      const expected = JSON.parse(JSON.stringify({ _id: id, ...object, _deleted: true }));
      assert.deepEqual(parsed, expected);
      assert.equal(scanObject(spliced).kind, 'object');
    }),
    { numRuns: RUNS },
  );
});
