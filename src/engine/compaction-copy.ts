/**
 * The copying half of compaction: building a database file that contains only what a source
 * state still references, and bringing it up to a newer source state.
 *
 * `copyAll` copies a source state into an empty target, in this order:
 * 1. the retained Raft log, each command's segments as records of their own;
 * 2. every document row in sequence order (`document_copy`): the bodies, attachment tables
 *    and attachment bytes of every leaf, winning and conflicting, into the target's by_seq;
 * 3. every document in id order (`docid_copy`): its revision tree with the leaves pointing at
 *    the records step 2 copied, into the target's by_id, so that tree is built in key order;
 * 4. `_local/` documents, the purge trees, the request-id table and the security object.
 * `copyDelta` brings a target that contains source state A up to a later source state B of the
 * same file: changed document rows (sequences after A's), documents purged entirely, changed
 * `_local/` documents, new purge infos and request records, the log after A's applied index.
 *
 * Records are written once in the target: a record that a log entry and a document share
 * (a body the entry carried) is copied once and both point at the copy, and an attachment
 * that several leaves of one document share is copied once. A leaf the target already contains
 * from an earlier round (same revision, same sequence) keeps its records.
 *
 * Revision trees are copied as they are, not stemmed again, so a compacted replica keeps the
 * same trees as the others.
 *
 * Both functions are generators that yield after each batch of tree changes, so a worker can
 * checkpoint and pause between batches while the main thread can run them to the end at once.
 * They change only the target file and return the target's new state.
 */
import type { Rev } from '../document/rev.js';
import { mapLeaves } from '../document/rev-tree-query.js';
import type { BlockFile } from '../storage/block-file.js';
import type { BTree } from '../storage/btree.js';
import { assert } from '../util/assert.js';
import {
  attachmentSizes,
  decodeAttachmentTable,
  encodeAttachmentTable,
} from './attachment-table.js';
import {
  type AttachmentsRef,
  DocInfo,
  type RecordRef,
  type SeqLeaf,
  type SeqRow,
  type StoredLeaf,
} from './doc-info.js';
import type { HeaderFields } from './header.js';
import { pruneRequests } from './request-table.js';
import type { LocalDoc, PurgeInfo, RequestRecord } from './side-records.js';
import type { StoredEntry } from './stored-entry.js';
import type { EngineTrees } from './trees.js';

/** Tree entries written per modify. */
export const COPY_BATCH_ENTRIES = 512;

export type CopyPhase = 'log' | 'document_copy' | 'docid_copy' | 'local_copy' | 'catch_up';

/** One state of a database file: its header fields and the trees at its roots. */
export interface FileState {
  readonly file: BlockFile;
  readonly fields: HeaderFields;
  readonly trees: EngineTrees;
}

export interface CopyObserver {
  /** A phase starts with `total` units of work (documents, entries). */
  phase(name: CopyPhase, total: number): void;
  /** `count` more units of the phase are done. */
  advance(count: number): void;
}

const SILENT: CopyObserver = { phase: () => undefined, advance: () => undefined };

/** Copies records from a source file to a target file, each shared record once. */
class RecordCopier {
  /** Records of the log entries copied so far: source pointer to target record. */
  readonly #shared = new Map<number, RecordRef>();

  constructor(
    private readonly source: BlockFile,
    private readonly target: BlockFile,
  ) {}

  /** Copies a record unless it was copied already (`local` contains one document's copies). */
  copy(ref: RecordRef, local?: Map<number, RecordRef>): RecordRef {
    const known = this.#shared.get(ref.pointer) ?? local?.get(ref.pointer);
    if (known !== undefined) {
      assert(known.length === ref.length, 'a shared record keeps its length');
      return known;
    }
    const bytes = this.source.read(ref.pointer, ref.length);
    assert(bytes.length === ref.length, 'a record has the length its reference names');
    const copied = { pointer: this.target.append(bytes), length: ref.length };
    local?.set(ref.pointer, copied);
    return copied;
  }

  /** Copies a record that log entries and documents may share. */
  copyShared(ref: RecordRef): RecordRef {
    const copied = this.copy(ref);
    this.#shared.set(ref.pointer, copied);
    return copied;
  }

