/**
 * Reducers of the engine's trees. The reduction an interior node gets from its children's
 * encoded reductions read in place (`rereduceEncoded`) equals `rereduce` of the decoded ones,
 * for interior nodes encoded as the B+tree writes them. A by_id tree, whose reductions read
 * values in place, reduces to what the decoded documents give.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { DocInfo, docInfoCodec, type IdReduction, idReducer } from '../../src/engine/doc-info.js';
import { type LogBounds, logBoundsReducer } from '../../src/engine/stored-entry.js';
import { BlockFile } from '../../src/storage/block-file.js';
import { BTree, encodeRoot } from '../../src/storage/btree.js';
import {
  childReductions,
  EntryList,
  encodeChildEntry,
  encodeNode,
  NODE_INTERIOR,
} from '../../src/storage/btree-node.js';
import {
  countReducer,
  type Reducer,
  reduceEntriesOf,
  utf8StringKeys,
} from '../../src/storage/codecs.js';
import { NodeCache } from '../../src/storage/node-cache.js';
import { tempDir } from '../support/tmp.js';

/** Encodes an interior node whose children carry `reductions`, with keys of varying length. */
function interiorNode<R>(reducer: Reducer<unknown, unknown, R>, reductions: readonly R[]): Buffer {
  const entries = new EntryList();
  reductions.forEach((reduction, index) => {
    entries.push(
      encodeChildEntry({
        lastKey: Buffer.from(`key-${String(index).padStart(index % 7, '0')}`),
        pointer: 4096 * (index + 1),
        count: index,
        sizeBytes: 100 * index,
        reduction: Buffer.from(reducer.encode(reduction)),
      }),
    );
  });
  return encodeNode(NODE_INTERIOR, entries);
}

function checkReducer<R>(reducer: Reducer<unknown, unknown, R>, reductions: readonly R[]): void {
  assert.ok(reducer.rereduceEncoded !== undefined, 'the reducer reads reductions in place');
  const node = interiorNode(reducer, reductions);
  const decoded = reductions.map((reduction) =>
    reducer.decode(Buffer.from(reducer.encode(reduction))),
  );
  assert.deepEqual(reducer.rereduceEncoded(childReductions(node)), reducer.rereduce(decoded));
}

const counts = fc.nat({ max: 2 ** 40 });

test('count reducer reads counts in place', () => {
  fc.assert(
    fc.property(fc.array(counts, { minLength: 1, maxLength: 60 }), (reductions) => {
      checkReducer(countReducer, reductions);
    }),
  );
});

test('in-place reads reject short reductions', () => {
  const node = (reduction: Buffer) => {
    const entries = new EntryList();
    entries.push(
      encodeChildEntry({
        lastKey: Buffer.from('a'),
        pointer: 4096,
        count: 1,
        sizeBytes: 9,
        reduction,
      }),
    );
    entries.push(
      encodeChildEntry({
        lastKey: Buffer.from('b'),
        pointer: 8192,
        count: 1,
        sizeBytes: 9,
        reduction: Buffer.alloc(6, 1),
      }),
    );
    return encodeNode(NODE_INTERIOR, entries);
  };
  const rereduceCounts = countReducer.rereduceEncoded!;
  const rereduceBounds = logBoundsReducer.rereduceEncoded!;
  assert.throws(() => rereduceCounts(childReductions(node(Buffer.from([0, 0, 1])))), /6 bytes/);
  assert.throws(() => rereduceBounds(childReductions(node(Buffer.alloc(0)))), /not empty/);
  const shortValue = {
    length: 1,
    key: () => 'a',
    value: () => assert.fail('the in-place path decodes no value'),
    forEachEncodedValue: (visit: (bytes: Buffer, start: number, end: number) => void) => {
      visit(Buffer.from([1]), 0, 1);
    },
  };
  assert.throws(() => idReducer.reduce(shortValue), /shorter than its version and flags/);
});

test('by_id reducer reads sums in place', () => {
  const reduction: fc.Arbitrary<IdReduction> = fc.record({
    live: counts,
    deleted: counts,
    activeBytes: counts,
    externalBytes: counts,
  });
  fc.assert(
    fc.property(fc.array(reduction, { minLength: 1, maxLength: 60 }), (reductions) => {
      checkReducer(idReducer as Reducer<unknown, unknown, IdReduction>, reductions);
    }),
  );
});

test('raft bounds reducer skips empty children', () => {
  const empty: LogBounds = { first: { index: 0, term: 0 }, last: { index: 0, term: 0 } };
  const position = fc.record({ index: fc.integer({ min: 1, max: 2 ** 40 }), term: counts });
  const bounds: fc.Arbitrary<LogBounds> = fc.oneof(
    fc.constant(empty),
    fc.record({ first: position, last: position }),
  );
  fc.assert(
    fc.property(fc.array(bounds, { minLength: 1, maxLength: 60 }), (reductions) => {
      checkReducer(logBoundsReducer as Reducer<unknown, unknown, LogBounds>, reductions);
    }),
  );
});

/** Builds a document info with one revision whose body is `bodyLength` bytes long. */
function docInfo(seq: number, deleted: boolean, bodyLength: number): DocInfo {
  const leaf = {
    deleted,
    seq,
    body: { pointer: 4096 * seq, length: bodyLength },
    attachments: null,
  };
  const node = { id: seq.toString(16).padStart(32, '0'), value: leaf, children: [] };
  return DocInfo.fromTree([{ pos: 1, node }], seq);
}

test('by_id tree reduces documents in place', async (t) => {
  const dir = await tempDir(t);
  let run = 0;
  await fc.assert(
    fc.asyncProperty(
      fc.array(
        fc.record({
          id: fc.string({ minLength: 1, maxLength: 12 }),
          deleted: fc.boolean(),
          body: fc.nat(5000),
        }),
        { minLength: 1, maxLength: 300 },
      ),
      async (docs) => {
        const file = await BlockFile.create(join(dir, `by-id-${run++}.couch`), encodeRoot(null));
        try {
          // Small nodes make a deep tree; a small inline limit sends some values out of line.
          const tree = BTree.open(
            file,
            { key: utf8StringKeys, value: docInfoCodec, reducer: idReducer },
            null,
            { nodeSizeBytes: 300, outOfLineValueBytes: 34, cache: new NodeCache(1 << 16) },
          );
          const latest = new Map<string, DocInfo>();
          for (const [index, doc] of docs.entries()) {
            latest.set(doc.id, docInfo(index + 1, doc.deleted, doc.body));
          }
          const written = tree.modify({ insert: latest });
          const pairs = [...latest].sort(([a], [b]) =>
            Buffer.compare(Buffer.from(a), Buffer.from(b)),
          );
          assert.deepEqual(written.fullReduce(), idReducer.reduce(reduceEntriesOf(pairs)));
        } finally {
          await file.close();
        }
      },
    ),
    { numRuns: 60 },
  );
});
