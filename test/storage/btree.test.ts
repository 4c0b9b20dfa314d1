/**
 * B+tree against an in-memory model: random batches of inserts, removes and lookups, folds in
 * both directions with every kind of bound, range reductions, commits and reopens, with the
 * reduction checked after every step. Small nodes make trees several levels deep. After each
 * change every interior entry's recorded count, size and reduction is checked against a
 * recomputation from the nodes below it.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { BlockFile } from '../../src/storage/block-file.js';
import {
  BTree,
  type BTreeOptions,
  decodeRoot,
  encodeRoot,
  KeyTooLargeError,
} from '../../src/storage/btree.js';
import { NodeView, VALUE_INLINE } from '../../src/storage/btree-node.js';
import {
  type Reducer,
  reduceEntriesOf,
  stringValues,
  type TreeCodec,
  unsignedIntegerKeys,
  utf8StringKeys,
} from '../../src/storage/codecs.js';
import { NodeCache } from '../../src/storage/node-cache.js';
import { scaled } from '../support/scale.js';
import { tempDir } from '../support/tmp.js';

interface Summary {
  count: number;
  valueBytes: number;
  marked: number;
}

/** Counts entries, sums value lengths and counts values starting with "!". */
const summaryReducer: Reducer<string, string, Summary> = {
  reduce: (entries) => {
    const values = Array.from({ length: entries.length }, (_, index) => entries.value(index));
    return {
      count: entries.length,
      valueBytes: values.reduce((sum, value) => sum + value.length, 0),
      marked: values.filter((value) => value.startsWith('!')).length,
    };
  },
  rereduce: (parts) => ({
    count: parts.reduce((sum, part) => sum + part.count, 0),
    valueBytes: parts.reduce((sum, part) => sum + part.valueBytes, 0),
    marked: parts.reduce((sum, part) => sum + part.marked, 0),
  }),
  encode: (summary) => Buffer.from(JSON.stringify(summary)),
  decode: (bytes) => JSON.parse(bytes.toString()) as Summary,
};

const codec: TreeCodec<string, string, Summary> = {
  key: utf8StringKeys,
  value: stringValues,
  reducer: summaryReducer,
};

/** What a subtree holds, recomputed from its nodes. */
interface SubtreeFacts {
  count: number;
  sizeBytes: number;
  entries: Array<readonly [string, string]>;
}

/**
 * Reads the subtree at `pointer` node by node and checks that each interior entry records the
 * count, size and reduction of its child subtree as recomputed here.
 */
function checkSubtree(file: BlockFile, pointer: number): SubtreeFacts {
  const node = file.read(pointer, 1 << 16);
  const view = new NodeView(node);
  if (view.isLeaf) {
    const entries: Array<readonly [string, string]> = [];
    let sizeBytes = node.length;
    for (let index = 0; index < view.count; index++) {
      const key = utf8StringKeys.decode(view.key(index));
      if (view.valueTag(index) === VALUE_INLINE) {
        entries.push([key, stringValues.decode(view.inlineValue(index))]);
      } else {
        entries.push([key, stringValues.decode(file.read(view.outOfLineValue(index).pointer))]);
        sizeBytes += view.outOfLineBytes(index);
      }
    }
    return { count: entries.length, sizeBytes, entries };
  }
  const facts: SubtreeFacts = { count: 0, sizeBytes: node.length, entries: [] };
  for (let index = 0; index < view.count; index++) {
    const child = checkSubtree(file, view.childPointer(index));
    const recorded = view.child(index);
    assert.equal(recorded.count, child.count, `count recorded for child ${index} of ${pointer}`);
    assert.equal(recorded.sizeBytes, child.sizeBytes, `size recorded for child ${index}`);
    assert.deepEqual(
      summaryReducer.decode(recorded.reduction),
      modelReduce(child.entries),
      `reduction recorded for child ${index} of ${pointer}`,
    );
    facts.count += child.count;
    facts.sizeBytes += child.sizeBytes;
    facts.entries.push(...child.entries);
  }
  return facts;
}

