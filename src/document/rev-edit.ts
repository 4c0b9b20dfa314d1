/**
 * Interactive edits (`new_edits=true`, the default) under CouchDB 3.x rules, in two steps so
 * that the caller can compute the new revision id from the parent in between:
 *
 *   const target = resolveInteractiveEdit(tree, doc.revisions, doc.deleted);
 *   if (target.kind === 'conflict') -> 409 conflict
 *   const id = newRevId({ deleted, parent: target.parent, body, attachments });
 *   const applied = applyInteractiveEdit(tree, target, id, leafValue);
 *
 * Rules (couch_db prep_and_validate_update and couch_db_updater merge_rev_tree):
 * - A document never written (empty tree) takes a write without a revision; it starts a tree
 *   at position 1, deleted or not. A write naming a revision conflicts.
 * - A deleted document (every leaf deleted) takes only a live write without a revision. It
 *   extends the winning deleted leaf, so the tree does not grow a new root. A write naming a
 *   revision conflicts, even the tombstone's own (CouchDB 2.x and 3.x behave so).
 * - A live document needs the revision of one of its leaves (deleted leaves included), else
 *   the write conflicts. When the client sent a whole `_revisions` history, the new revision
 *   is merged with that history and must extend a leaf.
 *
 * Stemming is left to the caller: CouchDB stems once per document and batch, after all of the
 * batch's edits of that document.
 */
import type { Rev, RevPath } from './rev.js';
import { mergePath, type RevLeafValue, type RevTree } from './rev-tree.js';
import { findRevision, isDeleted, winner } from './rev-tree-query.js';

export type EditTarget =
  | { readonly kind: 'conflict' }
  /** The edit starts a tree at position 1, so its revision id has no parent. */
  | { readonly kind: 'create'; readonly parent: null }
  /** The edit extends `parent`; `history` is the path to merge below the new revision. */
  | { readonly kind: 'extend'; readonly parent: Rev; readonly history: RevPath };

export type AppliedEdit<T> =
  | { readonly kind: 'conflict' }
  | { readonly kind: 'applied'; readonly tree: RevTree<T>; readonly rev: Rev };

const CONFLICT = Object.freeze({ kind: 'conflict' as const });

/**
 * Decides where an interactive edit attaches. `history` is the document's `_rev` (one id) or
 * `_revisions`; `{start: 0, ids: []}` when it named none.
 */
export function resolveInteractiveEdit<T extends RevLeafValue>(
  tree: RevTree<T>,
  history: RevPath,
  deleted: boolean,
): EditTarget {
  const namesRevision = history.ids.length > 0 || history.start !== 0;
  if (tree.length === 0) {
    return namesRevision ? CONFLICT : { kind: 'create', parent: null };
  }
  if (isDeleted(tree)) {
    if (namesRevision || deleted) return CONFLICT;
    const tombstone = winner(tree).rev;
    return {
      kind: 'extend',
      parent: tombstone,
      history: { start: tombstone.pos, ids: [tombstone.id] },
    };
  }
  const newest = history.ids[0];
  if (newest === undefined) return CONFLICT;
  const parent = { pos: history.start, id: newest };
  const node = findRevision(tree, parent);
  if (node === null || node.children.length > 0) return CONFLICT;
  return { kind: 'extend', parent, history };
}

/**
 * Adds the new revision `id` (with its leaf value) at the place `resolveInteractiveEdit`
 * chose. The result is a conflict when the merge does not extend a leaf, as in CouchDB's
 * updater.
 */
export function applyInteractiveEdit<T>(
  tree: RevTree<T>,
  target: Exclude<EditTarget, { kind: 'conflict' }>,
  id: string,
  value: T,
): AppliedEdit<T> {
  const path: RevPath =
    target.kind === 'create'
      ? { start: 1, ids: [id] }
      : { start: target.history.start + 1, ids: [id, ...target.history.ids] };
  const merged = mergePath(tree, path, value);
  if (merged.outcome !== 'newLeaf') return CONFLICT;
  return { kind: 'applied', tree: merged.tree, rev: { pos: path.start, id } };
}
