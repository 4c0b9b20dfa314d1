/**
 * The document rules of applying a command, as CouchDB 3.x's updater applies them, written
 * against a `DocumentStore` (the apply batch's view of the trees) so that they read like the
 * rules and nothing else:
 *
 * - Interactive edit (`new_edits=true`): the edit must extend a leaf (or start a document, or
 *   recreate a deleted one on its tombstone), else `conflict`. The new revision id is
 *   computed from the parent, the deleted flag, the body bytes and each attachment's name,
 *   type and digest (src/document/revid.ts), so every replica computes the same id.
 * - Replicated edit (`new_edits=false`): the document's `_revisions` path is merged as given;
 *   a path already present changes nothing and takes no sequence.
 * - Every change stems the tree to `revs_limit`, takes the next update sequence, and moves the
 *   document's by_seq row there.
 * - `_local/` documents have no revision tree. Their revision is `0-N`, N counted up on every
 *   write, and the given revision is not compared with the stored one, as in CouchDB 3.x.
 *   Deleting a missing one is `not_found`.
 *
 * Results are values in request order; a rejected document changes nothing.
 */
import { docKind, validateDocId } from '../document/doc-id.js';
import { requireReplicatedRevisions } from '../document/document.js';
import { scanObject } from '../document/json.js';
import { formatLocalRev, formatRev, nextLocalRevCounter, type RevPath } from '../document/rev.js';
import { applyInteractiveEdit, resolveInteractiveEdit } from '../document/rev-edit.js';
import { stem } from '../document/rev-stem.js';
import { forEachLeaf, mergePath, type RevTree } from '../document/rev-tree.js';
import { findRevision } from '../document/rev-tree-query.js';
import { newRevId, type RevIdAttachment } from '../document/revid.js';
import type { WriteResult } from '../http/backend.js';
import { MAX_KEY_BYTES } from '../storage/btree-node.js';
import { errors, isCouchError } from '../util/couch-error.js';
import type { CommandDocument } from './commands.js';
import { DocInfo, type RecordRef, type StoredLeaf } from './doc-info.js';
import type { LocalDoc } from './side-records.js';

/** The state the document rules read and change, implemented by the apply batch. */
export interface DocumentStore {
  readonly revsLimit: number;
  /** The sequence the next change takes. */
  nextSeq(): number;
  document(id: string): DocInfo | null;
  /** Stores a document's new info at `info.seq`, which must be `nextSeq()`. */
  putDocument(id: string, info: DocInfo): void;
  localDocument(id: string): LocalDoc | null;
  putLocalDocument(id: string, doc: LocalDoc | null): void;
}

/** The records of one document's body and attachments, written on first use. */
export interface DocumentRecords {
  body(): RecordRef;
  attachments(): RecordRef | null;
}

const CONFLICT_REASON = 'Document update conflict.';
/** Ids are tree keys, so none may be longer than a key. */
const ID_LIMITS = { maxIdLength: MAX_KEY_BYTES };

function conflict(id: string): WriteResult {
  return { ok: false, id, error: 'conflict', reason: CONFLICT_REASON };
}

function rejection(id: string, error: unknown): WriteResult {
  if (!isCouchError(error)) throw error;
  return { ok: false, id, error: error.error, reason: error.reason };
}

/**
 * Returns the attachment facts that enter a revision id: name, content type and digest of
 * each member of the `_attachments` object, in order. Missing fields count as empty strings.
 */
export function revIdAttachments(raw: Buffer | null): RevIdAttachment[] {
  if (raw === null) return [];
  const parsed = JSON.parse(raw.toString('utf8')) as Record<string, unknown>;
  const attachments: RevIdAttachment[] = [];
  for (const [name, value] of Object.entries(parsed)) {
    if (value === null || typeof value !== 'object') continue;
    const fields = value as Record<string, unknown>;
    attachments.push({
      name,
      contentType: typeof fields.content_type === 'string' ? fields.content_type : '',
      digest: typeof fields.digest === 'string' ? fields.digest : '',
    });
  }
  return attachments;
}

function newLeaf(doc: CommandDocument, seq: number, records: DocumentRecords): StoredLeaf {
  return { deleted: doc.deleted, seq, body: records.body(), attachments: records.attachments() };
}

/** Stems and stores a changed tree at the next sequence. */
function storeTree(store: DocumentStore, id: string, tree: RevTree<StoredLeaf>, seq: number) {
  store.putDocument(id, DocInfo.fromTree(stem(tree, store.revsLimit), seq));
}

