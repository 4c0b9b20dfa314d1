/**
 * Reducers of the engine's trees: the reduction an interior node gets from its children's
 * encoded reductions read in place (`rereduceEncoded`) equals `rereduce` of the decoded ones,
 * for interior nodes encoded as the B+tree writes them.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { type IdReduction, idReducer } from '../../src/engine/doc-info.js';
import { type LogBounds, logBoundsReducer } from '../../src/engine/stored-entry.js';
import {
  childReductions,
  EntryList,
  encodeChildEntry,
  encodeNode,
  NODE_INTERIOR,
} from '../../src/storage/btree-node.js';
import { countReducer, type Reducer } from '../../src/storage/codecs.js';

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