  copyAttachments(ref: AttachmentsRef, local: Map<number, RecordRef>): AttachmentsRef {
    const attachments = decodeAttachmentTable(this.source.read(ref.pointer, ref.length)).map(
      (attachment) => ({
        ...attachment,
        chunks: attachment.chunks.map((chunk) => this.copy(chunk, local)),
      }),
    );
    const table = encodeAttachmentTable(attachments);
    const pointer = this.target.append(table);
    return { pointer, length: table.length, ...attachmentSizes(attachments) };
  }
}

/** Reads a tree in batches of `size` entries, from `start` on. */
function* batches<K, V, R>(
  tree: BTree<K, V, R>,
  size: number,
  start?: K,
): Generator<Array<[K, V]>, void, undefined> {
  let resumeAfter: K | undefined;
  let from = start;
  const found: Array<[K, V]> = [];
  for (;;) {
    found.length = 0;
    tree.fold(
      (key, value) => {
        if (resumeAfter !== undefined && key === resumeAfter) return true;
        found.push([key, value]);
        return found.length < size;
      },
      { start: from },
    );
    if (found.length === 0) return;
    yield found.slice();
    if (found.length < size) return;
    resumeAfter = found[found.length - 1]![0];
    from = resumeAfter;
  }
}

function revKey(rev: Rev): string {
  return `${rev.pos}-${rev.id}`;
}

/** Finds the leaf of `rev` with sequence `seq` in a row, or undefined. */
function rowLeaf(row: SeqRow | null | undefined, rev: Rev, seq: number): StoredLeaf | undefined {
  if (row === null || row === undefined) return undefined;
  const key = revKey(rev);
  return row.leaves.find((entry) => revKey(entry.rev) === key && entry.leaf.seq === seq)?.leaf;
}

/** Copies what a document's row needs; leaves the target already contains keep their records. */
function copyRow(copier: RecordCopier, row: SeqRow, existing: SeqRow | null): SeqRow {
  const local = new Map<number, RecordRef>();
  const leaves: SeqLeaf[] = row.leaves.map(({ rev, leaf }) => {
    const kept = rowLeaf(existing, rev, leaf.seq);
    if (kept !== undefined) return { rev, leaf: { ...kept, deleted: leaf.deleted } };
    const body = copier.copy(leaf.body, local);
    const attachments =
      leaf.attachments === null ? null : copier.copyAttachments(leaf.attachments, local);
    return { rev, leaf: { deleted: leaf.deleted, seq: leaf.seq, body, attachments } };
  });
  return { id: row.id, deleted: row.deleted, leaves };
}

/** The source document's info with its leaves replaced by the copied row's. */
function rebuildInfo(info: DocInfo, copied: SeqRow): DocInfo {
  const tree = mapLeaves(info.tree, (rev, leaf) => {
    const found = rowLeaf(copied, rev, leaf.seq);
    assert(found !== undefined, () => `copied row of ${copied.id} lacks leaf ${revKey(rev)}`);
    return found;
  });
  return DocInfo.fromTree(tree, info.seq);
}

/** Copies a stored log entry, its segments as shared records. */
function copyEntry(copier: RecordCopier, entry: StoredEntry): StoredEntry {
  const payload = entry.payload;
  if (payload.form === 'raw') return entry;
  const segments = payload.segments.map((segment) => copier.copyShared(segment));
  return { term: entry.term, type: entry.type, payload: { ...payload, segments } };
}

function copyLocal(copier: RecordCopier, doc: LocalDoc): LocalDoc {
  return { counter: doc.counter, body: copier.copyShared(doc.body) };
}

/** A target under construction: its file, trees and header fields. */
interface Target {
  readonly file: BlockFile;
  trees: EngineTrees;
  fields: HeaderFields;
}

/** What every step of one copy shares. */
interface CopyContext {
  readonly copier: RecordCopier;
  readonly observer: CopyObserver;
  readonly batchEntries: number;
}

function* copyLog(context: CopyContext, source: FileState, target: Target, from: number) {
  const log = source.trees.log;
  const last = log.count === 0 ? 0 : log.fullReduce().last.index;
  context.observer.phase('log', Math.max(0, last - from + 1));
  for (const batch of batches(log, context.batchEntries, from)) {
    const inserts = batch.map(
      ([index, entry]) => [index, copyEntry(context.copier, entry)] as const,
    );
    target.trees = { ...target.trees, log: target.trees.log.modify({ insert: inserts }) };
    context.observer.advance(batch.length);
    yield;
  }
}