function applyInteractive(
  store: DocumentStore,
  doc: CommandDocument,
  records: DocumentRecords,
): WriteResult {
  const tree = store.document(doc.id)?.tree ?? [];
  const target = resolveInteractiveEdit(tree, doc.revisions, doc.deleted);
  if (target.kind === 'conflict') return conflict(doc.id);
  if (target.parent !== null && !Number.isSafeInteger(target.parent.pos + 1)) {
    // NOTE: CouchDB counts revisions past 2^53; Divan's positions are JavaScript numbers.
    return rejection(doc.id, errors.invalidRev());
  }
  const revId = newRevId({
    deleted: doc.deleted,
    parent: target.parent,
    body: doc.body,
    attachments: revIdAttachments(doc.attachments),
  });
  const seq = store.nextSeq();
  if (tree.length === 0) {
    // A new document: the tree is the one revision, at position 1, and stemming keeps it.
    const node = { id: revId, value: newLeaf(doc, seq, records), children: [] };
    store.putDocument(doc.id, DocInfo.fromTree([{ pos: 1, node }], seq));
    return { ok: true, id: doc.id, rev: formatRev({ pos: 1, id: revId }) };
  }
  const applied = applyInteractiveEdit(tree, target, revId, newLeaf(doc, seq, records));
  if (applied.kind === 'conflict') return conflict(doc.id);
  storeTree(store, doc.id, applied.tree, seq);
  return { ok: true, id: doc.id, rev: formatRev(applied.rev) };
}

/** Returns true when some leaf of `tree` has exactly `value`. */
function holdsLeaf(tree: RevTree<StoredLeaf>, value: StoredLeaf): boolean {
  let found = false;
  forEachLeaf(tree, (_pos, node) => {
    if (node.value === value) found = true;
  });
  return found;
}

function applyReplicated(
  store: DocumentStore,
  doc: CommandDocument,
  records: DocumentRecords,
): WriteResult {
  try {
    requireReplicatedRevisions(doc.revisions, 'normal');
  } catch (error) {
    return rejection(doc.id, error);
  }
  const newest = { pos: doc.revisions.start, id: doc.revisions.ids[0]! };
  const rev = formatRev(newest);
  const tree = store.document(doc.id)?.tree ?? [];
  const seq = store.nextSeq();
  // A revision already in the tree almost never becomes a new leaf, so try the merge with a
  // leaf that has no record yet and write the body only if the merge kept that leaf.
  const known = findRevision(tree, newest) !== null;
  const placeholder: StoredLeaf = {
    deleted: doc.deleted,
    seq,
    body: { pointer: 0, length: 0 },
    attachments: null,
  };
  let merged = mergePath(tree, doc.revisions, known ? placeholder : newLeaf(doc, seq, records));
  if (merged.tree === tree) return { ok: true, id: doc.id, rev };
  if (known && holdsLeaf(merged.tree, placeholder)) {
    merged = mergePath(tree, doc.revisions, newLeaf(doc, seq, records));
  }
  storeTree(store, doc.id, merged.tree, seq);
  return { ok: true, id: doc.id, rev };
}

/** Applies one `_local/` write (a delete when `deleted`). */
export function applyLocal(
  store: DocumentStore,
  id: string,
  revisions: RevPath,
  deleted: boolean,
  body: () => RecordRef,
): WriteResult {
  try {
    validateDocId(id, ID_LIMITS);
  } catch (error) {
    return rejection(id, error);
  }
  if (docKind(id) !== 'local') {
    return rejection(id, errors.badRequest(`${id} is not a _local/ document id.`));
  }
  const counter = nextLocalRevCounter(revisions, deleted);
  if (counter === null) return rejection(id, errors.invalidRev());
  if (deleted) {
    if (store.localDocument(id) === null) return rejection(id, errors.docNotFound('missing'));
    store.putLocalDocument(id, null);
  } else {
    store.putLocalDocument(id, { counter, body: body() });
  }
  return { ok: true, id, rev: formatLocalRev(counter) };
}

const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;

/**
 * Returns true when `bytes` look like the minified JSON object the HTTP layer stores. Only the
 * braces are checked: the layer that built the command scanned the whole body already.
 */
export function looksLikeObject(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === OPEN_BRACE && bytes[bytes.length - 1] === CLOSE_BRACE;
}

/** Checks what a command from the log carries besides the id; the HTTP layer checked it too. */
function checkContent(doc: CommandDocument): void {
  if (!looksLikeObject(doc.body)) throw errors.notAnObject();
  if (doc.attachments !== null) {
    try {
      scanObject(doc.attachments);
    } catch {
      throw errors.badSpecialMember('_attachments');
    }
  }
}

/** Applies one document of a `documents` command and returns its result. */
export function applyDocument(
  store: DocumentStore,
  doc: CommandDocument,
  newEdits: boolean,
  records: DocumentRecords,
): WriteResult {
  try {
    validateDocId(doc.id, ID_LIMITS);
    checkContent(doc);
  } catch (error) {
    return rejection(doc.id, error);
  }
  if (docKind(doc.id) === 'local') {
    return applyLocal(store, doc.id, doc.revisions, doc.deleted, () => records.body());
  }
  return newEdits ? applyInteractive(store, doc, records) : applyReplicated(store, doc, records);
}
