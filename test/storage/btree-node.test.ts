/**
 * Node encoding: splicing or editing a node's bytes gives exactly the node that encoding the
 * changed entry list gives, and the byte-level searches agree with a sorted model.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  childPointerAt,
  childSizeAt,
  childTotals,
  compareKeyAt,
  EntryList,
  editedLength,
  editNode,
  encodeChildEntry,
  encodeInlineEntry,
  encodeNode,
  encodeOutOfLineEntry,
  entryOutOfLineBytes,
  lowerBoundKey,
  NODE_INTERIOR,
  NODE_LEAF,
  type NodeEdit,
  NodeView,
  spliceNode,
} from '../../src/storage/btree-node.js';
import { NodeCache } from '../../src/storage/node-cache.js';

const keysArbitrary = fc
  .uniqueArray(fc.uint8Array({ maxLength: 12 }), {
    maxLength: 40,
    selector: (key) => Buffer.from(key).toString('hex'),
  })
  .map((keys) => keys.map((key) => Buffer.from(key)).sort(Buffer.compare));

function leafEntry(key: Buffer, seed: number): Buffer {
  if (seed % 3 === 0) return encodeOutOfLineEntry(key, 4097 + seed, (seed % 1000) * 7);
  return encodeInlineEntry(key, Buffer.alloc(seed % 50, seed));
}

function entryList(entries: Buffer[]): EntryList {
  const list = new EntryList();
  for (const entry of entries) list.push(entry);
  return list;
}

test('spliced node equals the encoded one', () => {
  fc.assert(
    fc.property(
      keysArbitrary,
      fc.nat(),
      fc.boolean(),
      fc.boolean(),
      fc.uint8Array({ minLength: 1, maxLength: 12 }),
      fc.boolean(),
      (keys, choice, remove, insert, newKey, slab) => {
        fc.pre(keys.length > 0 || insert);
        const entries = keys.map((key, index) => leafEntry(key, index));
        const node = encodeNode(NODE_LEAF, entryList(entries));
        const position = keys.length === 0 ? 0 : choice % (keys.length + (remove ? 0 : 1));
        const removeCount = remove && position < keys.length ? 1 : 0;
        // The inserted entry keeps the order: it takes the removed key, or a key between
        // its neighbours when one exists, else the test only removes.
        const key = removeCount === 1 ? keys[position]! : Buffer.from(newKey);
        const fits =
          removeCount === 1 ||
          ((position === 0 || Buffer.compare(keys[position - 1]!, key) < 0) &&
            (position === keys.length || Buffer.compare(key, keys[position]!) < 0));
        const inserted = insert && fits ? leafEntry(key, choice) : undefined;
        fc.pre(inserted !== undefined || removeCount === 1);
        const expected = [...entries];
        expected.splice(position, removeCount, ...(inserted === undefined ? [] : [inserted]));
        const allocator = slab ? new NodeCache(1 << 20) : undefined;
        const spliced = spliceNode(node, position, removeCount, inserted, allocator);
        assert.ok(spliced.equals(encodeNode(NODE_LEAF, entryList(expected))));
        if (inserted !== undefined) {
          const view = new NodeView(spliced);
          assert.equal(entryOutOfLineBytes(inserted), view.outOfLineBytes(position));
        }
      },
    ),
    { numRuns: 500 },
  );
});

test('byte search matches a sorted model', () => {
  fc.assert(
    fc.property(keysArbitrary, fc.uint8Array({ maxLength: 12 }), (keys, probe) => {
      const key = Buffer.from(probe);
      const children = keys.map((lastKey, index) =>
        encodeChildEntry({
          lastKey,
          pointer: 4097 + index * 2 ** 36,
          count: index,
          sizeBytes: 2 ** 40 + index,
          reduction: Buffer.alloc(index % 3),
        }),
      );
      const node = encodeNode(NODE_INTERIOR, entryList(children));
      const expected = keys.findIndex((candidate) => Buffer.compare(candidate, key) >= 0);
      assert.equal(
        lowerBoundKey(node, keys.length, key, 0),
        expected === -1 ? keys.length : expected,
      );
      keys.forEach((candidate, index) => {
        assert.equal(Math.sign(compareKeyAt(node, index, key)), Buffer.compare(candidate, key));
        assert.equal(childPointerAt(node, index), 4097 + index * 2 ** 36);
        assert.equal(childSizeAt(node, index), 2 ** 40 + index);
      });
    }),
    { numRuns: 500 },
  );
});

test('edited node equals the encoded one', () => {
  const edit = fc.record({
    removeCount: fc.nat({ max: 2 }),
    inserts: fc.array(fc.nat(), { maxLength: 3 }),
  });
  fc.assert(
    fc.property(
      keysArbitrary,
      fc.array(fc.tuple(fc.nat(), edit), { maxLength: 5 }),
      fc.boolean(),
      (keys, wanted, slab) => {
        const entries = keys.map((key, index) =>
          encodeChildEntry({
            lastKey: key,
            pointer: 4097 + index,
            count: index + 1,
            sizeBytes: 100 + index,
            reduction: Buffer.alloc(index % 4, index),
          }),
        );
        const node = encodeNode(NODE_INTERIOR, entryList(entries));
        // Sorted, non-overlapping edits; inserted entries are arbitrary bytes, since node
        // editing copies entries without looking at them.
        const edits: NodeEdit[] = [];
        const expected: Buffer[] = [];
        let unchanged = 0;
        for (const [gap, { removeCount, inserts }] of wanted) {
          const position = Math.min(keys.length, unchanged + (gap % 4));
          const removed = Math.min(removeCount, keys.length - position);
          const insertedEntries = inserts.map((seed) =>
            encodeChildEntry({
              lastKey: Buffer.from([seed % 256]),
              pointer: seed + 4097,
              count: seed,
              sizeBytes: seed,
              reduction: Buffer.alloc(seed % 3),
            }),
          );
          expected.push(...entries.slice(unchanged, position), ...insertedEntries);
          edits.push({ position, removeCount: removed, inserts: entryList(insertedEntries) });
          unchanged = position + removed;
        }
        expected.push(...entries.slice(unchanged));
        const allocator = slab ? new NodeCache(1 << 20) : undefined;
        const edited = editNode(node, edits, allocator);
        assert.equal(edited.length, editedLength(node, edits));
        assert.ok(edited.equals(encodeNode(NODE_INTERIOR, entryList(expected))));
        const totals = childTotals(edited);
        const view = new NodeView(edited);
        let count = 0;
        let sizeBytes = 0;
        for (let index = 0; index < view.count; index++) {
          count += view.child(index).count;
          sizeBytes += view.child(index).sizeBytes;
        }
        assert.equal(totals.count, count);
        assert.equal(totals.sizeBytes, sizeBytes);
      },
    ),
    { numRuns: 500 },
  );
});
