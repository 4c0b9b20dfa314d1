import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { ByteReader, ByteWriter } from '../../src/document/bytes.js';
import type { RevPath } from '../../src/document/rev.js';
import { stem } from '../../src/document/rev-stem.js';
import { mergePath, type RevTree, revTreesEqual } from '../../src/document/rev-tree.js';
import {
  decodeRevTree,
  encodeRevTree,
  type LeafValueCodec,
  readRevTree,
  writeRevTree,
} from '../../src/document/rev-tree-codec.js';
import { InvariantError } from '../../src/util/assert.js';
import { scaled } from '../support/scale.js';
import { type Leaf, pathPicksArbitrary, pathTo, universeArbitrary } from './rev-tree-model.js';

const RUNS = scaled(1000, 20000);
const HEX = '0123456789abcdef0123456789abcdef';

const leafCodec: LeafValueCodec<Leaf> = {
  encode(value, writer) {
    writer.writeByte(value.deleted ? 1 : 0);
    writer.writeVarint(value.tag);
  },
  decode(reader) {
    const deleted = reader.readByte() === 1;
    return { deleted, tag: reader.readVarint() };
  },
};

function sameLeaf(a: Leaf, b: Leaf): boolean {
  return a.deleted === b.deleted && a.tag === b.tag;
}

const mergesArbitrary = fc
  .tuple(universeArbitrary, pathPicksArbitrary, fc.integer({ min: 1, max: 8 }))
  .map(([universe, picks, limit]) => {
    const merges = picks.map((pick) => {
      const index = pick.revision % universe.length;
      const path: RevPath = pathTo(universe, index, pick.keep);
      return { path, leaf: { deleted: universe[index]!.deleted, tag: index } };
    });
    return { merges, limit };
  });

function replay(merges: readonly { path: RevPath; leaf: Leaf }[], limit: number): RevTree<Leaf> {
  let tree: RevTree<Leaf> = [];
  for (const { path, leaf } of merges) tree = stem(mergePath(tree, path, leaf).tree, limit);
  return tree;
}

test('codec example matches documented bytes', () => {
  const tree: RevTree<Leaf> = [
    { pos: 1, node: { id: HEX, value: { deleted: false, tag: 5 }, children: [] } },
  ];
  const encoded = encodeRevTree(tree, leafCodec);
  assert.equal(encoded.toString('hex'), `01010100${HEX}000005`);

  const textual: RevTree<Leaf> = [
    {
      pos: 300,
      node: {
        id: 'ab',
        value: null,
        children: [{ id: 'é', value: { deleted: true, tag: 1 }, children: [] }],
      },
    },
  ];
  // Position 300 is the varint ac 02; 'ab' has tag 3 and 'é' (two bytes) tag 3 as well.
  assert.equal(
    encodeRevTree(textual, leafCodec).toString('hex'),
    '0101ac0203616201' + '03c3a9000101',
  );
});

test('codec round trips merged trees', () => {
  fc.assert(
    fc.property(mergesArbitrary, ({ merges, limit }) => {
      const tree = replay(merges, limit);
      const encoded = encodeRevTree(tree, leafCodec);
      const decoded = decodeRevTree(encoded, leafCodec);
      assert.ok(revTreesEqual(decoded, tree, sameLeaf));
      assert.deepEqual(decoded, tree);
      assert.deepEqual(encodeRevTree(decoded, leafCodec), encoded);
    }),
    { numRuns: RUNS },
  );
});

test('replicas write byte-identical trees', () => {
  fc.assert(
    fc.property(mergesArbitrary, ({ merges, limit }) => {
      const first = encodeRevTree(replay(merges, limit), leafCodec);
      const copies = merges.map(({ path, leaf }) => ({
        path: { start: path.start, ids: [...path.ids] },
        leaf: { ...leaf },
      }));
      const second = encodeRevTree(replay(copies, limit), leafCodec);
      assert.deepEqual(second, first);
    }),
    { numRuns: RUNS },
  );
});

test('encoding does not depend on merge order', () => {
  const shuffled = mergesArbitrary.chain(({ merges }) =>
    fc
      .shuffledSubarray([...merges], { minLength: merges.length, maxLength: merges.length })
      .map((other) => ({ merges, other })),
  );
  fc.assert(
    fc.property(shuffled, ({ merges, other }) => {
      const limit = Number.MAX_SAFE_INTEGER;
      assert.deepEqual(
        encodeRevTree(replay(other, limit), leafCodec),
        encodeRevTree(replay(merges, limit), leafCodec),
      );
    }),
    { numRuns: RUNS },
  );
});

test('trees embed in a larger record', () => {
  const tree = replay(
    [{ path: { start: 2, ids: ['b', 'a'] }, leaf: { deleted: false, tag: 9 } }],
    10,
  );
  const writer = new ByteWriter(1);
  writer.writeVarint(77);
  writeRevTree(writer, tree, leafCodec);
  writer.writeVarint(2 ** 53 - 1);
  const reader = new ByteReader(writer.finish());
  assert.equal(reader.readVarint(), 77);
  assert.deepEqual(readRevTree(reader, leafCodec), tree);
  assert.equal(reader.readVarint(), 2 ** 53 - 1);
  assert.equal(reader.remaining, 0);
});

test('corrupt encodings are rejected', () => {
  const tree = replay(
    [
      { path: { start: 2, ids: [HEX, 'a'] }, leaf: { deleted: false, tag: 1 } },
      { path: { start: 2, ids: ['b', 'a'] }, leaf: { deleted: false, tag: 2 } },
    ],
    10,
  );
  const encoded = encodeRevTree(tree, leafCodec);
  for (let length = 0; length < encoded.length; length++) {
    assert.throws(() => decodeRevTree(encoded.subarray(0, length), leafCodec), InvariantError);
  }
  assert.throws(
    () => decodeRevTree(Buffer.concat([encoded, Buffer.of(0)]), leafCodec),
    InvariantError,
  );
  const wrongVersion = Buffer.from(encoded);
  wrongVersion[0] = 2;
  assert.throws(() => decodeRevTree(wrongVersion, leafCodec), InvariantError);

  // Swap the two children so that they are out of order.
  const unordered: RevTree<Leaf> = [
    {
      pos: 1,
      node: { ...tree[0]!.node, children: [...tree[0]!.node.children].reverse() },
    },
  ];
  assert.throws(
    () => decodeRevTree(encodeRevTree(unordered, leafCodec), leafCodec),
    InvariantError,
  );
});

test('varints round trip and reject overlong forms', () => {
  fc.assert(
    fc.property(fc.array(fc.maxSafeNat(), { maxLength: 20 }), (values) => {
      const writer = new ByteWriter(1);
      for (const value of values) writer.writeVarint(value);
      const reader = new ByteReader(writer.finish());
      assert.deepEqual(
        values.map(() => reader.readVarint()),
        values,
      );
      assert.equal(reader.remaining, 0);
    }),
    { numRuns: RUNS },
  );
  assert.throws(() => new ByteReader(Buffer.of(0x80, 0x00)).readVarint(), InvariantError);
  assert.throws(() => new ByteReader(Buffer.alloc(9, 0xff)).readVarint(), InvariantError);
  assert.throws(() => new ByteWriter().writeVarint(-1), InvariantError);
  assert.throws(() => new ByteWriter().writeVarint(2 ** 53), InvariantError);
});
