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

test('cache drops a key set too large', () => {
  const cache = new NodeCache(100);
  cache.set(1, 10, Buffer.alloc(50, 1));
  cache.set(1, 10, Buffer.alloc(200, 2));
  assert.equal(cache.get(1, 10), undefined, 'the older node of the key is gone');
  assert.equal(cache.stats.sizeBytes, 0);
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

/** Fills a node buffer with bytes derived from its key, so any mix-up or overwrite shows. */
function fillNode(bytes: Buffer, file: number, pointer: number, version: number): void {
  for (let index = 0; index < bytes.length; index++) {
    bytes[index] = (file * 131 + pointer * 31 + version * 7 + index) & 0xff;
  }
}

function holdsNode(bytes: Buffer, file: number, pointer: number, version: number): boolean {
  for (let index = 0; index < bytes.length; index++) {
    if (bytes[index] !== ((file * 131 + pointer * 31 + version * 7 + index) & 0xff)) return false;
  }
  return true;
}

test('slab cache keeps contents, budget and handed-out buffers', () => {
  const operation = fc.record({
    file: fc.integer({ min: 1, max: 3 }),
    pointer: fc.integer({ min: 1, max: 400 }),
    size: fc.integer({ min: 1, max: 3000 }),
    kind: fc.constantFrom('get', 'set', 'set', 'set', 'drop', 'budget'),
    budget: fc.integer({ min: 0, max: 1 << 20 }),
  });
  let evictions = 0;
  const budget = fc.integer({ min: 64 * 1024, max: 1 << 20 });
  fc.assert(
    fc.property(
      budget,
      fc.array(operation, { maxLength: 600, size: 'max' }),
      (start, operations) => {
        const cache = new NodeCache(start);
        // Version of each key's latest set, and every buffer handed out with its expected fill.
        const versions = new Map<string, number>();
        const handedOut: Array<[Buffer, number, number, number]> = [];
        let version = 0;
        for (const { file, pointer, size, kind, budget } of operations) {
          const key = `${file}:${pointer}`;
          if (kind === 'set') {
            version += 1;
            const bytes = cache.allocate(size);
            assert.equal(bytes.length, size);
            fillNode(bytes, file, pointer, version);
            cache.set(file, pointer, bytes);
            versions.set(key, version);
            handedOut.push([bytes, file, pointer, version]);
          } else if (kind === 'get') {
            const found = cache.get(file, pointer);
            if (found !== undefined) {
              const expected = versions.get(key);
              assert.ok(expected !== undefined, 'only set keys are cached');
              assert.ok(holdsNode(found, file, pointer, expected), `contents of ${key}`);
              handedOut.push([found, file, pointer, expected]);
            }
          } else if (kind === 'drop') {
            cache.dropFile(file);
            for (const cached of [...versions.keys()]) {
              if (cached.startsWith(`${file}:`)) versions.delete(cached);
            }
            assert.equal(cache.get(file, pointer), undefined, 'a dropped file has no nodes');
          } else {
            cache.budgetBytes = budget;
          }
          const stats = cache.stats;
          assert.ok(stats.sizeBytes <= stats.budgetBytes, 'within the budget');
          assert.ok(stats.nodeBytes <= stats.sizeBytes, 'node bytes are counted');
          assert.ok(stats.sizeBytes >= 0, 'size is not negative');
          assert.ok(stats.slabs >= 0, 'slab count is not negative');
        }
        for (const [bytes, file, pointer, expected] of handedOut) {
          assert.ok(holdsNode(bytes, file, pointer, expected), 'handed-out buffers never change');
        }
        evictions += cache.stats.evictions;
      },
    ),
    { numRuns: 100 },
  );
  assert.ok(evictions > 0, 'the runs evicted nodes');
});

test('slab cache keeps hot nodes and uses its memory', () => {
  const budget = 2 * 1024 * 1024;
  const cache = new NodeCache(budget);
  const nodeBytes = 3000;
  const hot = 40;
  for (let pointer = 0; pointer < hot; pointer++) {
    const bytes = cache.allocate(nodeBytes);
    fillNode(bytes, 1, pointer, 0);
    cache.set(1, pointer, bytes);
  }
  // Stream many cold nodes through the cache while the hot ones are read in between.
  for (let cold = 0; cold < 20_000; cold++) {
    const bytes = cache.allocate(nodeBytes);
    fillNode(bytes, 2, cold, 0);
    cache.set(2, cold, bytes);
    const pointer = cold % hot;
    const found = cache.get(1, pointer);
    assert.ok(found !== undefined, `hot node ${pointer} stays cached (cold node ${cold})`);
    assert.ok(holdsNode(found, 1, pointer, 0), `hot node ${pointer} keeps its contents`);
  }
  const stats = cache.stats;
  assert.ok(stats.evictions > 0);
  assert.ok(stats.sizeBytes <= budget);
  assert.ok(
    stats.nodeBytes >= 0.75 * budget,
    `cached nodes fill most of the budget (${stats.nodeBytes} of ${budget})`,
  );
});

test('slab cache keeps interior nodes over a leaf stream', () => {
  const budget = 2 * 1024 * 1024;
  const cache = new NodeCache(budget);
  const nodeBytes = 1500;
  const interior = 200;
  // Interior nodes (kind byte 2) take about a seventh of the budget and are read rarely.
  for (let pointer = 0; pointer < interior; pointer++) {
    const bytes = cache.allocate(nodeBytes);
    bytes.fill(2);
    cache.set(1, pointer, bytes);
  }
  for (let leaf = 0; leaf < 20_000; leaf++) {
    const bytes = cache.allocate(nodeBytes);
    bytes.fill(1);
    cache.set(2, leaf, bytes);
    if (leaf % 1000 === 0) cache.get(1, (leaf / 1000) % interior);
  }
  for (let pointer = 0; pointer < interior; pointer++) {
    assert.ok(cache.get(1, pointer) !== undefined, `interior node ${pointer} stays cached`);
  }
  assert.ok(cache.stats.sizeBytes <= budget);
});

test('demoted nodes are not kept', () => {
  const budget = 2 * 1024 * 1024;
  const cache = new NodeCache(budget);
  const nodeBytes = 1500;
  const watched = 40;
  for (let pointer = 0; pointer < watched; pointer++)
    cache.set(1, pointer, cache.allocate(nodeBytes));
  // The watched nodes are read all along, like a tree's upper levels, but the odd ones are
  // replaced by copy-on-write after each read and demoted.
  for (let leaf = 0; leaf < 5000; leaf++) {
    cache.set(2, leaf, cache.allocate(nodeBytes));
    if (leaf % 100 !== 0) continue;
    for (let pointer = 0; pointer < watched; pointer++) {
      cache.get(1, pointer);
      if (pointer % 2 === 1) cache.demote(1, pointer);
    }
  }
  for (let pointer = 0; pointer < watched; pointer += 2) {
    assert.ok(cache.get(1, pointer) !== undefined, `node ${pointer} read often stays cached`);
  }
  for (let pointer = 1; pointer < watched; pointer += 2) {
    assert.equal(cache.get(1, pointer), undefined, `demoted node ${pointer} is gone`);
  }
  const foreign = new NodeCache(300);
  foreign.set(1, 1, Buffer.alloc(100));
  foreign.set(1, 2, Buffer.alloc(100));
  foreign.set(1, 3, Buffer.alloc(100));
  foreign.demote(1, 3);
  foreign.set(1, 4, Buffer.alloc(100));
  assert.equal(foreign.get(1, 3), undefined, 'a demoted buffer from elsewhere is evicted first');
  assert.ok(foreign.get(1, 1) !== undefined, 'the least recently used one stays');
});
