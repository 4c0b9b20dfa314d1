import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import type { Rev, RevPath } from '../../src/document/rev.js';
import { maxHeight, stem } from '../../src/document/rev-stem.js';
import {
  checkRevTree,
  leafPaths,
  type MergeOutcome,
  mergePath,
  type RevNode,
  type RevTree,
  revTreesEqual,
} from '../../src/document/rev-tree.js';
import {
  conflicts,
  deletedConflicts,
  findRevision,
  isDeleted,
  leavesFrom,
  mapLeaves,
  missingRevisions,
  possibleAncestors,
  revisionPath,
  revsInfo,
  sortedLeaves,
  winner,
} from '../../src/document/rev-tree-query.js';
import { scaled } from '../support/scale.js';
import {
  flattenTree,
  type Leaf,
  pathPicksArbitrary,
  pathTo,
  RevTreeModel,
  type UniverseRevision,
  universeArbitrary,
} from './rev-tree-model.js';

const RUNS = scaled(1000, 20000);
const LIVE: Leaf = { deleted: false, tag: 0 };

function node(id: string, ...children: RevNode<Leaf>[]): RevNode<Leaf> {
  return { id, value: children.length === 0 ? LIVE : null, children };
}

function path(start: number, ...ids: string[]): RevPath {
  return { start, ids };
}

function assertMerge(
  tree: RevTree<Leaf>,
  merged: RevPath,
  expectedTree: RevTree<Leaf>,
  expectedOutcome: MergeOutcome,
): void {
  const result = mergePath(tree, merged, LIVE);
  assert.equal(result.outcome, expectedOutcome);
  assert.deepEqual(result.tree, expectedTree);
  checkRevTree(result.tree);
}

test('merges match couch_key_tree examples', () => {
  const one = [{ pos: 1, node: node('1') }];
  const twoRoots = [
    { pos: 1, node: node('1') },
    { pos: 1, node: node('2') },
  ];
  assertMerge([], path(1, '1'), one, 'newLeaf');
  assertMerge(one, path(1, '1'), one, 'alreadyPresent');
  assertMerge(twoRoots, path(1, '1'), twoRoots, 'alreadyPresent');
  assertMerge(twoRoots, path(1, '3'), [...twoRoots, { pos: 1, node: node('3') }], 'newBranch');

  const chain = [{ pos: 1, node: node('1', node('1a', node('1aa'))) }];
  const siblings = [{ pos: 1, node: node('1', node('1a'), node('1b')) }];
  assertMerge(chain, path(3, '1aa', '1a', '1'), chain, 'alreadyPresent');
  assertMerge(siblings, path(2, '1a', '1'), siblings, 'alreadyPresent');
  assertMerge(siblings, path(2, '1b', '1'), siblings, 'alreadyPresent');
  assertMerge(
    siblings,
    path(3, '1aa', '1a', '1'),
    [{ pos: 1, node: node('1', node('1a', node('1aa')), node('1b')) }],
    'newLeaf',
  );
  assertMerge(siblings, path(2, '1a'), siblings, 'alreadyPresent');

  const deepSibling = [{ pos: 1, node: node('1', node('1a'), node('1b', node('1bb'))) }];
  assertMerge(deepSibling, path(3, '1bb'), deepSibling, 'alreadyPresent');
  const stemmedSiblings = [
    { pos: 2, node: node('1a') },
    { pos: 2, node: node('1b', node('1bb')) },
  ];
  assertMerge(stemmedSiblings, path(3, '1bb'), stemmedSiblings, 'alreadyPresent');
  assertMerge(chain, path(3, '1aa'), chain, 'alreadyPresent');
  assertMerge(chain, path(3, '1aa', '1a'), chain, 'alreadyPresent');
  const stemmedChain = [{ pos: 2, node: node('1a', node('1aa')) }];
  assertMerge(stemmedChain, path(3, '1aa'), stemmedChain, 'alreadyPresent');
});

test('gaps conflict until history joins them', () => {
  const oneChild = [{ pos: 1, node: node('1', node('1a')) }];
  const withGap = [...oneChild, { pos: 3, node: node('1aa') }];
  assertMerge(oneChild, path(3, '1aa'), withGap, 'newBranch');
  assert.equal(sortedLeaves(withGap).length, 2);
  assertMerge(
    withGap,
    path(3, '1aa', '1a', '1'),
    [{ pos: 1, node: node('1', node('1a', node('1aa'))) }],
    'newLeaf',
  );
});

