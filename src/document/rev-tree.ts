/**
 * Revision trees as CouchDB 3.x keeps them (couch_key_tree), generic over the leaf value.
 *
 * A tree is a list of roots sorted by (position, id). A root at a position above 1 is a stemmed
 * fragment: its ancestors were cut by stemming or never received. Each node has a canonical
 * revision id (see rev.ts) and children sorted by `compareRevIds`.
 *
 * Invariants:
 * - a leaf carries a value and an interior node carries none (`null`, CouchDB's "missing"
 *   marker), so the bodies of older revisions are gone as soon as a revision has a child,
 *   as after a CouchDB compaction (checked by `checkRevTree`, with the orders above);
 * - a (position, id) appears once, unless clients sent two histories that give one revision
 *   two different parents (only `new_edits=false` with made-up ids can do that); CouchDB then
 *   keeps both copies, and so does Divan;
 * - trees are immutable: every operation returns new nodes along the changed paths, shares the
 *   rest, and returns its input object itself when nothing changed.
 *
 * Operations here: `mergePath` (CouchDB's merge of one path, with its outcome),
 * `revTreesEqual`, `checkRevTree` and traversal helpers. Stemming is in rev-stem.ts, reads
 * (winner, conflicts, paths, `_revs_diff`) in rev-tree-query.ts and the interactive-edit rules
 * in rev-edit.ts.
 *
 * Merge follows couch_key_tree:merge. The path is aligned by position with each root in turn.
 * It joins the first root that contains the path's first revision at the same position (or, when
 * the path starts above the root, whose root is the path's revision at that position).
 * Otherwise it becomes a new root. The outcome is
 * `newLeaf` when the path extends a leaf (or starts the tree), `newBranch` when it adds a
 * sibling or a new root to a non-empty tree, and `alreadyPresent` when its newest revision was
 * already in the tree. `alreadyPresent` can still change the tree, when the path adds
 * ancestors above a stemmed root.
 *
 * A leaf that was already in the tree keeps its value; `value` is used only for a new leaf.
 *
 * When a merge leaves a revision in two places (a path that joins a fragment it also overlaps
 * further down), CouchDB repairs the tree at its next stem by rebuilding it from its leaf paths
 * truncated to revs_limit. Divan rebuilds at once, without truncation, and stems afterwards.
 * The two agree except that CouchDB's truncated rebuild can also detach a node whose nearest
 * leaf is exactly revs_limit away, and that CouchDB's rebuild can keep the merged path's value
 * for a leaf it already had where Divan keeps the old one.
 */
import { assert } from '../util/assert.js';
import { compareRevIds, type Rev, type RevPath } from './rev.js';

/** The part of a leaf value that the tree reads. */
export interface RevLeafValue {
  readonly deleted: boolean;
}

export interface RevNode<T> {
  readonly id: string;
  /** The leaf's value; null on interior nodes. */
  readonly value: T | null;
  /** Children sorted by `compareRevIds`; empty for a leaf. */
  readonly children: readonly RevNode<T>[];
}

export interface RevRoot<T> {
  /** Position of the root node. */
  readonly pos: number;
  readonly node: RevNode<T>;
}

/** Roots sorted by position, then id. The empty tree is a document never written. */
export type RevTree<T> = readonly RevRoot<T>[];

export type MergeOutcome = 'newLeaf' | 'newBranch' | 'alreadyPresent';

export interface MergeResult<T> {
  /** The merged tree; the input object itself when nothing changed. */
  readonly tree: RevTree<T>;
  readonly outcome: MergeOutcome;
}

interface NodeResult<T> {
  readonly node: RevNode<T>;
  readonly outcome: MergeOutcome;
}

/** Returns the path's revisions oldest first, with the position of the oldest. */
function pathOldestFirst(path: RevPath): { readonly pos: number; readonly ids: string[] } {
  assert(path.ids.length > 0, 'a merged path needs at least one revision');
  const pos = path.start - path.ids.length + 1;
  assert(pos >= 1, () => `path at ${path.start} with ${path.ids.length} ids starts below 1`);
  return { pos, ids: path.ids.slice().reverse() };
}

/** Builds the chain `ids[from..]`, interior nodes first, the value on the last node. */
function chain<T>(ids: readonly string[], from: number, value: T): RevNode<T> {
  let node: RevNode<T> = { id: ids[ids.length - 1]!, value, children: [] };
  for (let i = ids.length - 2; i >= from; i--) {
    node = { id: ids[i]!, value: null, children: [node] };
  }
  return node;
}

