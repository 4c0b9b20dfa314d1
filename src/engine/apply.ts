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
 * Bodies: an entry appended to the log already has a record per segment (stored-entry.ts) and
 * its leaves point there. A command applied without a log entry (standalone use) writes a
 * segment's record the first time a leaf or the header needs it.
 */
import { scanObject } from '../document/json.js';
import type { WriteResult } from '../http/backend.js';
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
import { type Command, commandSegments, type DocumentsCommand } from './commands.js';
import { type DocInfo, type RecordRef, type SeqRow, seqRowOf } from './doc-info.js';
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
import type { LocalDoc, RequestRecord } from './side-records.js';
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
  }

  get revsLimit(): number {
    return this.#revsLimit;
  }

  get applied(): LogPosition {
    return this.#applied;
  }

  /** Looks up everything the entries will read, one pass per tree. */
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
      }
    }
    // Ids longer than a tree key are rejected when applied; they must not reach the trees.
    for (const ids of [docIds, localIds, requestIds]) {
      for (const id of ids) if (!fitsKey(id)) ids.delete(id);
    }
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
    }
  }

  #applyDocuments(command: DocumentsCommand, segments: SegmentRecords) {
    let next = 0;
    return command.docs.map((doc) => {
      const bodyIndex = next;
      const attachmentsIndex = doc.attachments === null ? -1 : next + 1;
      next += doc.attachments === null ? 1 : 2;
      const records: DocumentRecords = {
        body: () => segments.ref(bodyIndex),
        attachments: () => (attachmentsIndex < 0 ? null : segments.ref(attachmentsIndex)),
      };
      return this.#applyContained(doc.id, () =>
        applyDocument(this, doc, command.newEdits, records),
      );
    });
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

  // ---- finish

  /** Writes the batch's changes into the trees and returns the new trees and header fields. */
  finish(): { trees: EngineTrees; fields: HeaderFields } {
    const base = this.#base.trees;
    const changedDocs = [...this.#changedDocs].map((id) => [id, this.#docs.get(id)!] as const);
    const localInserts: Array<[string, LocalDoc]> = [];
    const localRemovals: string[] = [];
    for (const id of this.#changedLocals) {
      const doc = this.#locals.get(id)!;
      if (doc === null) localRemovals.push(id);
      else localInserts.push([id, doc]);
    }
    const trees: EngineTrees = {
      ...base,
      byId: base.byId.modify({ insert: changedDocs }),
      bySeq: base.bySeq.modify({ remove: this.#seqRemovals, insert: this.#seqInserts }),
      local: base.local.modify({ insert: localInserts, remove: localRemovals }),
      requests: base.requests.modify({ insert: this.#newRequests }),
      requestIndex: base.requestIndex.modify({ insert: this.#requestIndex }),
    };
    const fields: HeaderFields = {
      ...this.#base.fields,
      updateSeq: this.#updateSeq,
      revsLimit: this.#revsLimit,
      security: this.#security,
      applied: this.#applied,
      hashChain: this.#hashChain,
    };
    return { trees, fields };
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
