/** Node cache: byte budget, least-recently-used eviction, counters and per-file drops. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { NodeCache } from '../../src/storage/node-cache.js';

test('cache evicts least recently used', () => {
  const cache = new NodeCache(300);
  cache.set(1, 10, Buffer.alloc(100));
  cache.set(1, 20, Buffer.alloc(100));
  cache.set(2, 10, Buffer.alloc(100));
  assert.ok(cache.get(1, 10) !== undefined, 'hit refreshes entry 1/10');
  cache.set(2, 20, Buffer.alloc(100));
  assert.equal(cache.get(1, 20), undefined, 'the least recently used entry went first');
  assert.ok(cache.get(1, 10) !== undefined);
  assert.ok(cache.get(2, 10) !== undefined);
  assert.ok(cache.get(2, 20) !== undefined);
  const stats = cache.stats;
  assert.equal(stats.hits, 4);
  assert.equal(stats.misses, 1);
  assert.equal(stats.evictions, 1);
  assert.equal(stats.sizeBytes, 300);
  assert.equal(stats.hitRate, 0.8);
});

test('cache budget change and file drop', () => {
  const cache = new NodeCache(1000);
  for (let pointer = 1; pointer <= 5; pointer++) cache.set(7, pointer, Buffer.alloc(100));
  cache.set(8, 1, Buffer.alloc(100));
  cache.set(9, 1, Buffer.alloc(2000));
  assert.equal(cache.get(9, 1), undefined, 'a node larger than the budget is not kept');
  cache.dropFile(7);
  assert.equal(cache.stats.sizeBytes, 100);
  assert.equal(cache.get(7, 3), undefined);
  cache.budgetBytes = 50;
  assert.equal(cache.stats.sizeBytes, 0, 'shrinking the budget evicts');
  cache.resetCounters();
  assert.equal(cache.stats.hits + cache.stats.misses + cache.stats.evictions, 0);
});

test('cache matches an LRU model', () => {
  const operation = fc.record({
    file: fc.integer({ min: 1, max: 3 }),
    pointer: fc.integer({ min: 1, max: 12 }),
    size: fc.integer({ min: 1, max: 60 }),
    kind: fc.constantFrom('get', 'set', 'drop'),
  });
  fc.assert(
    fc.property(fc.array(operation, { maxLength: 200 }), (operations) => {
      const budget = 200;
      const cache = new NodeCache(budget);
      // The model keeps keys in recency order, oldest first.
      const model = new Map<string, number>();
      let modelBytes = 0;
      for (const { file, pointer, size, kind } of operations) {
        const key = `${file}:${pointer}`;
        if (kind === 'get') {
          const found = cache.get(file, pointer);
          const expected = model.get(key);
          assert.equal(found?.length, expected);
          if (expected !== undefined) {
            model.delete(key);
            model.set(key, expected);
          }
        } else if (kind === 'set') {
          cache.set(file, pointer, Buffer.alloc(size));
          modelBytes -= model.get(key) ?? 0;
          model.delete(key);
          model.set(key, size);
          modelBytes += size;
          for (const [oldest, bytes] of model) {
            if (modelBytes <= budget) break;
            model.delete(oldest);
            modelBytes -= bytes;
          }
        } else {
          cache.dropFile(file);
          for (const [entry, bytes] of [...model]) {
            if (entry.startsWith(`${file}:`)) {
              model.delete(entry);
              modelBytes -= bytes;
            }
          }
        }
        assert.equal(cache.stats.sizeBytes, modelBytes);
      }
    }),
    { numRuns: 200 },
  );
});
