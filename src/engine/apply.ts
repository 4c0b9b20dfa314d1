/**
 * Applying committed entries: one `ApplyBatch` per commit turns a run of entries into tree
 * changes, outcomes and the new hash chain, then `finish` writes every tree once.
 *
 * Determinism: an entry's outcome and the state it leaves depend only on the state before it
 * and its own bytes, never on how entries are grouped into commits. So sequences are taken
 * per changed document and revisions are stemmed per write. A retried request id gets its
 * first outcome back while the entry that recorded it is at most `requestRetention` entries
 * older, whenever the table is physically pruned. With a retention of 0 nothing is recorded.
 *
 * The batch reads through an overlay of what earlier entries of the same batch changed. It
 * looks up every document, `_local/` document and request id of the batch in one pass per
 * tree (`prefetch`) before applying.
 *
 * Bodies and attachment bytes: an entry appended to the log already has a record per segment
 * (stored-entry.ts) and its leaves point there. A command applied without a log entry
 * (standalone use) writes a segment's record the first time a leaf or the header needs it.
 * Attachment tables are written when the leaf that points at them is made.
 *
 * Purges (purge.ts) change documents without an edit, record the request in the purge trees
 * and keep those trees to `purged_infos_limit`. A `compact` command changes nothing stored; it
 * sets `compactRequested`, and the file starts compacting once the batch is staged.
 */

import { scanObject } from '../document/json.js';
import { formatRev } from '../document/rev.js';
import type { PurgeResult, WriteResult } from '../http/backend.js';
import type { BlockFile } from '../storage/block-file.js';
import { MAX_KEY_BYTES } from '../storage/btree-node.js';
import { assert, InvariantError } from '../util/assert.js';
import { errors } from '../util/couch-error.js';
import {
  applyDocument,
  applyLocal,
  type DocumentRecords,
  type DocumentStore,
  looksLikeObject,
} from './apply-documents.js';
import {
  type AttachmentRecord,
  attachmentSizes,
  decodeAttachmentTable,
  encodeAttachmentTable,
} from './attachment-table.js';
import {
  type Command,
  commandSegments,
  type DocumentsCommand,
  type PurgeCommand,
} from './commands.js';
import { type AttachmentsRef, DocInfo, type RecordRef, type SeqRow, seqRowOf } from './doc-info.js';
import type { HeaderFields } from './header.js';
import {
  type AppliedEntry,
  decodeOutcome,
  type EntryOutcome,
  encodeOutcome,
  extendHashChain,
  NONE_OUTCOME,
  OK_OUTCOME,
} from './outcome.js';
import { parsePurgeRevs, relabelLeaves, removeLeaves } from './purge.js';
import type { LocalDoc, PurgeInfo, RequestRecord } from './side-records.js';
import type { LogPosition } from './stored-entry.js';
import type { EngineTrees } from './trees.js';

/** UTF-8 bytes a UTF-16 code unit can take, to skip measuring most strings. */
const MAX_UTF8_BYTES_PER_UNIT = 3;

/** A log entry ready to apply. */
export interface PreparedEntry {
  /** The decoded command, or null for an empty, configuration or malformed payload. */
  readonly command: Command | null;
  /** The reason a non-empty normal payload is not a command; null otherwise. */
  readonly formatError: string | null;
  /** Records of the command's segments in payload order; null when not written yet. */
  readonly segmentRefs: readonly RecordRef[] | null;
}

/** The state an apply batch starts from. */
export interface ApplyBase {
  readonly file: BlockFile;
  readonly trees: EngineTrees;
  readonly fields: HeaderFields;
}

/** The records of a command's segments, from the log entry or written on first use. */
class SegmentRecords {
  readonly #written: Array<RecordRef | undefined>;

  constructor(
    private readonly file: BlockFile,
    private readonly segments: readonly Buffer[],
    private readonly stored: readonly RecordRef[] | null,
  ) {
    assert(
      stored === null || stored.length === segments.length,
      'a stored entry has a record per segment',
    );
    this.#written = new Array(segments.length);
  }