test('unrelated branch is left alone', () => {
  // A replicated edit of foo3 arrives while foo2 is a conflicting sibling.
  const foo = [{ pos: 1, node: node('foo', node('foo2'), node('foo3')) }];
  assertMerge(
    foo,
    path(3, 'foo4', 'foo3', 'foo'),
    [{ pos: 1, node: node('foo', node('foo2'), node('foo3', node('foo4'))) }],
    'newLeaf',
  );
});

test('history above stemmed root is added', () => {
  const stemmed = [{ pos: 2, node: node('b', node('c')) }];
  const result = mergePath(stemmed, path(2, 'b', 'a'), LIVE);
  assert.equal(result.outcome, 'alreadyPresent');
  assert.deepEqual(result.tree, [{ pos: 1, node: node('a', node('b', node('c'))) }]);
  assert.ok(revTreesEqual(stem(result.tree, 2), stemmed));
});

test('revision with two parents is kept twice', () => {
  // Only made-up histories can do this: y at position 2 claims both x and z as parent.
  let tree = mergePath([], path(2, 'y', 'x'), LIVE).tree;
  const result = mergePath(tree, path(2, 'y', 'z'), LIVE);
  tree = result.tree;
  assert.equal(result.outcome, 'newBranch');
  assert.deepEqual(tree, [
    { pos: 1, node: node('x', node('y')) },
    { pos: 1, node: node('z', node('y')) },
  ]);
  checkRevTree(tree);
  assert.equal(sortedLeaves(tree).length, 2);
  assert.deepEqual(revisionPath(tree, { pos: 2, id: 'y' }), path(2, 'y', 'x'));
  assert.deepEqual(stem(tree, 1), [{ pos: 2, node: node('y') }]);
});

test('unchanged merge returns same tree', () => {
  const tree = [{ pos: 1, node: node('1', node('1a'), node('1b')) }];
  assert.equal(mergePath(tree, path(2, '1a', '1'), LIVE).tree, tree);
  assert.equal(mergePath(tree, path(1, '1'), LIVE).tree, tree);
  assert.equal(stem(tree, 2), tree);
});

test('leaf keeps its first value', () => {
  const first: Leaf = { deleted: false, tag: 1 };
  const second: Leaf = { deleted: true, tag: 2 };
  const tree = mergePath([], path(1, 'a'), first).tree;
  const again = mergePath(tree, path(1, 'a'), second);
  assert.equal(again.tree, tree);
  assert.equal(findRevision(again.tree, { pos: 1, id: 'a' })!.value, first);
});

test('stemming matches couch_key_tree examples', () => {
  const chain = [{ pos: 1, node: node('1', node('1a', node('1aa'))) }];
  assert.equal(stem(chain, 3), chain);
  assert.deepEqual(stem(chain, 1), [{ pos: 3, node: node('1aa') }]);
  assert.deepEqual(stem(chain, 2), [{ pos: 2, node: node('1a', node('1aa')) }]);

  // A short branch keeps the root alive while the long branch loses its middle.
  const uneven = [{ pos: 1, node: node('r', node('a', node('b', node('c'))), node('x')) }];
  assert.deepEqual(stem(uneven, 2), [
    { pos: 1, node: node('r', node('x')) },
    { pos: 3, node: node('b', node('c')) },
  ]);
});

test('reads match couch_key_tree examples', () => {
  const siblings = [{ pos: 1, node: node('1', node('1a'), node('1b')) }];
  assert.deepEqual(
    missingRevisions(siblings, [
      { pos: 1, id: '1' },
      { pos: 2, id: '1a' },
    ]),
    [],
  );
  assert.deepEqual(
    missingRevisions(siblings, [
      { pos: 1, id: '1' },
      { pos: 1, id: '10' },
      { pos: 2, id: '1a' },
      { pos: 101, id: 'x' },
    ]),
    [
      { pos: 1, id: '10' },
      { pos: 101, id: 'x' },
    ],
  );
  const wanted = [
    { pos: 1, id: '1' },
    { pos: 2, id: '1a' },
    { pos: 101, id: 'x' },
  ];
  assert.deepEqual(missingRevisions([{ pos: 2, node: node('1a', node('1aa')) }], wanted), [
    { pos: 1, id: '1' },
    { pos: 101, id: 'x' },
  ]);
  assert.deepEqual(missingRevisions([{ pos: 3, node: node('1aa') }], wanted), wanted);

  assert.deepEqual(
    leavesFrom(siblings, { pos: 1, id: '1' })!.map((leaf) => leaf.rev),
    [
      { pos: 2, id: '1a' },
      { pos: 2, id: '1b' },
    ],
  );
  assert.deepEqual(leavesFrom(siblings, { pos: 2, id: '1a' })!.length, 1);
  assert.equal(leavesFrom(siblings, { pos: 1, id: 'x' }), null);
  assert.deepEqual(revisionPath(siblings, { pos: 2, id: '1a' }), path(2, '1a', '1'));
  assert.deepEqual(revisionPath(siblings, { pos: 1, id: '1' }), path(1, '1'));
  assert.equal(revisionPath(siblings, { pos: 3, id: '1a' }), null);
  assert.equal(sortedLeaves([{ pos: 3, node: node('1bb') }]).length, 1);
});