const treeOptions = { nodeSizeBytes: 160, outOfLineValueBytes: 24, cache: new NodeCache(1 << 16) };

type Model = Map<string, string>;

function byUtf8(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

function sortedEntries(model: Model): Array<[string, string]> {
  return [...model.entries()].sort(([a], [b]) => byUtf8(a, b));
}

function modelReduce(entries: Array<readonly [string, string]>): Summary {
  return summaryReducer.reduce(reduceEntriesOf(entries));
}

interface Range {
  start?: string;
  end?: string;
  endInclusive: boolean;
}

function inForwardRange(key: string, range: Range): boolean {
  if (range.start !== undefined && byUtf8(key, range.start) < 0) return false;
  if (range.end === undefined) return true;
  const order = byUtf8(key, range.end);
  return order < 0 || (order === 0 && range.endInclusive);
}

function inBackwardRange(key: string, range: Range): boolean {
  if (range.start !== undefined && byUtf8(key, range.start) > 0) return false;
  if (range.end === undefined) return true;
  const order = byUtf8(key, range.end);
  return order > 0 || (order === 0 && range.endInclusive);
}

const keyArbitrary = fc.oneof(
  { weight: 8, arbitrary: fc.stringMatching(/^[a-d]{1,4}$/) },
  { weight: 1, arbitrary: fc.constantFrom('', 'é', 'z\u{1F600}', '\uFFFD', 'zz', 'a\u0000') },
);
const valueArbitrary = fc.oneof(
  fc.stringMatching(/^[a-z]{0,8}$/),
  fc.stringMatching(/^![a-z]{0,40}$/),
);
const rangeArbitrary = fc.record({
  start: fc.option(keyArbitrary, { nil: undefined }),
  end: fc.option(keyArbitrary, { nil: undefined }),
  endInclusive: fc.boolean(),
});

const stepArbitrary = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant('modify' as const),
      insert: fc.array(fc.tuple(keyArbitrary, valueArbitrary), { maxLength: 80, size: 'max' }),
      remove: fc.array(keyArbitrary, { maxLength: 30 }),
      lookup: fc.array(keyArbitrary, { maxLength: 6 }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('fold' as const),
      range: rangeArbitrary,
      backward: fc.boolean(),
      stopAfter: fc.option(fc.nat(10), { nil: undefined }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({ kind: fc.constant('reduce' as const), range: rangeArbitrary }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('reduce-existing' as const),
      startFraction: fc.double({ min: 0, max: 1, noNaN: true }),
      endFraction: fc.double({ min: 0, max: 1, noNaN: true }),
      endInclusive: fc.boolean(),
      backward: fc.boolean(),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('reopen' as const) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('snapshot' as const) }) },
);

type Step = typeof stepArbitrary extends fc.Arbitrary<infer T> ? T : never;

class Harness {
  file!: BlockFile;
  tree!: BTree<string, string, Summary>;
  model: Model = new Map();
  snapshot: { tree: BTree<string, string, Summary>; model: Model } | undefined;

  constructor(
    readonly path: string,
    readonly options: BTreeOptions = treeOptions,
  ) {}

  async start(): Promise<void> {
    this.file = await BlockFile.create(this.path, encodeRoot(null));
    this.tree = BTree.open(this.file, codec, null, this.options);
  }

  async run(step: Step): Promise<void> {
    switch (step.kind) {
      case 'modify':
        return this.modify(step);
      case 'fold':
        return this.fold(step.range, step.backward, step.stopAfter);
      case 'reduce':
        return this.reduce(step.range);
      case 'reduce-existing':
        return this.reduceExisting(step);
      case 'reopen':
        return this.reopen();
      case 'snapshot':
        return this.checkSnapshot();
    }
  }

