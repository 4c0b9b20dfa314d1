import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { compareJson, compareRaw } from '../../src/document/collate.js';
import { compileSelector } from '../../src/document/selector.js';
import { CouchError } from '../../src/util/couch-error.js';
import { scaled } from '../support/scale.js';

const RUNS = scaled(500, 10000);

const docs = {
  alice: { _id: 'alice', name: 'Alice', age: 31, tags: ['a', 'b'], address: { city: 'Oslo' } },
  bob: { _id: 'bob', name: 'bob', age: 25, tags: ['b'], score: 7.5, 'dotted.key': 1 },
  carol: { _id: 'Carol', age: null, tags: [], list: [{ n: 1 }, { n: 5 }], flag: true },
  dave: { _id: 'dave', age: '40', nested: [[1, 2], [3]], counts: [80, 90] },
};

function matching(selector: unknown): string[] {
  const compiled = compileSelector(selector);
  return Object.entries(docs)
    .filter(([, doc]) => compiled.matches(doc))
    .map(([name]) => name);
}

test('selector operators match CouchDB', () => {
  const cases: [unknown, string[]][] = [
    [{}, ['alice', 'bob', 'carol', 'dave']],
    [{ age: 25 }, ['bob']],
    [{ age: { $eq: 25 } }, ['bob']],
    [{ age: { $ne: 25 } }, ['alice', 'carol', 'dave']],
    [{ age: { $gt: 25 } }, ['alice', 'dave']],
    [{ age: { $gte: 25 } }, ['alice', 'bob', 'dave']],
    [{ age: { $lt: 31 } }, ['bob', 'carol']],
    [{ age: { $lte: null } }, ['carol']],
    [{ score: { $exists: true } }, ['bob']],
    [{ score: { $exists: false } }, ['alice', 'carol', 'dave']],
    [{ age: { $type: 'number' } }, ['alice', 'bob']],
    [{ age: { $type: 'null' } }, ['carol']],
    [{ age: { $type: 'string' } }, ['dave']],
    [{ tags: { $type: 'array' } }, ['alice', 'bob', 'carol']],
    [{ address: { $type: 'object' } }, ['alice']],
    [{ flag: { $type: 'boolean' } }, ['carol']],
    [{ age: { $in: [25, '40'] } }, ['bob', 'dave']],
    [{ tags: { $in: ['a'] } }, ['alice']],
    [{ age: { $nin: [25, 31] } }, ['carol', 'dave']],
    [{ tags: { $nin: ['b'] } }, ['carol']],
    [{ tags: { $all: ['a', 'b'] } }, ['alice']],
    [{ tags: { $all: [['b']] } }, ['bob']],
    [{ tags: { $all: [] } }, ['alice', 'bob', 'carol']],
    [{ tags: { $size: 0 } }, ['carol']],
    [{ tags: { $size: 1 } }, ['bob']],
    [{ list: { $elemMatch: { n: { $gt: 2 } } } }, ['carol']],
    [{ counts: { $elemMatch: { $gte: 85, $lt: 95 } } }, ['dave']],
    [{ counts: { $allMatch: { $gte: 80 } } }, ['dave']],
    [{ tags: { $allMatch: { $eq: 'b' } } }, ['bob']],
    [{ name: { $regex: '^[Aa]' } }, ['alice']],
    [{ name: { $regex: 'o' } }, ['bob']],
    [{ age: { $mod: [5, 0] } }, ['bob']],
    [{ age: { $mod: [2, 1] } }, ['alice', 'bob']],
    [{ 'address.city': 'Oslo' }, ['alice']],
    [{ address: { city: 'Oslo' } }, ['alice']],
    [{ 'dotted\\.key': 1 }, ['bob']],
    [{ 'list.1.n': 5 }, ['carol']],
    [{ 'nested.0.1': 2 }, ['dave']],
    [{ 'tags.0': 'b' }, ['bob']],
    [{ $and: [{ age: { $gt: 20 } }, { age: { $lt: 30 } }] }, ['bob']],
    [{ age: { $gt: 20, $lt: 30 } }, ['bob']],
    [{ $or: [{ age: 25 }, { flag: true }] }, ['bob', 'carol']],
    [{ $nor: [{ age: 25 }, { age: 31 }] }, ['carol', 'dave']],
    // Negations move down to the fields, and a field that is missing matches no condition.
    [{ $nor: [{ age: 25 }, { flag: true }] }, []],
    [{ $not: { age: 25 } }, ['alice', 'carol', 'dave']],
    [{ age: { $not: { $gt: 30 } } }, ['bob', 'carol']],
    [{ $not: { score: { $exists: true } } }, ['alice', 'carol', 'dave']],
    [{ name: { $gt: 'B' } }, ['bob']],
    [{ name: { $lt: 'b' } }, ['alice']],
    [{ _id: { $gt: 'B' } }, ['alice', 'bob', 'carol', 'dave']],
    [{ _id: { $lt: 'a' } }, ['carol']],
    [{ missing: { $ne: 1 } }, []],
    [{ $not: { missing: 1 } }, []],
    [{ $and: [] }, ['alice', 'bob', 'carol', 'dave']],
    [{ $or: [] }, []],
  ];
  for (const [selector, expected] of cases) {
    assert.deepEqual(matching(selector), expected, JSON.stringify(selector));
  }
});

