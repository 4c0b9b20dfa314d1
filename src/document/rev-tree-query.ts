/**
 * Reads of a revision tree, with the results CouchDB 3.x returns: the leaves in winner order, the
 * winner, `_conflicts` and `_deleted_conflicts`, the path of a revision (`_revisions`),
 * `_revs_info`, the revisions a tree lacks (`_revs_diff`, with `possible_ancestors`) and the
 * leaves reachable from a revision (`latest=true`).
 *
 * Winner order (couch_doc:to_doc_info): leaves sorted descending by (not deleted, position,
 * id), ids compared with `compareRevIds`. So a live leaf always beats a deleted one, and a
 * document is deleted exactly when all its leaves are.
 *
 * All functions are pure and take trees built by rev-tree.ts.
 */
import { assert } from '../util/assert.js';
import { compareRevIds, type Rev, type RevPath } from './rev.js';
import {
  findBelow,
  forEachLeaf,
  forEachRevision,
  type RevLeafValue,
  type RevNode,
  type RevTree,
} from './rev-tree.js';

export interface RevLeaf<T> {
  readonly rev: Rev;
  readonly value: T;
}

/** Status of one revision in `_revs_info`. */
export type RevStatus = 'available' | 'missing' | 'deleted';

export interface RevInfo {
  readonly rev: Rev;
  readonly status: RevStatus;
}

/** Orders leaves winner first. */
export function compareLeavesForWinner<T extends RevLeafValue>(
  a: RevLeaf<T>,
  b: RevLeaf<T>,
): number {
  if (a.value.deleted !== b.value.deleted) return a.value.deleted ? 1 : -1;
  if (a.rev.pos !== b.rev.pos) return a.rev.pos > b.rev.pos ? -1 : 1;
  return -compareRevIds(a.rev.id, b.rev.id);
}

/** Returns every leaf, depth first in sibling order. */
export function leavesInTreeOrder<T>(tree: RevTree<T>): RevLeaf<T>[] {
  const leaves: RevLeaf<T>[] = [];
  forEachLeaf(tree, (pos, node) => {
    assert(node.value !== null, () => `leaf ${pos}-${node.id} has no value`);
    leaves.push({ rev: { pos, id: node.id }, value: node.value });
  });
  return leaves;
}

/** Returns every leaf, winner first (CouchDB's `#doc_info.revs` order). */
export function sortedLeaves<T extends RevLeafValue>(tree: RevTree<T>): RevLeaf<T>[] {
  return leavesInTreeOrder(tree).sort(compareLeavesForWinner);
}

/** Returns the winning leaf of a non-empty tree. */
export function winner<T extends RevLeafValue>(tree: RevTree<T>): RevLeaf<T> {
  let best: RevLeaf<T> | null = null;
  forEachLeaf(tree, (pos, node) => {
    assert(node.value !== null, () => `leaf ${pos}-${node.id} has no value`);
    const leaf = { rev: { pos, id: node.id }, value: node.value };
    if (best === null || compareLeavesForWinner(leaf, best) < 0) best = leaf;
  });
  assert(best !== null, 'an empty revision tree has no winner');
  return best;
}

/** True when every leaf is deleted (also for the empty tree). */
export function isDeleted<T extends RevLeafValue>(tree: RevTree<T>): boolean {
  let deleted = true;
  forEachLeaf(tree, (_pos, node) => {
    if (node.value !== null && !node.value.deleted) deleted = false;
  });
  return deleted;
}

/** `_conflicts`: the live leaves other than the winner, in winner order. */
export function conflicts<T extends RevLeafValue>(tree: RevTree<T>): Rev[] {
  return sortedLeaves(tree)
    .slice(1)
    .filter((leaf) => !leaf.value.deleted)
    .map((leaf) => leaf.rev);
}

/** `_deleted_conflicts`: the deleted leaves other than the winner, in winner order. */
export function deletedConflicts<T extends RevLeafValue>(tree: RevTree<T>): Rev[] {
  return sortedLeaves(tree)
    .slice(1)
    .filter((leaf) => leaf.value.deleted)
    .map((leaf) => leaf.rev);
}

/** Returns the nodes from a root down to `rev`, or null when the tree lacks it. */
function lineageOf<T>(tree: RevTree<T>, rev: Rev): RevNode<T>[] | null {
  for (const root of tree) {
    if (root.pos > rev.pos) break;
    const found = findBelow(root.node, rev.pos - root.pos, rev.id);
    if (found !== null) return found.lineage;
  }
  return null;
}

/**
 * Returns the node of `rev`, or null when the tree lacks it. Single-child chains are walked
 * without bookkeeping, since most trees are one long chain.
 */