  modify(step: Extract<Step, { kind: 'modify' }>): void {
    const result = this.tree.queryModify(step);
    const expectedFound = step.lookup.map((key) => this.model.get(key));
    assert.deepEqual(
      result.found,
      expectedFound,
      'lookup results are the values before the change',
    );
    const touched = new Set([...step.remove, ...step.insert.map(([key]) => key)]);
    const expectedReplaced = [...touched]
      .filter((key) => this.model.has(key))
      .sort(byUtf8)
      .map((key) => [key, this.model.get(key)]);
    assert.deepEqual(result.replaced, expectedReplaced, 'replaced entries');
    for (const key of step.remove) this.model.delete(key);
    for (const [key, value] of step.insert) this.model.set(key, value);
    this.tree = result.tree;
    this.checkAll();
  }

  checkAll(): void {
    const expected = sortedEntries(this.model);
    const actual: Array<[string, string]> = [];
    this.tree.fold((key, value) => {
      actual.push([key, value]);
    });
    assert.deepEqual(actual, expected, 'tree contents equal the model');
    assert.equal(this.tree.count, expected.length, 'count');
    assert.deepEqual(this.tree.fullReduce(), modelReduce(expected), 'full reduction');
    const root = this.tree.root;
    if (root !== null) {
      const facts = checkSubtree(this.file, root.pointer);
      assert.equal(root.count, facts.count, 'count recorded in the root');
      assert.equal(root.sizeBytes, facts.sizeBytes, 'size recorded in the root');
    }
    for (const [key, value] of expected.slice(0, 5)) assert.equal(this.tree.get(key), value);
    assert.equal(this.tree.get('missing-key'), undefined);
  }

  fold(range: Range, backward: boolean, stopAfter: number | undefined): void {
    const all = sortedEntries(this.model);
    const ordered = backward ? all.reverse() : all;
    let expected = ordered.filter(([key]) =>
      backward ? inBackwardRange(key, range) : inForwardRange(key, range),
    );
    if (stopAfter !== undefined) expected = expected.slice(0, stopAfter + 1);
    const actual: Array<[string, string]> = [];
    const completed = this.tree.fold(
      (key, value) => {
        actual.push([key, value]);
        return stopAfter === undefined || actual.length <= stopAfter;
      },
      { ...range, direction: backward ? 'backward' : 'forward' },
    );
    assert.deepEqual(actual, expected, `fold ${JSON.stringify({ range, backward, stopAfter })}`);
    if (stopAfter !== undefined && actual.length === stopAfter + 1) assert.equal(completed, false);
  }

  reduce(range: Range): void {
    const expected = sortedEntries(this.model).filter(([key]) => inForwardRange(key, range));
    assert.deepEqual(this.tree.reduceRange(range), modelReduce(expected), 'range reduction');
    if (range.start !== undefined) {
      const before = [...this.model.keys()].filter((key) => byUtf8(key, range.start!) < 0).length;
      assert.equal(this.tree.countBefore(range.start), before, 'countBefore');
    }
  }

  /** Uses keys present in the tree as bounds, so bounds often equal a node's last key. */
  reduceExisting(step: Extract<Step, { kind: 'reduce-existing' }>): void {
    const keys = sortedEntries(this.model).map(([key]) => key);
    if (keys.length === 0) return;
    const pick = (fraction: number) =>
      keys[Math.min(keys.length - 1, Math.floor(fraction * keys.length))]!;
    const [low, high] = [pick(step.startFraction), pick(step.endFraction)].sort(byUtf8) as [
      string,
      string,
    ];
    this.reduce({ start: low, end: high, endInclusive: step.endInclusive });
    this.fold(
      {
        start: step.backward ? high : low,
        end: step.backward ? low : high,
        endInclusive: step.endInclusive,
      },
      step.backward,
      undefined,
    );
  }

  async reopen(): Promise<void> {
    await this.file.commit(encodeRoot(this.tree.root));
    await this.file.close();
    this.snapshot = undefined;
    this.file = await BlockFile.open(this.path);
    this.tree = BTree.open(this.file, codec, decodeRoot(this.file.header), this.options);
    this.checkAll();
  }

  checkSnapshot(): void {
    if (this.snapshot !== undefined) {
      const actual: Array<[string, string]> = [];
      this.snapshot.tree.fold((key, value) => {
        actual.push([key, value]);
      });
      assert.deepEqual(actual, sortedEntries(this.snapshot.model), 'old root still readable');
    }
    this.snapshot = { tree: this.tree, model: new Map(this.model) };
  }
}