test('winner prefers live, then position, then id', () => {
  const dead: Leaf = { deleted: true, tag: 0 };
  const tree: RevTree<Leaf> = [
    {
      pos: 1,
      node: {
        id: 'a',
        value: null,
        children: [
          { id: 'b', value: dead, children: [] },
          { id: 'c', value: LIVE, children: [] },
          { id: 'd', value: null, children: [{ id: 'e', value: dead, children: [] }] },
        ],
      },
    },
  ];

  assert.deepEqual(winner(tree).rev, { pos: 2, id: 'c' });
  assert.deepEqual(conflicts(tree), []);
  assert.deepEqual(deletedConflicts(tree), [
    { pos: 3, id: 'e' },
    { pos: 2, id: 'b' },
  ]);
  assert.equal(isDeleted(tree), false);

  const allDead = mapLeaves(tree, () => dead);
  assert.deepEqual(winner(allDead).rev, { pos: 3, id: 'e' });
  assert.equal(isDeleted(allDead), true);

  assert.deepEqual(revsInfo(tree, { pos: 3, id: 'e' }), [
    { rev: { pos: 3, id: 'e' }, status: 'deleted' },
    { rev: { pos: 2, id: 'd' }, status: 'missing' },
    { rev: { pos: 1, id: 'a' }, status: 'missing' },
  ]);
  assert.deepEqual(revsInfo(tree, { pos: 2, id: 'c' })![0]!.status, 'available');

  assert.deepEqual(possibleAncestors(tree, [{ pos: 3, id: 'z' }]), [
    { pos: 2, id: 'b' },
    { pos: 2, id: 'c' },
  ]);
});

interface Scenario {
  readonly universe: readonly UniverseRevision[];
  readonly paths: readonly { path: RevPath; leaf: Leaf }[];
}

const scenarioArbitrary = fc
  .tuple(universeArbitrary, pathPicksArbitrary)
  .map(([universe, picks]): Scenario => {
    const paths = picks.map((pick, tag) => {
      const index = pick.revision % universe.length;
      return {
        path: pathTo(universe, index, pick.keep),
        leaf: { deleted: universe[index]!.deleted, tag },
      };
    });
    return { universe, paths };
  });

function leafOf(path: RevPath): Rev {
  return { pos: path.start, id: path.ids[0]! };
}

test('merge matches reference model', () => {
  fc.assert(
    fc.property(scenarioArbitrary, ({ paths }) => {
      const model = new RevTreeModel();
      let tree: RevTree<Leaf> = [];
      for (const { path: merged, leaf } of paths) {
        const before = model.flatten();
        const leafWasKnown = model.has(leafOf(merged));
        model.merge(merged, leaf);
        const result = mergePath(tree, merged, leaf);
        checkRevTree(result.tree);
        assert.deepEqual(flattenTree(result.tree), model.flatten());
        if (!leafWasKnown) assert.notEqual(result.outcome, 'alreadyPresent');
        if (result.outcome === 'newLeaf' && tree.length > 0) {
          assert.ok(!leafWasKnown || result.tree !== tree);
        }
        if (JSON.stringify(before) === JSON.stringify(model.flatten())) {
          assert.equal(result.outcome, 'alreadyPresent');
          assert.equal(result.tree, tree);
        }
        tree = result.tree;
      }
    }),
    { numRuns: RUNS },
  );
});

test('merge with stemming matches model', () => {
  fc.assert(
    fc.property(scenarioArbitrary, fc.integer({ min: 1, max: 6 }), ({ paths }, limit) => {
      const model = new RevTreeModel();
      let tree: RevTree<Leaf> = [];
      for (const { path: merged, leaf } of paths) {
        model.merge(merged, leaf);
        model.stem(limit);
        tree = stem(mergePath(tree, merged, leaf).tree, limit);
        checkRevTree(tree);
        assert.deepEqual(flattenTree(tree), model.flatten());
        assert.equal(stem(tree, limit), tree);
      }
    }),
    { numRuns: RUNS },
  );
});