export function findRevision<T>(tree: RevTree<T>, rev: Rev): RevNode<T> | null {
  for (const root of tree) {
    if (root.pos > rev.pos) break;
    const stack: { node: RevNode<T>; pos: number }[] = [root];
    for (;;) {
      const entry = stack.pop();
      if (entry === undefined) break;
      let { node, pos } = entry;
      while (pos < rev.pos && node.children.length === 1) {
        node = node.children[0]!;
        pos++;
      }
      if (pos === rev.pos) {
        if (node.id === rev.id) return node;
        continue;
      }
      const children = node.children;
      for (let c = children.length - 1; c >= 0; c--)
        stack.push({ node: children[c]!, pos: pos + 1 });
    }
  }
  return null;
}

/**
 * `_revisions` of `rev`: the revision and its ancestors up to its root, newest first. Null
 * when the tree lacks `rev`.
 */
export function revisionPath<T>(tree: RevTree<T>, rev: Rev): RevPath | null {
  const lineage = lineageOf(tree, rev);
  if (lineage === null) return null;
  return { start: rev.pos, ids: lineage.map((node) => node.id).reverse() };
}

/**
 * `_revs_info` of `rev`: each revision on its path, newest first. A revision with a value is
 * `available` or `deleted`; an interior one has no body and is `missing`.
 */
export function revsInfo<T extends RevLeafValue>(tree: RevTree<T>, rev: Rev): RevInfo[] | null {
  const lineage = lineageOf(tree, rev);
  if (lineage === null) return null;
  const infos: RevInfo[] = [];
  for (let i = lineage.length - 1; i >= 0; i--) {
    const node = lineage[i]!;
    const pos = rev.pos - (lineage.length - 1 - i);
    let status: RevStatus = 'missing';
    if (node.value !== null) status = node.value.deleted ? 'deleted' : 'available';
    infos.push({ rev: { pos, id: node.id }, status });
  }
  return infos;
}

/**
 * `_revs_diff`: the requested revisions the tree does not hold (as any node, leaf or
 * interior), in request order, duplicates kept.
 */
export function missingRevisions<T>(tree: RevTree<T>, revs: readonly Rev[]): Rev[] {
  if (revs.length === 0) return [];
  const present = new Set<string>();
  forEachRevision(tree, (rev) => present.add(`${rev.pos}-${rev.id}`));
  return revs.filter((rev) => !present.has(`${rev.pos}-${rev.id}`));
}

/**
 * `possible_ancestors` for `_revs_diff`: the leaves whose position is below that of some
 * missing revision, in the order CouchDB 3.x lists them (winner order, reversed).
 */
export function possibleAncestors<T extends RevLeafValue>(
  tree: RevTree<T>,
  missing: readonly Rev[],
): Rev[] {
  if (missing.length === 0) return [];
  let highest = 0;
  for (const rev of missing) highest = Math.max(highest, rev.pos);
  return sortedLeaves(tree)
    .filter((leaf) => leaf.rev.pos < highest)
    .map((leaf) => leaf.rev)
    .reverse();
}

/**
 * `latest=true`: the leaves reachable from `rev` (the revision itself when it is a leaf),
 * depth first in sibling order. Null when the tree lacks `rev`.
 */
export function leavesFrom<T>(tree: RevTree<T>, rev: Rev): RevLeaf<T>[] | null {
  const node = findRevision(tree, rev);
  if (node === null) return null;
  return leavesInTreeOrder([{ pos: rev.pos, node }]);
}

/** Applies `update` to every leaf value; the structure is unchanged. */
export function mapLeaves<T, U>(tree: RevTree<T>, update: (rev: Rev, value: T) => U): RevTree<U> {
  return tree.map((root) => ({ pos: root.pos, node: mapNode(root.node, root.pos, update) }));
}

function mapNode<T, U>(
  node: RevNode<T>,
  pos: number,
  update: (rev: Rev, value: T) => U,
): RevNode<U> {
  // Interior chains can be long (up to revs_limit), so walk down iteratively and rebuild up.
  const chainNodes: RevNode<T>[] = [];
  let current = node;
  let depth = 0;
  while (current.children.length === 1) {
    chainNodes.push(current);
    current = current.children[0]!;
    depth++;
  }
  let mapped: RevNode<U>;
  if (current.children.length === 0) {
    assert(current.value !== null, () => `leaf ${current.id} has no value`);
    mapped = {
      id: current.id,
      value: update({ pos: pos + depth, id: current.id }, current.value),
      children: [],
    };
  } else {
    mapped = {
      id: current.id,
      value: null,
      children: current.children.map((child) => mapNode(child, pos + depth + 1, update)),
    };
  }
  for (let i = chainNodes.length - 1; i >= 0; i--) {
    mapped = { id: chainNodes[i]!.id, value: null, children: [mapped] };
  }
  return mapped;
}
