import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { NO_REVISIONS, type Rev, type RevPath } from '../../src/document/rev.js';
import {
  applyInteractiveEdit,
  type EditTarget,
  resolveInteractiveEdit,
} from '../../src/document/rev-edit.js';
import { stem } from '../../src/document/rev-stem.js';
import { checkRevTree, mergePath, type RevTree } from '../../src/document/rev-tree.js';
import { isDeleted, winner } from '../../src/document/rev-tree-query.js';
import { newRevId } from '../../src/document/revid.js';
import { scaled } from '../support/scale.js';
import { flattenTree, type Leaf, RevTreeModel } from './rev-tree-model.js';

const RUNS = scaled(1000, 20000);

function leaf(deleted: boolean, tag = 0): Leaf {
  return { deleted, tag };
}

function history(rev: Rev): RevPath {
  return { start: rev.pos, ids: [rev.id] };
}

/** Runs one interactive edit the way the engine will: resolve, compute the id, apply. */
function edit(
  tree: RevTree<Leaf>,
  revisions: RevPath,
  deleted: boolean,
  body = '{}',
): { tree: RevTree<Leaf>; rev: Rev } | 'conflict' {
  const target = resolveInteractiveEdit(tree, revisions, deleted);
  if (target.kind === 'conflict') return 'conflict';
  const id = newRevId({ deleted, parent: target.parent, body: Buffer.from(body) });
  const applied = applyInteractiveEdit(tree, target, id, leaf(deleted));
  if (applied.kind === 'conflict') return 'conflict';
  checkRevTree(applied.tree);
  return { tree: applied.tree, rev: applied.rev };
}

function ok(result: ReturnType<typeof edit>): { tree: RevTree<Leaf>; rev: Rev } {
  assert.notEqual(result, 'conflict');
  return result as { tree: RevTree<Leaf>; rev: Rev };
}

test('new document takes only a write without rev', () => {
  const created = ok(edit([], NO_REVISIONS, false));
  assert.equal(created.rev.pos, 1);
  assert.equal(edit([], { start: 1, ids: ['abc'] }, false), 'conflict');
  assert.equal(edit([], { start: 3, ids: [] }, false), 'conflict');
  const deletedAtBirth = ok(edit([], NO_REVISIONS, true));
  assert.equal(isDeleted(deletedAtBirth.tree), true);
});

test('live document needs a leaf rev', () => {
  const first = ok(edit([], NO_REVISIONS, false, '{"v":1}'));
  assert.equal(edit(first.tree, NO_REVISIONS, false), 'conflict');
  assert.equal(edit(first.tree, { start: 1, ids: ['nope'] }, false), 'conflict');
  const second = ok(edit(first.tree, history(first.rev), false, '{"v":2}'));
  assert.equal(second.rev.pos, 2);
  assert.equal(edit(second.tree, history(first.rev), false, '{"v":3}'), 'conflict');
  // The same edit of the same parent yields the same id, so replaying it conflicts too.
  assert.equal(edit(second.tree, history(first.rev), false, '{"v":2}'), 'conflict');
  const third = ok(edit(second.tree, { start: 2, ids: [second.rev.id, first.rev.id] }, false));
  assert.equal(third.rev.pos, 3);
  assert.equal(edit(third.tree, { start: 3, ids: [third.rev.id, 'wrong'] }, false), 'conflict');
});

test('deleted conflict leaf can be extended', () => {
  const root = ok(edit([], NO_REVISIONS, false));
  const liveBranch = ok(edit(root.tree, history(root.rev), false, '{"a":1}'));
  const conflict = mergePath(
    liveBranch.tree,
    { start: 2, ids: ['deadbranch', root.rev.id] },
    leaf(true),
  ).tree;
  const extended = ok(edit(conflict, { start: 2, ids: ['deadbranch'] }, false));
  assert.equal(extended.rev.pos, 3);
  assert.equal(isDeleted(extended.tree), false);
});

