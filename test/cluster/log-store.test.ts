import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { LogStore } from '../../src/cluster/log-store.js';
import { type Entry, entrySizeBytes, MemoryStorage, membershipOf } from '../../src/raft/index.js';

const membership = membershipOf(['n1', 'n2', 'n3']);
const hardState = { term: 0, vote: '', commit: 0 };
const noEntries = { terms: [], payloadBytes: [] };

type Step =
  | { kind: 'append'; back: number; count: number; size: number }
  | { kind: 'discard'; back: number }
  | { kind: 'read'; from: number; span: number; maxBytes: number }
  | { kind: 'reopen' };

// Appends outweigh discards, so long logs with a partly discarded front are common.
const stepArbitrary: fc.Arbitrary<Step> = fc.oneof(
  {
    arbitrary: fc.record({
      kind: fc.constant('append' as const),
      back: fc.nat(5),
      count: fc.integer({ min: 1, max: 8 }),
      size: fc.nat(300),
    }),
    weight: 3,
  },
  { arbitrary: fc.record({ kind: fc.constant('discard' as const), back: fc.nat(60) }), weight: 1 },
  {
    arbitrary: fc.record({
      kind: fc.constant('read' as const),
      from: fc.nat(100),
      span: fc.nat(20),
      maxBytes: fc.integer({ min: 1, max: 2000 }),
    }),
    weight: 1,
  },
  { arbitrary: fc.constant({ kind: 'reopen' as const }), weight: 1 },
);

/** Computes the cap point as LogStore.capPoint defines it, from the model's entries. */
function modelCapPoint(
  model: MemoryStorage,
  file: Map<number, Entry>,
  maxEntries: number,
  maxBytes: number,
): number {
  const last = model.lastIndex();
  let point = Math.max(model.firstIndex() - 1, last - maxEntries);
  let bytes = 0;
  for (let index = point + 1; index <= last; index++) bytes += entrySizeBytes(file.get(index)!);
  while (bytes > maxBytes && point < last) {
    point++;
    bytes -= entrySizeBytes(file.get(point)!);
  }
  return point;
}

test('log store matches the in-memory model', () => {
  fc.assert(
    fc.property(
      fc.array(stepArbitrary, { maxLength: 150, size: 'max' }),
      fc.nat(1500),
      (steps, budget) => {
        const model = new MemoryStorage(membership);
        // The "file": every entry ever made durable, by index, as the engine would return it.
        const file = new Map<number, Entry>();
        const readFile = (from: number, to: number) => {
          const entries: Entry[] = [];
          for (let index = from; index < to; index++) entries.push(file.get(index)!);
          return entries;
        };
        let store = new LogStore(hardState, model.snapshotMeta(), noEntries, readFile, budget);
        let term = 1;
        for (const step of steps) {
          if (step.kind === 'append') {
            const first = Math.max(model.firstIndex(), model.lastIndex() + 1 - step.back);
            term++;
            const entries: Entry[] = [];
            for (let i = 0; i < step.count; i++) {
              const entry = {
                index: first + i,
                term,
                type: 'normal' as const,
                data: new Uint8Array(step.size),
              };
              entries.push(entry);
              file.set(entry.index, entry);
            }
            model.append(entries);
            store.append(entries);
          } else if (step.kind === 'discard') {
            const index = model.lastIndex() - step.back;
            if (index <= model.firstIndex() - 1) continue;
            model.compact(index, membership);
            store.discard(index, membership);
          } else if (step.kind === 'reopen') {
            // As after a restart: the shape of the retained entries, no payload in memory.
            const shape = { terms: [] as number[], payloadBytes: [] as number[] };
            for (let index = model.firstIndex(); index <= model.lastIndex(); index++) {
              shape.terms.push(file.get(index)!.term);
              shape.payloadBytes.push(file.get(index)!.data.byteLength);
            }
            store = new LogStore(hardState, model.snapshotMeta(), shape, readFile, budget);
          } else {
            const retained = model.lastIndex() - model.firstIndex() + 1;
            if (retained <= 0) continue;
            const from = model.firstIndex() + (step.from % retained);
            const to = Math.min(from + step.span, model.lastIndex() + 1);
            if (from > to) continue;
            const expected = model.entries(from, to, step.maxBytes);
            const actual = store.entries(from, to, step.maxBytes);
            assert.deepEqual(
              actual.map((entry) => [entry.index, entry.term, entry.data.byteLength]),
              expected.map((entry) => [entry.index, entry.term, entry.data.byteLength]),
            );
          }
          assert.equal(store.firstIndex(), model.firstIndex());
          assert.equal(store.lastIndex(), model.lastIndex());
          for (let index = model.firstIndex() - 1; index <= model.lastIndex() + 1; index++) {
            assert.equal(store.term(index), model.term(index), `term of ${index}`);
          }
          assert.equal(store.capPoint(20, 3000), modelCapPoint(model, file, 20, 3000), 'cap point');
        }
      },
    ),
    { numRuns: 300 },
  );
});

test('cap point keeps at most the cap of entries and bytes', () => {
  const snapshot = { index: 0, term: 0, membership };
  const store = new LogStore(hardState, snapshot, noEntries, () => [], 1 << 20);
  const entries = Array.from({ length: 100 }, (_, i) => ({
    index: i + 1,
    term: 1,
    type: 'normal' as const,
    data: new Uint8Array(76),
  }));
  store.append(entries);
  // Each entry counts 76 bytes of data plus 24 of overhead: 100 bytes.
  assert.equal(store.capPoint(1000, 1 << 20), 0);
  assert.equal(store.capPoint(30, 1 << 20), 70);
  assert.equal(store.capPoint(1000, 2500), 75);
  assert.equal(store.capPoint(10, 2500), 90);
});