  ref(index: number): RecordRef {
    if (this.stored !== null) return this.stored[index]!;
    let ref = this.#written[index];
    if (ref === undefined) {
      const segment = this.segments[index]!;
      ref = { pointer: this.file.append(segment), length: segment.length };
      this.#written[index] = ref;
    }
    return ref;
  }
}

export class ApplyBatch implements DocumentStore {
  readonly #base: ApplyBase;
  #updateSeq: number;
  #revsLimit: number;
  #security: RecordRef | null;
  #hashChain: Buffer;
  #applied: LogPosition;
  #purgeSeq: number;
  #purgedInfosLimit: number;
  /** Purge infos added by the batch, by purge sequence. */
  readonly #purgeInserts = new Map<number, PurgeInfo>();
  /** True once a `compact` command was applied. */
  #compactRequested = false;
  /** Documents as the batch reads them: from the tree, or as the batch changed them. */
  readonly #docs = new Map<string, DocInfo | null>();
  readonly #changedDocs = new Set<string>();
  readonly #seqRemovals = new Set<number>();
  readonly #seqInserts = new Map<number, SeqRow>();
  readonly #locals = new Map<string, LocalDoc | null>();
  readonly #changedLocals = new Set<string>();
  /** Request records as read from the tree; null when absent. */
  readonly #storedRequests = new Map<string, RequestRecord | null>();
  readonly #newRequests = new Map<string, RequestRecord>();
  readonly #requestIndex = new Map<number, string>();

  constructor(base: ApplyBase) {
    this.#base = base;
    this.#updateSeq = base.fields.updateSeq;
    this.#revsLimit = base.fields.revsLimit;
    this.#security = base.fields.security;
    this.#hashChain = base.fields.hashChain;
    this.#applied = base.fields.applied;
    this.#purgeSeq = base.fields.purgeSeq;
    this.#purgedInfosLimit = base.fields.purgedInfosLimit;
  }

  get revsLimit(): number {
    return this.#revsLimit;
  }

  /** True when an applied `compact` command asks the file to compact. */
  get compactRequested(): boolean {
    return this.#compactRequested;
  }

  get applied(): LogPosition {
    return this.#applied;
  }

  /** The update sequence after the entries applied so far. */
  get updateSeq(): number {
    return this.#updateSeq;
  }

  /** The outcome hash chain after the entries applied so far. */
  get hashChain(): Buffer {
    return this.#hashChain;
  }