test('deleted document is recreated on tombstone', () => {
  const first = ok(edit([], NO_REVISIONS, false));
  const tombstone = ok(edit(first.tree, history(first.rev), true));
  assert.equal(isDeleted(tombstone.tree), true);
  assert.equal(edit(tombstone.tree, history(tombstone.rev), false), 'conflict');
  assert.equal(edit(tombstone.tree, NO_REVISIONS, true), 'conflict');

  const target = resolveInteractiveEdit(tombstone.tree, NO_REVISIONS, false);
  assert.deepEqual(target, {
    kind: 'extend',
    parent: tombstone.rev,
    history: history(tombstone.rev),
  } satisfies EditTarget);
  const recreated = ok(edit(tombstone.tree, NO_REVISIONS, false));
  assert.equal(recreated.rev.pos, 3);
  assert.deepEqual(winner(recreated.tree).rev, recreated.rev);
  assert.equal(recreated.tree.length, 1, 'recreation extends the tombstone, no new root');
});

test('tombstone winner is the one extended', () => {
  const dead: RevTree<Leaf> = [
    {
      pos: 1,
      node: {
        id: 'a',
        value: null,
        children: [
          { id: 'b', value: leaf(true), children: [] },
          { id: 'c', value: null, children: [{ id: 'd', value: leaf(true), children: [] }] },
        ],
      },
    },
  ];
  const target = resolveInteractiveEdit(dead, NO_REVISIONS, false);
  assert.equal(target.kind, 'extend');
  assert.deepEqual((target as { parent: Rev }).parent, { pos: 3, id: 'd' });
});

interface EditOp {
  readonly base: number | null;
  readonly deleted: boolean;
  readonly body: number;
}

const opsArbitrary = fc.array(
  fc.record({
    base: fc.option(fc.nat(), { nil: null, freq: 4 }),
    deleted: fc.nat({ max: 4 }).map((n) => n === 0),
    body: fc.nat({ max: 3 }),
  }),
  { minLength: 1, maxLength: 40 },
);

/** Applies the interactive rules to the reference model. */
function modelTarget(
  model: RevTreeModel,
  base: Rev | null,
  deleted: boolean,
): Rev | null | 'conflict' {
  const leaves = model.sortedLeaves();
  if (leaves.length === 0) return base === null ? null : 'conflict';
  if (leaves.every((l) => l.value.deleted)) {
    return base === null && !deleted ? leaves[0]!.rev : 'conflict';
  }
  if (base === null) return 'conflict';
  return leaves.some((l) => l.rev.pos === base.pos && l.rev.id === base.id) ? base : 'conflict';
}

test('interactive edits match reference model', () => {
  fc.assert(
    fc.property(opsArbitrary, fc.integer({ min: 1, max: 5 }), (ops: EditOp[], limit) => {
      const model = new RevTreeModel();
      let tree: RevTree<Leaf> = [];
      const seen: Rev[] = [];
      for (const [index, op] of ops.entries()) {
        const base = op.base === null || seen.length === 0 ? null : seen[op.base % seen.length]!;
        const expected = modelTarget(model, base, op.deleted);
        const target = resolveInteractiveEdit(
          tree,
          base === null ? NO_REVISIONS : history(base),
          op.deleted,
        );
        if (expected === 'conflict') {
          assert.equal(target.kind, 'conflict');
          continue;
        }
        assert.notEqual(target.kind, 'conflict');
        const parent = target.kind === 'conflict' ? null : target.parent;
        assert.deepEqual(parent, expected);

        const body = Buffer.from(`{"b":${op.body}}`);
        const id = newRevId({ deleted: op.deleted, parent, body });
        const value = leaf(op.deleted, index);
        const applied = applyInteractiveEdit(
          tree,
          target as Exclude<EditTarget, { kind: 'conflict' }>,
          id,
          value,
        );
        const newPath =
          parent === null
            ? { start: 1, ids: [id] }
            : { start: parent.pos + 1, ids: [id, parent.id] };
        if (model.has({ pos: newPath.start, id })) {
          // The same edit was already made: CouchDB's merge finds nothing new.
          assert.equal(applied.kind, 'conflict');
          continue;
        }
        assert.equal(applied.kind, 'applied');
        if (applied.kind !== 'applied') continue;
        assert.deepEqual(applied.rev, { pos: newPath.start, id });
        model.merge(newPath, value);
        model.stem(limit);
        tree = stem(applied.tree, limit);
        seen.push(applied.rev);
        assert.deepEqual(flattenTree(tree), model.flatten());
      }
    }),
    { numRuns: RUNS },
  );
});
