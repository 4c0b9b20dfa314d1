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
 * - Attachments: a stub keeps the attachment of that name (and `revpos`, when the stub gives
 *   one) from the revision the edit extends, pointing at the same records; a replicated edit
 *   takes them from the nearest revision of its history that the tree holds as a leaf. A
 *   stub that finds nothing is `missing_stub` (412). Data attachments point at the records of
 *   the entry's chunk segments, and an interactive edit gives them the new revision's
 *   position as `revpos`, as CouchDB does. The new leaf points at a new attachment table.
 * - Every change stems the tree to `revs_limit`, takes the next update sequence, and moves the
 *   document's by_seq row there.
 * - `_local/` documents have no revision tree. Their revision is `0-N`, N counted up on every
 *   write, and the given revision is not compared with the stored one, as in CouchDB 3.x.
 *   Deleting a missing one is `not_found`.
 *
 * Results are values in request order; a rejected document changes nothing.
 */
import { missingStub, validateAttachmentName } from '../document/attachments.js';
import { docKind, validateDocId } from '../document/doc-id.js';
import { requireReplicatedRevisions } from '../document/document.js';
import {
  formatLocalRev,
  formatRev,
  nextLocalRevCounter,
  type Rev,
  type RevPath,
} from '../document/rev.js';
import { applyInteractiveEdit, resolveInteractiveEdit } from '../document/rev-edit.js';
import { stem } from '../document/rev-stem.js';
import { forEachLeaf, mergePath, type RevTree } from '../document/rev-tree.js';
import { findRevision } from '../document/rev-tree-query.js';
import { newRevId, type RevIdAttachment } from '../document/revid.js';
import type { WriteResult } from '../http/backend.js';
import { MAX_KEY_BYTES } from '../storage/btree-node.js';
import { errors, isCouchError } from '../util/couch-error.js';
import { type AttachmentRecord, digestOf } from './attachment-table.js';
import type { CommandAttachment, CommandDocument } from './commands.js';
import { type AttachmentsRef, DocInfo, type RecordRef, type StoredLeaf } from './doc-info.js';
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
  /** Reads the attachment table a leaf points at. */
  readAttachments(ref: RecordRef): AttachmentRecord[];
  /** Writes an attachment table and returns the reference a leaf keeps. */
  writeAttachments(attachments: readonly AttachmentRecord[]): AttachmentsRef;
}