  /**
   * Looks up everything the entries will read, one pass per tree. A batch that stays open over
   * several calls (a held apply) keeps what it changed, so keys it already has are not looked
   * up again.
   */
  prefetch(entries: readonly PreparedEntry[]): void {
    const docIds = new Set<string>();
    const localIds = new Set<string>();
    const requestIds = new Set<string>();
    for (const { command } of entries) {
      if (command === null) continue;
      if (this.#base.fields.requestRetention > 0) requestIds.add(command.requestId);
      if (command.kind === 'local_put' || command.kind === 'local_delete') {
        localIds.add(command.id);
      } else if (command.kind === 'documents') {
        for (const doc of command.docs) {
          (doc.id.startsWith('_local/') ? localIds : docIds).add(doc.id);
        }
      } else if (command.kind === 'purge') {
        for (const doc of command.docs) docIds.add(doc.id);
      }
    }
    // Ids longer than a tree key are rejected when applied, so they must not reach the trees.
    // Ids the batch already has keep their value, which may be its own change.
    const known: ReadonlyArray<ReadonlyMap<string, unknown>> = [
      this.#docs,
      this.#locals,
      this.#storedRequests,
    ];
    [docIds, localIds, requestIds].forEach((ids, tree) => {
      for (const id of ids) {
        if (!fitsKey(id) || known[tree]!.has(id)) ids.delete(id);
      }
    });
    const trees = this.#base.trees;
    prefetchInto(trees.byId.lookup([...docIds]), docIds, this.#docs);
    prefetchInto(trees.local.lookup([...localIds]), localIds, this.#locals);
    prefetchInto(trees.requests.lookup([...requestIds]), requestIds, this.#storedRequests);
  }

  /** Applies the entry at `position`, which must follow the last applied one. */
  apply(position: LogPosition, entry: PreparedEntry): AppliedEntry {
    assert(
      position.index === this.#applied.index + 1,
      () => `apply of ${position.index} after ${this.#applied.index}`,
    );
    const command = entry.command;
    let outcome: EntryOutcome;
    let encoded: Buffer;
    let duplicate = false;
    if (command === null) {
      outcome =
        entry.formatError === null
          ? NONE_OUTCOME
          : {
              kind: 'error',
              error: 'bad_request',
              reason: `invalid command: ${entry.formatError}`,
            };
      encoded = encodeOutcome(outcome);
    } else {
      const recorded = this.#base.fields.requestRetention > 0 && fitsKey(command.requestId);
      const previous = recorded ? this.#request(command.requestId, position.index) : null;
      if (previous !== null) {
        duplicate = true;
        encoded = previous.outcome;
        outcome = decodeOutcome(encoded);
      } else {
        const segments = new SegmentRecords(
          this.#base.file,
          commandSegments(command),
          entry.segmentRefs,
        );
        outcome = this.#applyCommand(command, segments);
        encoded = encodeOutcome(outcome);
        if (recorded) {
          this.#newRequests.set(command.requestId, { index: position.index, outcome: encoded });
          this.#requestIndex.set(position.index, command.requestId);
        }
      }
    }
    this.#hashChain = extendHashChain(this.#hashChain, position.index, encoded);
    this.#applied = position;
    const requestId = command?.requestId ?? null;
    return { index: position.index, term: position.term, requestId, duplicate, outcome };
  }

  /** Returns the record of `requestId` if a retry at `index` still gets its outcome. */
  #request(requestId: string, index: number): RequestRecord | null {
    let record = this.#newRequests.get(requestId) ?? this.#storedRequests.get(requestId);
    if (record === undefined) {
      record = this.#base.trees.requests.get(requestId) ?? null;
      this.#storedRequests.set(requestId, record);
    }
    if (record === null) return null;
    return index - record.index <= this.#base.fields.requestRetention ? record : null;
  }

  #applyCommand(command: Command, segments: SegmentRecords): EntryOutcome {
    switch (command.kind) {
      case 'documents':
        return { kind: 'documents', results: this.#applyDocuments(command, segments) };
      case 'local_put':
        if (!looksLikeObject(command.body)) {
          const error = errors.notAnObject();
          return { kind: 'local', result: { ok: false, id: command.id, ...error.toJSON() } };
        }
        return {
          kind: 'local',
          result: applyLocal(this, command.id, command.revisions, false, () => segments.ref(0)),
        };
      case 'local_delete':
        return {
          kind: 'local',
          result: applyLocal(this, command.id, command.revisions, true, () => segments.ref(0)),
        };
      case 'revs_limit':
        if (!Number.isSafeInteger(command.limit) || command.limit < 1) {
          return { kind: 'error', error: 'bad_request', reason: 'revs_limit must be positive' };
        }
        this.#revsLimit = command.limit;
        this.#updateSeq += 1;
        return OK_OUTCOME;
      case 'security':
        return this.#applySecurity(command.security, segments);
      case 'noop':
        return OK_OUTCOME;
      case 'purge':
        return { kind: 'purge', results: this.#applyPurge(command) };
      case 'purged_infos_limit':
        if (!Number.isSafeInteger(command.limit) || command.limit < 1) {
          return {
            kind: 'error',
            error: 'bad_request',
            reason: '`purged_infos_limit` must be positive integer',
          };
        }
        this.#purgedInfosLimit = command.limit;
        this.#updateSeq += 1;
        return OK_OUTCOME;
      case 'compact':
        this.#compactRequested = true;
        return OK_OUTCOME;
    }
  }

  #applyDocuments(command: DocumentsCommand, segments: SegmentRecords) {
    let next = 0;
    return command.docs.map((doc) => {
      const bodyIndex = next;
      next += 1;
      const chunkStarts: number[] = [];
      const chunkCounts: number[] = [];
      for (const attachment of doc.attachments ?? []) {
        const count = attachment.kind === 'data' ? attachment.chunks.length : 0;
        chunkStarts.push(next);
        chunkCounts.push(count);
        next += count;
      }
      const records: DocumentRecords = {
        body: () => segments.ref(bodyIndex),
        chunks: (index) => {
          const refs: RecordRef[] = [];
          for (let i = 0; i < chunkCounts[index]!; i++)
            refs.push(segments.ref(chunkStarts[index]! + i));
          return refs;
        },
      };
      return this.#applyContained(doc.id, () =>
        applyDocument(this, doc, command.newEdits, records),
      );
    });
  }

  /**
   * Applies a purge (purge.ts): each request in order, then at least one update sequence, then
   * the purge trees' limit.
   */
  #applyPurge(command: PurgeCommand): PurgeResult[] {
    const startSeq = this.#updateSeq;
    const results = command.docs.map((item) => {
      const purged = fitsKey(item.id)
        ? this.#purgeDocument(item.id, parsePurgeRevs(item.revs))
        : [];
      this.#purgeSeq += 1;
      this.#purgeInserts.set(this.#purgeSeq, {
        purgeSeq: this.#purgeSeq,
        uuid: item.uuid,
        docId: item.id,
        revs: parsePurgeRevs(item.revs),
      });
      return { id: item.id, purged: purged.map(formatRev) };
    });
    if (this.#updateSeq === startSeq) this.#updateSeq += 1;
    return results;
  }