test('merge order does not change tree', () => {
  const untagged = scenarioArbitrary.chain((scenario) =>
    fc
      .shuffledSubarray([...scenario.paths], {
        minLength: scenario.paths.length,
        maxLength: scenario.paths.length,
      })
      .map((shuffled) => ({ scenario, shuffled })),
  );
  fc.assert(
    fc.property(untagged, ({ scenario, shuffled }) => {
      const build = (paths: readonly { path: RevPath; leaf: Leaf }[]) =>
        paths.reduce<RevTree<Leaf>>(
          (tree, { path: merged, leaf }) =>
            mergePath(tree, merged, { deleted: leaf.deleted, tag: 0 }).tree,
          [],
        );
      const sameLeaf = (a: Leaf, b: Leaf) => a.deleted === b.deleted && a.tag === b.tag;
      assert.ok(revTreesEqual(build(scenario.paths), build(shuffled), sameLeaf));
    }),
    { numRuns: RUNS },
  );
});

test('reads match reference model', () => {
  fc.assert(
    fc.property(
      scenarioArbitrary,
      fc.array(fc.nat(), { maxLength: 6 }),
      ({ universe, paths }, probes) => {
        const model = new RevTreeModel();
        let tree: RevTree<Leaf> = [];
        for (const { path: merged, leaf } of paths) {
          model.merge(merged, leaf);
          tree = mergePath(tree, merged, leaf).tree;
        }

        const expectedLeaves = model.sortedLeaves();
        assert.deepEqual(sortedLeaves(tree), expectedLeaves);
        assert.deepEqual(winner(tree), expectedLeaves[0]);
        const rest = expectedLeaves.slice(1);
        assert.deepEqual(
          conflicts(tree),
          rest.filter((leaf) => !leaf.value.deleted).map((leaf) => leaf.rev),
        );
        assert.deepEqual(
          deletedConflicts(tree),
          rest.filter((leaf) => leaf.value.deleted).map((leaf) => leaf.rev),
        );
        assert.equal(
          isDeleted(tree),
          expectedLeaves.every((leaf) => leaf.value.deleted),
        );
        assert.equal(leafPaths(tree).length, expectedLeaves.length);

        const asked = probes.map((probe) => {
          const revision = universe[probe % universe.length]!;
          return { pos: revision.pos, id: revision.id };
        });
        const missing = missingRevisions(tree, asked);
        assert.deepEqual(
          missing,
          asked.filter((rev) => !model.has(rev)),
        );
        const highest = Math.max(0, ...missing.map((rev) => rev.pos));
        assert.deepEqual(
          possibleAncestors(tree, missing),
          expectedLeaves
            .filter((leaf) => missing.length > 0 && leaf.rev.pos < highest)
            .map((leaf) => leaf.rev)
            .reverse(),
        );
        for (const rev of asked) {
          const expected = model.has(rev) ? { start: rev.pos, ids: model.ancestry(rev) } : null;
          assert.deepEqual(revisionPath(tree, rev), expected);
          assert.equal(findRevision(tree, rev) !== null, model.has(rev));
          const infos = revsInfo(tree, rev);
          assert.equal(infos?.length, expected?.ids.length);
          const reachable = leavesFrom(tree, rev);
          if (reachable === null) {
            assert.equal(model.has(rev), false);
            continue;
          }
          for (const leaf of reachable) {
            assert.ok(model.ancestry(leaf.rev).includes(rev.id));
          }
        }
      },
    ),
    { numRuns: RUNS },
  );
});

test('long chains need no deep recursion', () => {
  const length = 20_000;
  const ids = Array.from({ length }, (_, i) => `r${length - i}`);
  let tree = mergePath([], { start: length, ids }, LIVE).tree;
  assert.equal(maxHeight(tree), length);
  tree = mergePath(tree, { start: length + 1, ids: ['tip', ids[0]!] }, LIVE).tree;
  assert.deepEqual(winner(tree).rev, { pos: length + 1, id: 'tip' });
  assert.equal(revisionPath(tree, { pos: length + 1, id: 'tip' })!.ids.length, length + 1);
  const stemmed = stem(tree, 1000);
  assert.equal(maxHeight(stemmed), 1000);
  assert.equal(stemmed[0]!.pos, length + 1 - 999);
  checkRevTree(stemmed);
});