function* copyRowsBySeq(
  context: CopyContext,
  source: FileState,
  target: Target,
  afterSeq: number,
  catchUp: boolean,
) {
  const { copier, observer } = context;
  const bySeq = source.trees.bySeq;
  observer.phase(
    catchUp ? 'catch_up' : 'document_copy',
    bySeq.reduceRange({ start: afterSeq + 1 }),
  );
  for (const batch of batches(bySeq, context.batchEntries, afterSeq + 1)) {
    const ids = batch.map(([, row]) => row.id);
    const existing = catchUp ? target.trees.byId.lookup(ids) : [];
    const existingRows = catchUp
      ? target.trees.bySeq.lookup(existing.map((info) => info?.seq ?? 0))
      : [];
    const inserts: Array<[number, SeqRow]> = [];
    const removals: number[] = [];
    batch.forEach(([seq, row], i) => {
      const previous = existing[i];
      if (previous !== undefined && previous.seq !== seq) removals.push(previous.seq);
      inserts.push([seq, copyRow(copier, row, existingRows[i] ?? null)]);
    });
    let trees = {
      ...target.trees,
      bySeq: target.trees.bySeq.modify({ remove: removals, insert: inserts }),
    };
    if (catchUp) {
      // A catch-up changes documents the target contains, so by_id follows in the same batch.
      const infos = source.trees.byId.lookup(ids);
      const byIdInserts = inserts.map(([, copied], i) => {
        const info = infos[i];
        assert(info !== undefined, () => `document ${copied.id} has a row but no info`);
        return [copied.id, rebuildInfo(info, copied)] as const;
      });
      trees = { ...trees, byId: trees.byId.modify({ insert: byIdInserts }) };
    }
    target.trees = trees;
    observer.advance(batch.length);
    yield;
  }
}

function* copyInfosById(context: CopyContext, source: FileState, target: Target) {
  const { observer } = context;
  const byId = source.trees.byId;
  observer.phase('docid_copy', byId.count);
  for (const batch of batches(byId, context.batchEntries)) {
    const rows = target.trees.bySeq.lookup(batch.map(([, info]) => info.seq));
    const inserts = batch.map(([id, info], i) => {
      const copied = rows[i];
      assert(copied !== undefined, () => `document ${id} was not copied at ${info.seq}`);
      return [id, rebuildInfo(info, copied)] as const;
    });
    target.trees = { ...target.trees, byId: target.trees.byId.modify({ insert: inserts }) };
    observer.advance(batch.length);
    yield;
  }
}

/** Copies a tree whose values point at no records (purge infos, request records). */
function* copyPlain<K, V, R>(
  context: CopyContext,
  tree: BTree<K, V, R>,
  write: (inserts: Array<[K, V]>) => void,
) {
  for (const batch of batches(tree, context.batchEntries)) {
    write(batch);
    yield;
  }
}

function copySecurity(copier: RecordCopier, security: RecordRef | null): RecordRef | null {
  return security === null ? null : copier.copyShared(security);
}

/** Copies `source` into an empty `target`; returns the target's trees and header fields. */
export function* copyAll(
  source: FileState,
  target: { file: BlockFile; trees: EngineTrees },
  observer: CopyObserver = SILENT,
  batchEntries = COPY_BATCH_ENTRIES,
): Generator<void, { trees: EngineTrees; fields: HeaderFields }, undefined> {
  const copier = new RecordCopier(source.file, target.file);
  const context: CopyContext = { copier, observer, batchEntries };
  const state: Target = { file: target.file, trees: target.trees, fields: source.fields };
  yield* copyLog(context, source, state, source.fields.discarded.index + 1);
  yield* copyRowsBySeq(context, source, state, 0, false);
  yield* copyInfosById(context, source, state);
  observer.phase('local_copy', source.trees.local.count);
  for (const batch of batches(source.trees.local, batchEntries)) {
    const inserts = batch.map(([id, doc]) => [id, copyLocal(copier, doc)] as const);
    state.trees = { ...state.trees, local: state.trees.local.modify({ insert: inserts }) };
    observer.advance(batch.length);
    yield;
  }
  yield* copyPlain(context, source.trees.purgeSeq, (inserts) => {
    state.trees = { ...state.trees, purgeSeq: state.trees.purgeSeq.modify({ insert: inserts }) };
  });
  yield* copyPlain(context, source.trees.purge, (inserts) => {
    state.trees = { ...state.trees, purge: state.trees.purge.modify({ insert: inserts }) };
  });
  yield* copyPlain(context, source.trees.requests, (inserts) => {
    state.trees = { ...state.trees, requests: state.trees.requests.modify({ insert: inserts }) };
  });
  yield* copyPlain(context, source.trees.requestIndex, (inserts) => {
    const requestIndex = state.trees.requestIndex.modify({ insert: inserts });
    state.trees = { ...state.trees, requestIndex };
  });
  const fields: HeaderFields = {
    ...source.fields,
    security: copySecurity(copier, source.fields.security),
    compactedSeq: source.fields.updateSeq,
  };
  return { trees: state.trees, fields };
}

