/**
 * Purge as CouchDB 3.x applies it (couch_db_updater:purge_docs, couch_key_tree:remove_leafs):
 * the requested revisions that are leaves are removed with every ancestor that no other leaf
 * needs, as if they had never been written.
 *
 * - A document that loses every leaf disappears from by_id and by_seq.
 * - A document that keeps some leaves is rebuilt from its remaining root-to-leaf paths, and
 *   every remaining leaf takes a new update sequence, one after the other in tree order; the
 *   document's row moves to the last one.
 * - A revision that is not a leaf (or not in the tree) is not purged and not reported.
 * - The request's update sequence rises by at least one even when nothing was purged, so
 *   readers of `_changes` notice the purge, as in CouchDB.
 *
 * Every purge request is recorded in the purge trees at the next purge sequence. The trees
 * keep the newest `purged_infos_limit` requests: older ones are removed when a purge or a
 * limit change is applied, so every replica keeps the same ones. (CouchDB removes them at
 * compaction instead.)
 */
import { formatRev, type Rev, tryParseRev } from '../document/rev.js';
import { leafPaths, mergePath, type RevTree } from '../document/rev-tree.js';
import { mapLeaves } from '../document/rev-tree-query.js';
import type { StoredLeaf } from './doc-info.js';

/** The result of removing leaves from a tree. */
export interface PurgedTree {
  /** The remaining tree; empty when every leaf was removed. */
  readonly tree: RevTree<StoredLeaf>;
  /** The leaves removed, in tree order. */
  readonly removed: readonly Rev[];
}

/** Parses the purge request's revisions, skipping any that are not `N-<id>`. */
export function parsePurgeRevs(revs: readonly string[]): Rev[] {
  const parsed: Rev[] = [];
  for (const text of revs) {
    const rev = tryParseRev(text);
    if (rev !== null) parsed.push(rev);
  }
  return parsed;
}

/** Removes the leaves of `tree` named in `revs` and the ancestors only they needed. */
export function removeLeaves(tree: RevTree<StoredLeaf>, revs: readonly Rev[]): PurgedTree {
  const wanted = new Set(revs.map(formatRev));
  const kept = [];
  const removed: Rev[] = [];
  for (const path of leafPaths(tree)) {
    const leaf = { pos: path.pos + path.ids.length - 1, id: path.ids[path.ids.length - 1]! };
    if (wanted.has(formatRev(leaf))) removed.push(leaf);
    else kept.push(path);
  }
  if (removed.length === 0) return { tree, removed };
  let rebuilt: RevTree<StoredLeaf> = [];
  for (const path of kept) {
    const start = path.pos + path.ids.length - 1;
    rebuilt = mergePath(rebuilt, { start, ids: path.ids.slice().reverse() }, path.value).tree;
  }
  return { tree: rebuilt, removed };
}

/**
 * Gives every leaf of a partly purged tree a new sequence after `lastSeq`, in tree order, and
 * returns the tree with the last sequence taken.
 */
export function relabelLeaves(
  tree: RevTree<StoredLeaf>,
  lastSeq: number,
): { tree: RevTree<StoredLeaf>; lastSeq: number } {
  let seq = lastSeq;
  const relabelled = mapLeaves(tree, (_rev, leaf) => {
    seq += 1;
    return { ...leaf, seq };
  });
  return { tree: relabelled, lastSeq: seq };
}