function childIndex<T>(children: readonly RevNode<T>[], id: string): number {
  for (let i = 0; i < children.length; i++) {
    if (children[i]!.id === id) return i;
  }
  return -1;
}

function insertSorted<T>(children: readonly RevNode<T>[], node: RevNode<T>): RevNode<T>[] {
  const result = children.slice();
  let at = result.length;
  while (at > 0 && compareRevIds(result[at - 1]!.id, node.id) > 0) at--;
  result.splice(at, 0, node);
  return result;
}

/** Replaces the last node of `lineage` with `replacement` and copies its ancestors. */
function rebuildLineage<T>(
  lineage: readonly RevNode<T>[],
  indices: readonly number[],
  replacement: RevNode<T>,
): RevNode<T> {
  let node = replacement;
  for (let level = lineage.length - 2; level >= 0; level--) {
    const parent = lineage[level]!;
    let children: RevNode<T>[];
    if (parent.children.length === 1) {
      children = [node];
    } else {
      children = parent.children.slice();
      children[indices[level]!] = node;
    }
    node = { id: parent.id, value: parent.value, children };
  }
  return node;
}

/**
 * Follows `ids[from..]` down from `node`, then hangs the rest of the path there. Returns the
 * node itself when the whole path was already present.
 */
function extendNode<T>(
  node: RevNode<T>,
  ids: readonly string[],
  from: number,
  value: T,
): NodeResult<T> {
  const lineage: RevNode<T>[] = [node];
  const indices: number[] = [];
  let current = node;
  let next = from;
  while (next < ids.length) {
    const index = childIndex(current.children, ids[next]!);
    if (index < 0) break;
    current = current.children[index]!;
    lineage.push(current);
    indices.push(index);
    next++;
  }
  if (next === ids.length) return { node, outcome: 'alreadyPresent' };

  const outcome: MergeOutcome = current.children.length === 0 ? 'newLeaf' : 'newBranch';
  const grown: RevNode<T> = {
    id: current.id,
    value: null,
    children: insertSorted(current.children, chain(ids, next, value)),
  };
  return { node: rebuildLineage(lineage, indices, grown), outcome };
}

/**
 * Finds the first node (in depth-first, sibling order) `depth` levels below `root` whose id is
 * `id`. Returns the nodes from the root down to it and the child index taken at each level.
 */
export function findBelow<T>(
  root: RevNode<T>,
  depth: number,
  id: string,
): { readonly lineage: RevNode<T>[]; readonly indices: number[] } | null {
  const lineage: RevNode<T>[] = [root];
  const indices: number[] = [];
  for (;;) {
    const level = lineage.length - 1;
    const node = lineage[level]!;
    if (level === depth) {
      if (node.id === id) return { lineage, indices };
    } else if (node.children.length > 0) {
      lineage.push(node.children[0]!);
      indices.push(0);
      continue;
    }
    // Backtrack to the nearest ancestor with an unvisited child.
    for (;;) {
      const index = indices.pop();
      if (index === undefined) return null;
      lineage.pop();
      const parent = lineage[lineage.length - 1]!;
      if (index + 1 < parent.children.length) {
        lineage.push(parent.children[index + 1]!);
        indices.push(index + 1);
        break;
      }
    }
  }
}

/** Merges the path (oldest first from `pos`) into one root, or returns null if it does not fit. */
function mergeIntoRoot<T>(
  root: RevRoot<T>,
  pos: number,
  ids: readonly string[],
  value: T,
): { readonly root: RevRoot<T>; readonly outcome: MergeOutcome } | null {
  if (root.pos >= pos) {
    // The path starts at or above this root: its node at the root's position must be the root.
    const offset = root.pos - pos;
    if (offset >= ids.length || ids[offset] !== root.node.id) return null;
    const extended = extendNode(root.node, ids, offset + 1, value);
    if (offset === 0) {
      if (extended.node === root.node) return { root, outcome: extended.outcome };
      return { root: { pos, node: extended.node }, outcome: extended.outcome };
    }
    let node = extended.node;
    for (let i = offset - 1; i >= 0; i--) node = { id: ids[i]!, value: null, children: [node] };
    return { root: { pos, node }, outcome: extended.outcome };
  }

  // The path starts inside this root: find its first revision at the right depth.
  const found = findBelow(root.node, pos - root.pos, ids[0]!);
  if (found === null) return null;
  const target = found.lineage[found.lineage.length - 1]!;
  const extended = extendNode(target, ids, 1, value);
  if (extended.node === target) return { root, outcome: extended.outcome };
  const node = rebuildLineage(found.lineage, found.indices, extended.node);
  return { root: { pos: root.pos, node }, outcome: extended.outcome };
}