/** Removes the log entries the target contains that `to` no longer has or may have replaced. */
function syncLogBounds(target: Target, from: HeaderFields, to: HeaderFields): void {
  const removals: number[] = [];
  const keepFrom = to.discarded.index + 1;
  const keepTo = from.applied.index;
  target.trees.log.fold((index) => {
    if (index < keepFrom || index > keepTo) removals.push(index);
  });
  if (removals.length > 0) {
    target.trees = { ...target.trees, log: target.trees.log.modify({ remove: removals }) };
  }
}

/** Removes from the target the documents that `to` purged entirely. */
function* removePurged(context: CopyContext, from: FileState, to: FileState, target: Target) {
  if (to.fields.purgeSeq === from.fields.purgeSeq) return;
  const candidates = new Set<string>();
  const firstKept =
    to.trees.purgeSeq.count === 0 ? Number.POSITIVE_INFINITY : firstKey(to.trees.purgeSeq);
  if (firstKept <= from.fields.purgeSeq + 1) {
    to.trees.purgeSeq.fold(
      (_seq, info) => {
        candidates.add(info.docId);
      },
      { start: from.fields.purgeSeq + 1 },
    );
  } else {
    // Some purge infos of the delta were already dropped (purged_infos_limit): look at every
    // document the target contains.
    for (const batch of batches(target.trees.byId, context.batchEntries)) {
      for (const [id] of batch) candidates.add(id);
      yield;
    }
  }
  const ids = [...candidates];
  const sourceInfos = to.trees.byId.lookup(ids);
  const targetInfos = target.trees.byId.lookup(ids);
  const removedIds: string[] = [];
  const removedSeqs: number[] = [];
  ids.forEach((id, i) => {
    const held = targetInfos[i];
    if (sourceInfos[i] !== undefined || held === undefined) return;
    removedIds.push(id);
    removedSeqs.push(held.seq);
  });
  if (removedIds.length === 0) return;
  target.trees = {
    ...target.trees,
    byId: target.trees.byId.modify({ remove: removedIds }),
    bySeq: target.trees.bySeq.modify({ remove: removedSeqs }),
  };
  yield;
}

function firstKey<V, R>(tree: BTree<number, V, R>): number {
  let first = 0;
  tree.fold((key) => {
    first = key;
    return false;
  });
  return first;
}

function sameLocal(a: LocalDoc | undefined, b: LocalDoc): boolean {
  return a !== undefined && a.counter === b.counter && a.body.pointer === b.body.pointer;
}

function* syncLocals(context: CopyContext, from: FileState, to: FileState, target: Target) {
  const { copier } = context;
  for (const batch of batches(to.trees.local, context.batchEntries)) {
    const before = from.trees.local.lookup(batch.map(([id]) => id));
    const inserts = batch
      .filter(([, doc], i) => !sameLocal(before[i], doc))
      .map(([id, doc]) => [id, copyLocal(copier, doc)] as const);
    if (inserts.length > 0) {
      target.trees = { ...target.trees, local: target.trees.local.modify({ insert: inserts }) };
    }
    yield;
  }
  for (const batch of batches(from.trees.local, context.batchEntries)) {
    const after = to.trees.local.lookup(batch.map(([id]) => id));
    const removals = batch.filter((_entry, i) => after[i] === undefined).map(([id]) => id);
    if (removals.length > 0) {
      target.trees = { ...target.trees, local: target.trees.local.modify({ remove: removals }) };
    }
    yield;
  }
}