/** The records of one document's body and attachment bytes, written on first use. */
export interface DocumentRecords {
  body(): RecordRef;
  /** The records of the chunks of the document's attachment at position `index`. */
  chunks(index: number): RecordRef[];
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

/** Returns the attachment facts that enter a revision id: name, content type and digest. */
export function revIdAttachments(attachments: readonly AttachmentRecord[]): RevIdAttachment[] {
  return attachments.map((attachment) => ({
    name: attachment.name,
    contentType: attachment.contentType,
    digest: digestOf(attachment),
  }));
}

/** Attachments resolved for a new revision, or the name of the first stub that found nothing. */
type ResolvedAttachments =
  | { readonly kind: 'ok'; readonly attachments: AttachmentRecord[] }
  | { readonly kind: 'missing'; readonly name: string };

function resolveOne(
  attachment: CommandAttachment,
  index: number,
  stored: readonly AttachmentRecord[],
  revpos: (given: number | null) => number,
  records: DocumentRecords,
): AttachmentRecord | null {
  if (attachment.kind === 'stub') {
    const found = stored.find((candidate) => candidate.name === attachment.name);
    if (found === undefined) return null;
    if (attachment.revpos !== null && attachment.revpos !== found.revpos) return null;
    return found;
  }
  return {
    name: attachment.name,
    contentType: attachment.contentType,
    revpos: revpos(attachment.revpos),
    md5: attachment.digest,
    length: attachment.length,
    encoding: attachment.encoding,
    chunks: records.chunks(index),
  };
}

/**
 * Resolves a document's attachments for its new revision: stubs against `parent` (the leaf
 * the revision extends, or null), data attachments to their chunk records.
 */
function resolveAttachments(
  store: DocumentStore,
  doc: CommandDocument,
  parent: StoredLeaf | null,
  revpos: (given: number | null) => number,
  records: DocumentRecords,
): ResolvedAttachments {
  if (doc.attachments === null || doc.attachments.length === 0) {
    return { kind: 'ok', attachments: [] };
  }
  const stored = parent?.attachments ? store.readAttachments(parent.attachments) : [];
  const attachments: AttachmentRecord[] = [];
  for (let i = 0; i < doc.attachments.length; i++) {
    const attachment = doc.attachments[i]!;
    const resolved = resolveOne(attachment, i, stored, revpos, records);
    if (resolved === null) return { kind: 'missing', name: attachment.name };
    attachments.push(resolved);
  }
  return { kind: 'ok', attachments };
}

function newLeaf(
  store: DocumentStore,
  doc: CommandDocument,
  seq: number,
  records: DocumentRecords,
  attachments: readonly AttachmentRecord[],
): StoredLeaf {
  return {
    deleted: doc.deleted,
    seq,
    body: records.body(),
    attachments: attachments.length === 0 ? null : store.writeAttachments(attachments),
  };
}

function missingStubResult(id: string, name: string): WriteResult {
  const error = missingStub(id, name);
  return { ok: false, id, error: error.error, reason: error.reason };
}

/** The value of leaf `rev` of `tree`, or null when `rev` is not a leaf with a value. */
function leafValue(tree: RevTree<StoredLeaf>, rev: Rev): StoredLeaf | null {
  const node = findRevision(tree, rev);
  return node === null || node.children.length > 0 ? null : node.value;
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
  const newPos = target.parent === null ? 1 : target.parent.pos + 1;
  const parentLeaf = target.parent === null ? null : leafValue(tree, target.parent);
  const resolved = resolveAttachments(store, doc, parentLeaf, () => newPos, records);
  if (resolved.kind === 'missing') return missingStubResult(doc.id, resolved.name);
  const revId = newRevId({
    deleted: doc.deleted,
    parent: target.parent,
    body: doc.body,
    attachments: revIdAttachments(resolved.attachments),
  });
  const seq = store.nextSeq();
  const leaf = newLeaf(store, doc, seq, records, resolved.attachments);
  if (tree.length === 0) {
    // A new document: the tree is the one revision, at position 1, and stemming keeps it.
    const node = { id: revId, value: leaf, children: [] };
    store.putDocument(doc.id, DocInfo.fromTree([{ pos: 1, node }], seq));
    return { ok: true, id: doc.id, rev: formatRev({ pos: 1, id: revId }) };
  }
  const applied = applyInteractiveEdit(tree, target, revId, leaf);
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

/**
 * The leaf a replicated revision's stubs resolve against: the nearest older revision of its
 * history that `tree` holds as a leaf, as CouchDB looks for the first revision on disk.
 */
function historyLeaf(tree: RevTree<StoredLeaf>, history: RevPath): StoredLeaf | null {
  for (let i = 1; i < history.ids.length; i++) {
    const value = leafValue(tree, { pos: history.start - i, id: history.ids[i]! });
    if (value !== null) return value;
  }
  return null;
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
  // Merge with a leaf that has no records yet, and resolve the attachments and write the
  // records only when the merge kept that leaf: a known revision changes nothing, as in
  // CouchDB, where only revisions that become leaves are checked.
  const placeholder: StoredLeaf = {
    deleted: doc.deleted,
    seq,
    body: { pointer: 0, length: 0 },
    attachments: null,
  };
  let merged = mergePath(tree, doc.revisions, placeholder);
  if (merged.tree === tree) return { ok: true, id: doc.id, rev };
  if (holdsLeaf(merged.tree, placeholder)) {
    const parent = historyLeaf(tree, doc.revisions);
    const revpos = (given: number | null) => given ?? newest.pos;
    const resolved = resolveAttachments(store, doc, parent, revpos, records);
    if (resolved.kind === 'missing') return missingStubResult(doc.id, resolved.name);
    merged = mergePath(
      tree,
      doc.revisions,
      newLeaf(store, doc, seq, records, resolved.attachments),
    );
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
  const names = new Set<string>();
  for (const attachment of doc.attachments ?? []) {
    validateAttachmentName(attachment.name);
    if (names.has(attachment.name)) {
      throw errors.badRequest(`Attachment ${attachment.name} is named twice.`);
    }
    names.add(attachment.name);
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
