/**
 * Stemming, as couch_key_tree:stem does it: a revision stays when some leaf below it is fewer
 * than `limit` edits away (the leaf itself counts as 0), so every leaf keeps at most `limit`
 * revisions of history. A kept revision whose parent is cut becomes a new root. CouchDB stems to
 * the database's `revs_limit` (1000 by default) after every update of a document.
 *
 * Trees are mostly long single-child chains, so the walk handles a chain as one unit: it finds
 * the chain's end, stems below it, and then cuts the chain's top without copying the nodes it
 * keeps. It recurses only at branch points (one frame per nested branch point on a path).
 * Kept subtrees keep their node objects, and the input tree itself comes back when nothing is
 * cut. As in CouchDB, copies of one revision that stemming brings together are merged.
 */
import { assert } from '../util/assert.js';
import {
  compareRoots,
  type RevNode,
  type RevRoot,
  type RevTree,
  repairDuplicates,
} from './rev-tree.js';

interface Stemmed<T> {
  /** The subtree's top after stemming, or null when the top itself is cut. */
  readonly kept: RevNode<T> | null;
  /** Edits from the subtree's top down to its nearest leaf. */
  readonly nearestLeaf: number;
}

/** Returns the node `steps` levels down a single-child chain. */
function followChain<T>(top: RevNode<T>, steps: number): RevNode<T> {
  let node = top;
  for (let i = 0; i < steps; i++) node = node.children[0]!;
  return node;
}

/** Copies the chain from `top` down `length` levels, ending on `end` instead. */
function copyChain<T>(top: RevNode<T>, length: number, end: RevNode<T>): RevNode<T> {
  const chain: RevNode<T>[] = [];
  let node = top;
  for (let i = 0; i < length; i++) {
    chain.push(node);
    node = node.children[0]!;
  }
  let copy = end;
  for (let i = chain.length - 1; i >= 0; i--)
    copy = { id: chain[i]!.id, value: null, children: [copy] };
  return copy;
}

/** Stems the branches below a branch point and returns the point's replacement. */
function stemBranchPoint<T>(
  node: RevNode<T>,
  pos: number,
  limit: number,
  newRoots: RevRoot<T>[],
): Stemmed<T> {
  let nearestLeaf = Number.POSITIVE_INFINITY;
  let unchanged = true;
  const keptChildren: RevNode<T>[] = [];
  for (const child of node.children) {
    const stemmed = stemFrom(child, pos + 1, limit, newRoots);
    nearestLeaf = Math.min(nearestLeaf, stemmed.nearestLeaf + 1);
    if (stemmed.kept !== child) unchanged = false;
    if (stemmed.kept !== null) keptChildren.push(stemmed.kept);
  }
  if (nearestLeaf >= limit) {
    for (const kept of keptChildren) newRoots.push({ pos: pos + 1, node: kept });
    return { kept: null, nearestLeaf };
  }
  const kept = unchanged ? node : { id: node.id, value: null, children: keptChildren };
  return { kept, nearestLeaf };
}

/** Stems the subtree under `top` (at `pos`); cut-off parts that survive go to `newRoots`. */
function stemFrom<T>(
  top: RevNode<T>,
  pos: number,
  limit: number,
  newRoots: RevRoot<T>[],
): Stemmed<T> {
  let end = top;
  let length = 0;
  while (end.children.length === 1) {
    end = end.children[0]!;
    length++;
  }
  const endPos = pos + length;
  const stemmedEnd: Stemmed<T> =
    end.children.length === 0
      ? { kept: end, nearestLeaf: 0 }
      : stemBranchPoint(end, endPos, limit, newRoots);
  const nearestLeaf = stemmedEnd.nearestLeaf + length;
  const keptEnd = stemmedEnd.kept;
  if (keptEnd === null) return { kept: null, nearestLeaf };

  if (nearestLeaf < limit) {
    const kept = keptEnd === end ? top : copyChain(top, length, keptEnd);
    return { kept, nearestLeaf };
  }
  // Only the bottom of the chain stays: the nodes fewer than `limit` edits above a leaf.
  const firstKept = nearestLeaf - limit + 1;
  const newTop =
    keptEnd === end
      ? followChain(top, firstKept)
      : copyChain(followChain(top, firstKept), length - firstKept, keptEnd);
  newRoots.push({ pos: pos + firstKept, node: newTop });
  return { kept: null, nearestLeaf };
}

/**
 * Keeps at most `limit` revisions on every leaf's path. Returns the input object when nothing
 * is cut.
 */
export function stem<T>(tree: RevTree<T>, limit: number): RevTree<T> {
  assert(Number.isSafeInteger(limit) && limit >= 1, () => `invalid revs limit ${limit}`);
  const roots: RevRoot<T>[] = [];
  let changed = false;
  for (const root of tree) {
    const stemmed = stemFrom(root.node, root.pos, limit, roots);
    if (stemmed.kept === root.node) {
      roots.push(root);
    } else {
      changed = true;
      if (stemmed.kept !== null) roots.push({ pos: root.pos, node: stemmed.kept });
    }
  }
  if (!changed) return tree;
  roots.sort(compareRoots);
  // A revision with two parents leaves two equal roots once both parents are cut.
  return repairDuplicates(roots, tree);
}

/** Returns the number of revisions on the longest root-to-leaf path. */
export function maxHeight<T>(tree: RevTree<T>): number {
  let height = 0;
  const stack: { node: RevNode<T>; level: number }[] = tree.map((root) => ({
    node: root.node,
    level: 1,
  }));
  for (;;) {
    const entry = stack.pop();
    if (entry === undefined) return height;
    let { node, level } = entry;
    while (node.children.length === 1) {
      node = node.children[0]!;
      level++;
    }
    if (level > height) height = level;
    for (const child of node.children) stack.push({ node: child, level: level + 1 });
  }
}