/** Orders roots by position, then id. */
export function compareRoots<T>(a: RevRoot<T>, b: RevRoot<T>): number {
  if (a.pos !== b.pos) return a.pos < b.pos ? -1 : 1;
  return compareRevIds(a.node.id, b.node.id);
}

/** CouchDB's merge of one path, without the duplicate repair. */
function mergeWithoutRepair<T>(tree: RevTree<T>, path: RevPath, value: T): MergeResult<T> {
  const { pos, ids } = pathOldestFirst(path);
  for (let i = 0; i < tree.length; i++) {
    const merged = mergeIntoRoot(tree[i]!, pos, ids, value);
    if (merged === null) continue;
    if (merged.root === tree[i]) return { tree, outcome: merged.outcome };
    const roots = tree.slice();
    roots[i] = merged.root;
    roots.sort(compareRoots);
    return { tree: roots, outcome: merged.outcome };
  }
  const roots = [...tree, { pos, node: chain(ids, 0, value) }];
  roots.sort(compareRoots);
  return { tree: roots, outcome: tree.length === 0 ? 'newLeaf' : 'newBranch' };
}

/**
 * Merges one path into the tree. `path.ids[0]` is the new revision and gets `value`; the
 * older ones become interior nodes where they are new. See the file header for the outcome.
 */
export function mergePath<T>(tree: RevTree<T>, path: RevPath, value: T): MergeResult<T> {
  const merged = mergeWithoutRepair(tree, path, value);
  return { tree: repairDuplicates(merged.tree, tree), outcome: merged.outcome };
}

/**
 * Rebuilds `tree` from its leaf paths when a revision appears in two places. Only a tree of
 * several roots can show that, and any other tree comes back unchanged. Leaves that `previous`
 * contained keep their value from there.
 */
export function repairDuplicates<T>(tree: RevTree<T>, previous: RevTree<T>): RevTree<T> {
  if (tree.length < 2 || !hasDuplicateRevisions(tree)) return tree;
  return rebuildFromLeafPaths(tree, leafValues(previous));
}

/** Maps `pos-id` of every leaf to its value. */
function leafValues<T>(tree: RevTree<T>): Map<string, T> {
  const values = new Map<string, T>();
  forEachRevision(tree, (rev, node) => {
    if (node.value !== null) values.set(`${rev.pos}-${rev.id}`, node.value);
  });
  return values;
}

/** Calls `visit` for every node, depth first, in sibling order. */
export function forEachRevision<T>(
  tree: RevTree<T>,
  visit: (rev: Rev, node: RevNode<T>) => void,
): void {
  const stack: { pos: number; node: RevNode<T> }[] = [];
  for (let r = tree.length - 1; r >= 0; r--) stack.push(tree[r]!);
  for (;;) {
    const entry = stack.pop();
    if (entry === undefined) return;
    visit({ pos: entry.pos, id: entry.node.id }, entry.node);
    const children = entry.node.children;
    for (let c = children.length - 1; c >= 0; c--) {
      stack.push({ pos: entry.pos + 1, node: children[c]! });
    }
  }
}

/**
 * Calls `visit` for every leaf, depth first, in sibling order. Cheaper than `forEachRevision`
 * on long chains because it allocates nothing per interior node.
 */
export function forEachLeaf<T>(
  tree: RevTree<T>,
  visit: (pos: number, leaf: RevNode<T>) => void,
): void {
  const stack: { pos: number; node: RevNode<T> }[] = [];
  for (let r = tree.length - 1; r >= 0; r--) stack.push(tree[r]!);
  for (;;) {
    const entry = stack.pop();
    if (entry === undefined) return;
    let { pos, node } = entry;
    while (node.children.length === 1) {
      node = node.children[0]!;
      pos++;
    }
    const children = node.children;
    if (children.length === 0) visit(pos, node);
    for (let c = children.length - 1; c >= 0; c--) stack.push({ pos: pos + 1, node: children[c]! });
  }
}

function hasDuplicateRevisions<T>(tree: RevTree<T>): boolean {
  const seen = new Set<string>();
  let duplicate = false;
  forEachRevision(tree, (rev) => {
    const key = `${rev.pos}-${rev.id}`;
    if (seen.has(key)) duplicate = true;
    seen.add(key);
  });
  return duplicate;
}

/** A root-to-leaf path: the root's position, ids oldest first, and the leaf's value. */
export interface LeafPath<T> {
  readonly pos: number;
  readonly ids: readonly string[];
  readonly value: T;
}