test('btree matches a sorted map model', async (t) => {
  const dir = await tempDir(t);
  let run = 0;
  await fc.assert(
    fc.asyncProperty(
      fc.array(stepArbitrary, { minLength: 1, maxLength: 40, size: 'max' }),
      async (steps) => {
        const harness = new Harness(join(dir, `model-${run++}.db`));
        await harness.start();
        try {
          for (const step of steps) await harness.run(step);
        } finally {
          await harness.file.close();
        }
      },
    ),
    { numRuns: scaled(60, 600), interruptAfterTimeLimit: 120_000 },
  );
});

test('btree with separate leaf and interior sizes', async (t) => {
  const dir = await tempDir(t);
  let run = 0;
  const sizes = fc.record({
    leafSizeBytes: fc.integer({ min: 40, max: 400 }),
    interiorSizeBytes: fc.integer({ min: 60, max: 400 }),
  });
  await fc.assert(
    fc.asyncProperty(
      sizes,
      fc.array(stepArbitrary, { minLength: 1, maxLength: 30, size: 'max' }),
      async (size, steps) => {
        const options = { ...treeOptions, ...size };
        const harness = new Harness(join(dir, `sizes-${run++}.db`), options);
        await harness.start();
        try {
          for (const step of steps) await harness.run(step);
        } finally {
          await harness.file.close();
        }
      },
    ),
    { numRuns: scaled(20, 200), interruptAfterTimeLimit: 60_000 },
  );
});

test('fold skips subtrees by reduction', async (t) => {
  const dir = await tempDir(t);
  const file = await BlockFile.create(join(dir, 'skip.db'), encodeRoot(null));
  const keys = Array.from({ length: 2000 }, (_, index) => `k${String(index).padStart(5, '0')}`);
  const inserts = keys.map((key, index): [string, string] => [key, index % 97 === 0 ? '!m' : 'v']);
  const tree = BTree.open(file, codec, null, treeOptions).modify({ insert: inserts });
  const expected = inserts.filter(([, value]) => value === '!m');
  for (const direction of ['forward', 'backward'] as const) {
    const visited: Array<[string, string]> = [];
    let skipped = 0;
    tree.fold(
      (key, value) => {
        if (value.startsWith('!')) visited.push([key, value]);
      },
      {
        direction,
        skipSubtree: (subtree) => {
          if (subtree.reduction.marked > 0) return false;
          skipped += subtree.count;
          return true;
        },
      },
    );
    assert.deepEqual(visited, direction === 'forward' ? expected : expected.slice().reverse());
    assert.ok(skipped > keys.length / 2, `most entries were skipped (${skipped})`);
  }
  await file.close();
});

test('integer keys sort numerically above 2^32', async (t) => {
  const dir = await tempDir(t);
  const file = await BlockFile.create(join(dir, 'integers.db'), encodeRoot(null));
  const numbers = [
    0,
    1,
    255,
    256,
    65_535,
    2 ** 32 - 1,
    2 ** 32,
    2 ** 40 + 7,
    Number.MAX_SAFE_INTEGER,
  ];
  const shuffled = numbers.slice().reverse();
  const tree = BTree.open(file, { key: unsignedIntegerKeys, value: stringValues }, null, {
    nodeSizeBytes: 64,
  }).modify({ insert: shuffled.map((n) => [n, String(n)]) });
  const folded: number[] = [];
  tree.fold((key) => {
    folded.push(key);
  });
  assert.deepEqual(folded, numbers);
  for (const n of numbers) assert.equal(tree.get(n), String(n));
  await file.close();
});

test('oversized key is rejected', async (t) => {
  const dir = await tempDir(t);
  const file = await BlockFile.create(join(dir, 'big-key.db'), encodeRoot(null));
  const tree = BTree.open(file, codec, null);
  assert.throws(() => tree.modify({ insert: [['x'.repeat(70_000), 'v']] }), KeyTooLargeError);
  await file.close();
});