function syncPurgeInfos(from: FileState, to: FileState, target: Target): void {
  const added: Array<[number, PurgeInfo]> = [];
  to.trees.purgeSeq.fold(
    (seq, info) => {
      added.push([seq, info]);
    },
    { start: from.fields.purgeSeq + 1 },
  );
  const firstKept =
    to.trees.purgeSeq.count === 0 ? Number.POSITIVE_INFINITY : firstKey(to.trees.purgeSeq);
  const dropped: PurgeInfo[] = [];
  target.trees.purgeSeq.fold(
    (_seq, info) => {
      dropped.push(info);
    },
    { end: firstKept, endInclusive: false },
  );
  if (added.length === 0 && dropped.length === 0) return;
  const droppedUuids = dropped.map((info) => info.uuid);
  const held = target.trees.purge.lookup(droppedUuids);
  const removedUuids = droppedUuids.filter(
    (_uuid, i) => held[i]?.purgeSeq === dropped[i]!.purgeSeq,
  );
  target.trees = {
    ...target.trees,
    purgeSeq: target.trees.purgeSeq.modify({
      remove: dropped.map((info) => info.purgeSeq),
      insert: added,
    }),
    purge: target.trees.purge
      .modify({ remove: removedUuids })
      .modify({ insert: added.map(([, info]) => [info.uuid, info]) }),
  };
}

function syncRequests(from: FileState, to: FileState, target: Target): void {
  const indexInserts: Array<[number, string]> = [];
  to.trees.requestIndex.fold(
    (index, requestId) => {
      indexInserts.push([index, requestId]);
    },
    { start: from.fields.applied.index + 1 },
  );
  if (indexInserts.length > 0) {
    const records = to.trees.requests.lookup(indexInserts.map(([, requestId]) => requestId));
    const requestInserts: Array<[string, RequestRecord]> = [];
    indexInserts.forEach(([index, requestId], i) => {
      const record = records[i];
      if (record !== undefined && record.index === index) requestInserts.push([requestId, record]);
    });
    target.trees = {
      ...target.trees,
      requestIndex: target.trees.requestIndex.modify({ insert: indexInserts }),
      requests: target.trees.requests.modify({ insert: requestInserts }),
    };
  }
  target.trees = pruneRequests(target.trees, to.fields);
}

/**
 * Brings `target`, which contains source state `from`, up to the later source state `to` of the
 * same file (the same file object or two handles on it). Returns the target's new trees and
 * header fields.
 */
export function* copyDelta(
  from: FileState,
  to: FileState,
  target: { file: BlockFile; trees: EngineTrees; fields: HeaderFields },
  observer: CopyObserver = SILENT,
  batchEntries = COPY_BATCH_ENTRIES,
): Generator<void, { trees: EngineTrees; fields: HeaderFields }, undefined> {
  assert(to.fields.uuid === from.fields.uuid, 'a catch-up copies states of one database');
  assert(to.fields.applied.index >= from.fields.applied.index, 'a catch-up never goes back');
  const copier = new RecordCopier(to.file, target.file);
  const context: CopyContext = { copier, observer, batchEntries };
  const state: Target = { file: target.file, trees: target.trees, fields: target.fields };
  syncLogBounds(state, from.fields, to.fields);
  const logFrom = Math.max(from.fields.applied.index, to.fields.discarded.index) + 1;
  yield* copyLog(context, to, state, logFrom);
  yield* copyRowsBySeq(context, to, state, from.fields.updateSeq, true);
  yield* removePurged(context, from, to, state);
  yield* syncLocals(context, from, to, state);
  syncPurgeInfos(from, to, state);
  syncRequests(from, to, state);
  const security =
    to.fields.security?.pointer === from.fields.security?.pointer
      ? state.fields.security
      : copySecurity(copier, to.fields.security);
  const fields: HeaderFields = { ...to.fields, security, compactedSeq: to.fields.updateSeq };
  return { trees: state.trees, fields };
}

/** Runs a copy generator to its end. */
export function runToEnd<T>(copy: Generator<void, T, undefined>): T {
  for (;;) {
    const step = copy.next();
    if (step.done === true) return step.value;
  }
}