/** Returns every root-to-leaf path, depth first, in sibling order. */
export function leafPaths<T>(tree: RevTree<T>): LeafPath<T>[] {
  const paths: LeafPath<T>[] = [];
  for (const root of tree) {
    const lineage: RevNode<T>[] = [root.node];
    const indices: number[] = [];
    for (;;) {
      const node = lineage[lineage.length - 1]!;
      if (node.children.length > 0) {
        lineage.push(node.children[0]!);
        indices.push(0);
        continue;
      }
      assert(node.value !== null, () => `leaf ${node.id} has no value`);
      paths.push({ pos: root.pos, ids: lineage.map((n) => n.id), value: node.value });
      if (!advanceToNextSibling(lineage, indices)) break;
    }
  }
  return paths;
}

/** Moves `lineage` to the next unvisited sibling of its deepest node or of an ancestor. */
function advanceToNextSibling<T>(lineage: RevNode<T>[], indices: number[]): boolean {
  for (;;) {
    const index = indices.pop();
    if (index === undefined) return false;
    lineage.pop();
    const parent = lineage[lineage.length - 1]!;
    if (index + 1 < parent.children.length) {
      lineage.push(parent.children[index + 1]!);
      indices.push(index + 1);
      return true;
    }
  }
}

function compareLeafPaths<T>(a: LeafPath<T>, b: LeafPath<T>): number {
  if (a.pos !== b.pos) return a.pos < b.pos ? -1 : 1;
  for (let i = 0; i < a.ids.length && i < b.ids.length; i++) {
    const order = compareRevIds(a.ids[i]!, b.ids[i]!);
    if (order !== 0) return order;
  }
  return a.ids.length - b.ids.length;
}

/**
 * Rebuilds a tree by merging its leaf paths, oldest start first, into an empty tree. A leaf
 * that `previous` already held keeps its value from there, as a leaf does in a plain merge.
 */
function rebuildFromLeafPaths<T>(tree: RevTree<T>, previous: Map<string, T>): RevTree<T> {
  const paths = leafPaths(tree).sort(compareLeafPaths);
  let rebuilt: RevTree<T> = [];
  for (const path of paths) {
    const start = path.pos + path.ids.length - 1;
    const ids = path.ids.slice().reverse();
    const value = previous.get(`${start}-${ids[0]}`) ?? path.value;
    rebuilt = mergeWithoutRepair(rebuilt, { start, ids }, value).tree;
  }
  return rebuilt;
}

/**
 * Compares two trees node by node. Values are compared with `valueEquals` (identity when
 * absent): merges and stems keep the value objects of untouched leaves.
 */
export function revTreesEqual<T>(
  a: RevTree<T>,
  b: RevTree<T>,
  valueEquals: (x: T, y: T) => boolean = Object.is,
): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  const stack: [RevNode<T>, RevNode<T>][] = [];
  for (let i = 0; i < a.length; i++) {
    if (a[i]!.pos !== b[i]!.pos) return false;
    stack.push([a[i]!.node, b[i]!.node]);
  }
  for (;;) {
    const pair = stack.pop();
    if (pair === undefined) return true;
    const [x, y] = pair;
    if (x === y) continue;
    if (x.id !== y.id || x.children.length !== y.children.length) return false;
    if (x.value === null || y.value === null) {
      if (x.value !== y.value) return false;
    } else if (!valueEquals(x.value, y.value)) {
      return false;
    }
    for (let i = 0; i < x.children.length; i++) stack.push([x.children[i]!, y.children[i]!]);
  }
}

/**
 * Asserts the order and leaf-value invariants of the file header, for trees read from disk and
 * in tests. A failure is a bug or corruption.
 */
export function checkRevTree<T>(tree: RevTree<T>): void {
  for (let i = 0; i < tree.length; i++) {
    const root = tree[i]!;
    assert(Number.isSafeInteger(root.pos) && root.pos >= 1, () => `root position ${root.pos}`);
    if (i > 0) {
      assert(compareRoots(tree[i - 1]!, root) < 0, () => `roots out of order at ${root.pos}`);
    }
  }
  forEachRevision(tree, (rev, node) => {
    const key = `${rev.pos}-${rev.id}`;
    const isLeaf = node.children.length === 0;
    assert(isLeaf === (node.value !== null), () => `revision ${key}: leaf values only`);
    for (let c = 1; c < node.children.length; c++) {
      const previous = node.children[c - 1]!.id;
      const current = node.children[c]!.id;
      assert(compareRevIds(previous, current) < 0, () => `children of ${key} out of order`);
    }
  });
}