  /** Removes the leaves `revs` of document `id`; returns the revisions removed. */
  #purgeDocument(id: string, revs: ReturnType<typeof parsePurgeRevs>) {
    const info = this.document(id);
    if (info === null) return [];
    const { tree, removed } = removeLeaves(info.tree, revs);
    if (removed.length === 0) return removed;
    if (!this.#seqInserts.delete(info.seq)) this.#seqRemovals.add(info.seq);
    this.#changedDocs.add(id);
    if (tree.length === 0) {
      this.#docs.set(id, null);
      return removed;
    }
    const relabelled = relabelLeaves(tree, this.#updateSeq);
    const purgedInfo = DocInfo.fromTree(relabelled.tree, relabelled.lastSeq);
    this.#updateSeq = relabelled.lastSeq;
    this.#docs.set(id, purgedInfo);
    this.#seqInserts.set(purgedInfo.seq, seqRowOf(id, purgedInfo));
    return removed;
  }

  /**
   * Runs one document's rules, turning a broken invariant into an error result for that
   * document. An entry that failed every replica's apply would stop the whole group on every
   * restart; the invariant's message is deterministic, so replicas still agree.
   */
  #applyContained(id: string, apply: () => WriteResult): WriteResult {
    const seq = this.#updateSeq;
    try {
      return apply();
    } catch (error) {
      if (!(error instanceof InvariantError)) throw error;
      assert(this.#updateSeq === seq, 'a failed document changed nothing');
      return { ok: false, id, error: 'unknown_error', reason: `internal error: ${error.message}` };
    }
  }

  #applySecurity(security: Buffer, segments: SegmentRecords): EntryOutcome {
    try {
      scanObject(security);
    } catch {
      const error = errors.badRequest('The security object must be a JSON object.');
      return { kind: 'error', error: error.error, reason: error.reason };
    }
    this.#security = segments.ref(0);
    this.#updateSeq += 1;
    return OK_OUTCOME;
  }

  // ---- DocumentStore

  nextSeq(): number {
    return this.#updateSeq + 1;
  }

  document(id: string): DocInfo | null {
    let info = this.#docs.get(id);
    if (info === undefined) {
      info = this.#base.trees.byId.get(id) ?? null;
      this.#docs.set(id, info);
    }
    return info;
  }