function expectSelectorError(selector: unknown, reason: string): void {
  assert.throws(
    () => compileSelector(selector),
    (error: unknown) => {
      assert.ok(error instanceof CouchError);
      assert.equal(error.status, 400);
      assert.equal(error.error, 'bad_request');
      assert.equal(error.reason, reason);
      return true;
    },
    JSON.stringify(selector),
  );
}

test('invalid selectors are rejected', () => {
  expectSelectorError([], 'Selector error: expected a JSON object');
  expectSelectorError('x', 'Selector error: expected a JSON object');
  expectSelectorError({ $and: {} }, 'Bad argument for operator $and: {}');
  expectSelectorError({ $or: 1 }, 'Bad argument for operator $or: 1');
  expectSelectorError({ $nor: 'x' }, 'Bad argument for operator $nor: "x"');
  expectSelectorError({ $not: [] }, 'Bad argument for operator $not: []');
  expectSelectorError({ a: { $in: 1 } }, 'Bad argument for operator $in: 1');
  expectSelectorError({ a: { $nin: {} } }, 'Bad argument for operator $nin: {}');
  expectSelectorError({ a: { $all: 'x' } }, 'Bad argument for operator $all: "x"');
  expectSelectorError({ a: { $exists: 1 } }, 'Bad argument for operator $exists: 1');
  expectSelectorError({ a: { $type: 1 } }, 'Bad argument for operator $type: 1');
  expectSelectorError({ a: { $mod: [1.5, 0] } }, 'Bad argument for operator $mod: [1.5,0]');
  expectSelectorError({ a: { $mod: [0, 0] } }, 'Bad argument for operator $mod: [0,0]');
  expectSelectorError({ a: { $mod: [2] } }, 'Bad argument for operator $mod: [2]');
  expectSelectorError({ a: { $regex: '(' } }, 'Bad argument for operator $regex: "("');
  expectSelectorError({ a: { $regex: 1 } }, 'Bad argument for operator $regex: 1');
  expectSelectorError({ a: { $size: -1 } }, 'Bad argument for operator $size: -1');
  expectSelectorError({ a: { $elemMatch: 1 } }, 'Bad argument for operator $elemMatch: 1');
  expectSelectorError({ a: { $foo: 1 } }, 'Invalid operator: $foo');
  expectSelectorError({ $where: 'x' }, 'Unsupported operator: $where');
  expectSelectorError({ $text: 'x' }, 'Unsupported operator: $text');
  expectSelectorError({ $gt: 5 }, 'One or more conditions is missing a field name.');
  expectSelectorError({ 'a\\.b..c': 1 }, 'Invalid field name: a\\.b..c');
});

test('negation flips matches on present fields', () => {
  const operators = ['$eq', '$ne', '$gt', '$gte', '$lt', '$lte'];
  fc.assert(
    fc.property(
      fc.constantFrom(...operators),
      fc.jsonValue({ maxDepth: 2 }),
      fc.jsonValue({ maxDepth: 2 }),
      (op, argument, value) => {
        const plain = compileSelector({ v: { [op]: argument } });
        const negated = compileSelector({ $not: { v: { [op]: argument } } });
        const doc = { v: value };
        assert.equal(negated.matches(doc), !plain.matches(doc));
        assert.equal(negated.matches({}), false);
      },
    ),
    { numRuns: RUNS },
  );
});

test('collation orders types like CouchDB', () => {
  const ordered = [
    null,
    false,
    true,
    -1,
    0,
    2.5,
    'a',
    'A',
    'b',
    'B',
    [],
    [1],
    [1, 2],
    {},
    { a: 1 },
  ];
  for (let i = 0; i < ordered.length; i++) {
    for (let j = 0; j < ordered.length; j++) {
      assert.equal(
        Math.sign(compareJson(ordered[i], ordered[j])),
        Math.sign(i - j),
        `${JSON.stringify(ordered[i])} vs ${JSON.stringify(ordered[j])}`,
      );
    }
  }
  const raw = [-1, 3, false, null, true, { a: 1 }, [], [1], 'A', 'a', 'b', '\u{ffff}', '\u{10000}'];
  for (let i = 0; i < raw.length; i++) {
    for (let j = 0; j < raw.length; j++) {
      assert.equal(Math.sign(compareRaw(raw[i], raw[j])), Math.sign(i - j));
    }
  }
});

test('collation is a total order', () => {
  const values = fc.jsonValue({ maxDepth: 2 });
  fc.assert(
    fc.property(values, values, values, (a, b, c) => {
      for (const compare of [compareJson, compareRaw]) {
        const ab = Math.sign(compare(a, b));
        assert.equal(Math.sign(compare(b, a)), ab === 0 ? 0 : -ab);
        if (ab <= 0 && compare(b, c) <= 0) assert.ok(compare(a, c) <= 0);
      }
    }),
    { numRuns: RUNS },
  );
});