  putDocument(id: string, info: DocInfo): void {
    assert(info.seq === this.#updateSeq + 1, 'a changed document takes the next sequence');
    const previous = this.document(id);
    if (previous !== null) {
      if (!this.#seqInserts.delete(previous.seq)) this.#seqRemovals.add(previous.seq);
    }
    this.#seqInserts.set(info.seq, seqRowOf(id, info));
    this.#docs.set(id, info);
    this.#changedDocs.add(id);
    this.#updateSeq = info.seq;
  }

  localDocument(id: string): LocalDoc | null {
    let doc = this.#locals.get(id);
    if (doc === undefined) {
      doc = this.#base.trees.local.get(id) ?? null;
      this.#locals.set(id, doc);
    }
    return doc;
  }

  putLocalDocument(id: string, doc: LocalDoc | null): void {
    this.#locals.set(id, doc);
    this.#changedLocals.add(id);
  }

  readAttachments(ref: RecordRef): AttachmentRecord[] {
    return decodeAttachmentTable(this.#base.file.read(ref.pointer, ref.length));
  }

  writeAttachments(attachments: readonly AttachmentRecord[]): AttachmentsRef {
    const table = encodeAttachmentTable(attachments);
    const pointer = this.#base.file.append(table);
    return { pointer, length: table.length, ...attachmentSizes(attachments) };
  }

  // ---- finish

  /** Writes the batch's changes into the trees and returns the new trees and header fields. */
  finish(): { trees: EngineTrees; fields: HeaderFields } {
    const base = this.#base.trees;
    const changedDocs: Array<[string, DocInfo]> = [];
    const removedDocs: string[] = [];
    for (const id of this.#changedDocs) {
      const info = this.#docs.get(id)!;
      if (info === null) removedDocs.push(id);
      else changedDocs.push([id, info]);
    }
    const localInserts: Array<[string, LocalDoc]> = [];
    const localRemovals: string[] = [];
    for (const id of this.#changedLocals) {
      const doc = this.#locals.get(id)!;
      if (doc === null) localRemovals.push(id);
      else localInserts.push([id, doc]);
    }
    const trees: EngineTrees = {
      ...base,
      byId: base.byId.modify({ insert: changedDocs, remove: removedDocs }),
      bySeq: base.bySeq.modify({ remove: this.#seqRemovals, insert: this.#seqInserts }),
      local: base.local.modify({ insert: localInserts, remove: localRemovals }),
      requests: base.requests.modify({ insert: this.#newRequests }),
      requestIndex: base.requestIndex.modify({ insert: this.#requestIndex }),
      ...this.#purgeTrees(base),
    };
    const fields: HeaderFields = {
      ...this.#base.fields,
      updateSeq: this.#updateSeq,
      revsLimit: this.#revsLimit,
      security: this.#security,
      applied: this.#applied,
      hashChain: this.#hashChain,
      purgeSeq: this.#purgeSeq,
      purgedInfosLimit: this.#purgedInfosLimit,
    };
    return { trees, fields };
  }

  /** Adds the batch's purge infos, then drops the oldest past `purged_infos_limit`. */
  #purgeTrees(base: EngineTrees): Pick<EngineTrees, 'purge' | 'purgeSeq'> {
    let purge = base.purge;
    let purgeSeq = base.purgeSeq;
    if (this.#purgeInserts.size > 0) {
      purgeSeq = purgeSeq.modify({ insert: this.#purgeInserts });
      purge = purge.modify({
        insert: [...this.#purgeInserts.values()].map((info) => [info.uuid, info]),
      });
    }
    const excess = purgeSeq.count - this.#purgedInfosLimit;
    if (excess <= 0) return { purge, purgeSeq };
    const oldest: PurgeInfo[] = [];
    purgeSeq.fold((_seq, info) => {
      oldest.push(info);
      return oldest.length < excess;
    });
    // A uuid recorded twice keeps its newer info in the purge tree.
    const uuids = oldest.map((info) => info.uuid);
    const current = purge.lookup(uuids);
    const removedUuids = uuids.filter((_uuid, i) => current[i]?.purgeSeq === oldest[i]!.purgeSeq);
    return {
      purge: purge.modify({ remove: removedUuids }),
      purgeSeq: purgeSeq.modify({ remove: oldest.map((info) => info.purgeSeq) }),
    };
  }
}

/** True when `text` is short enough to be a tree key. */
function fitsKey(text: string): boolean {
  return (
    text.length * MAX_UTF8_BYTES_PER_UNIT <= MAX_KEY_BYTES ||
    Buffer.byteLength(text) <= MAX_KEY_BYTES
  );
}

function prefetchInto<V>(
  found: ReadonlyArray<V | undefined>,
  keys: ReadonlySet<string>,
  target: Map<string, V | null>,
): void {
  let index = 0;
  for (const key of keys) target.set(key, found[index++] ?? null);
}
