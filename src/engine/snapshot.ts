/**
 * A read snapshot of a database file: the trees at one set of roots, read synchronously. It
 * implements the HTTP layer's `DatabaseSnapshot` directly, so the cluster can pass it through.
 *
 * Records are lazy: a document's revision tree is decoded, and a leaf's body read from its
 * record, only when asked. A `_changes` record comes from the by_seq row (winner and leaves);
 * its full tree is looked up in by_id, at the same roots, on first use.
 *
 * Attachments are read through the leaf's attachment table: `content(rev)` decodes the table
 * and each attachment reads only the chunk records a byte range needs.
 *
 * The snapshot stays readable after later commits (copy-on-write trees keep old nodes), and
 * after a compaction swap, because the database file keeps the block file it reads open until
 * every snapshot of it is closed. `close()` releases it; reading a closed snapshot is a bug.
 */
import { formatRev, type Rev } from '../document/rev.js';
import type { RevLeafValue, RevTree } from '../document/rev-tree.js';
import { findRevision, winner } from '../document/rev-tree-query.js';
import type {
  ChangesSince,
  DatabaseInfo,
  DatabaseSnapshot,
  DocumentRecord,
  IdRange,
  LeafContent,
  LocalDocumentRecord,
  PurgedInfo,
  Seq,
  StoredAttachment,
} from '../http/backend.js';
import type { BlockFile } from '../storage/block-file.js';
import { assert } from '../util/assert.js';
import {
  type AttachmentRecord,
  decodeAttachmentTable,
  digestOf,
  storedLength,
} from './attachment-table.js';
import type { DocInfo, RecordRef, SeqRow, StoredLeaf } from './doc-info.js';
import type { HeaderFields } from './header.js';
import { formatSeq, parseSeq } from './seq.js';
import type { LocalDoc, RequestRecord } from './side-records.js';
import { documentTreeBytes, type EngineTrees } from './trees.js';

const EMPTY_SECURITY = Buffer.from('{}');
/** Rows read per fold while an iterator is consumed. */
const READ_BATCH = 64;
const NO_ATTACHMENTS: readonly StoredAttachment[] = Object.freeze([]);

/** Reads stored bytes `[start, end)` of an attachment from its chunk records. */
function readChunks(
  snapshot: EngineSnapshot,
  attachment: AttachmentRecord,
  start: number,
  end: number,
): Buffer {
  const total = storedLength(attachment);
  assert(start >= 0 && start <= end && end <= total, () => `range ${start}-${end} of ${total}`);
  const parts: Buffer[] = [];
  let offset = 0;
  for (const chunk of attachment.chunks) {
    const chunkEnd = offset + chunk.length;
    if (chunkEnd > start && offset < end) {
      const bytes = snapshot.readRecord(chunk);
      parts.push(bytes.subarray(Math.max(0, start - offset), Math.min(chunk.length, end - offset)));
    }
    offset = chunkEnd;
    if (offset >= end) break;
  }
  return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
}

/** A stored attachment as the HTTP layer reads it. */
function storedAttachment(
  snapshot: EngineSnapshot,
  attachment: AttachmentRecord,
): StoredAttachment {
  return {
    name: attachment.name,
    contentType: attachment.contentType,
    revpos: attachment.revpos,
    digest: digestOf(attachment),
    length: attachment.length,
    encoding: attachment.encoding,
    encodedLength: storedLength(attachment),
    read: (start, end) => readChunks(snapshot, attachment, start, end),
  };
}

/** A normal or design document read from by_id or by_seq. */
class StoredDocument implements DocumentRecord {
  readonly seq: Seq;
  readonly winner: Rev;
  readonly deleted: boolean;
  #info: DocInfo | null;
  readonly #row: SeqRow | null;
  readonly #snapshot: EngineSnapshot;

  private constructor(
    snapshot: EngineSnapshot,
    readonly id: string,
    /** The sequence of the document's latest update, as an integer. */
    readonly updateSeq: number,
    info: DocInfo | null,
    row: SeqRow | null,
  ) {
    this.#snapshot = snapshot;
    this.#info = info;
    this.#row = row;
    this.seq = snapshot.formatSeq(updateSeq);
    if (row !== null) {
      this.winner = row.leaves[0]!.rev;
      this.deleted = row.deleted;
    } else {
      assert(info !== null, 'a stored document has its info or its sequence row');
      this.winner = winner(info.tree).rev;
      this.deleted = info.deleted;
    }
  }

  static fromInfo(snapshot: EngineSnapshot, id: string, info: DocInfo): StoredDocument {
    return new StoredDocument(snapshot, id, info.seq, info, null);
  }

  static fromRow(snapshot: EngineSnapshot, seq: number, row: SeqRow): StoredDocument {
    return new StoredDocument(snapshot, row.id, seq, null, row);
  }

  /** Returns the stored revision tree with its leaf values. */
  storedTree(): RevTree<StoredLeaf> {
    if (this.#info === null) {
      this.#info = this.#snapshot.docInfo(this.id);
      assert(this.#info !== null, () => `document ${this.id} has a sequence row but no info`);
    }
    return this.#info.tree;
  }

  tree(): RevTree<RevLeafValue> {
    return this.storedTree();
  }

  /** Returns the stored leaf of `rev`, or null when `rev` is not a leaf. */
  leaf(rev: Rev): StoredLeaf | null {
    if (this.#row !== null) {
      for (const entry of this.#row.leaves) {
        if (entry.rev.pos === rev.pos && entry.rev.id === rev.id) return entry.leaf;
      }
      return null;
    }
    const node = findRevision(this.storedTree(), rev);
    return node === null || node.children.length > 0 ? null : node.value;
  }

  content(rev: Rev): LeafContent | null {
    const leaf = this.leaf(rev);
    if (leaf === null) return null;
    const attachments =
      leaf.attachments === null ? NO_ATTACHMENTS : this.#snapshot.attachments(leaf.attachments);
    return { deleted: leaf.deleted, body: this.#snapshot.readRecord(leaf.body), attachments };
  }
}

export type { StoredDocument };

/** What a snapshot knows besides its trees. */
export interface SnapshotContext {
  /** True while the database file is being compacted. */
  readonly compactRunning: boolean;
  /** Called once when the snapshot is closed. */
  readonly onClose?: () => void;
}

export class EngineSnapshot implements DatabaseSnapshot {
  readonly #file: BlockFile;
  readonly #fields: HeaderFields;
  readonly #trees: EngineTrees;
  readonly #opaque: string;
  readonly #context: SnapshotContext;
  #closed = false;

  constructor(
    file: BlockFile,
    fields: HeaderFields,
    trees: EngineTrees,
    opaque: string,
    context: SnapshotContext = { compactRunning: false },
  ) {
    this.#file = file;
    this.#fields = fields;
    this.#trees = trees;
    this.#opaque = opaque;
    this.#context = context;
  }

  /** The update sequence as an integer. */
  get updateSeq(): number {
    return this.#fields.updateSeq;
  }

  /** The header fields this snapshot reads (name, uuid, applied index, ...). */
  get fields(): HeaderFields {
    return this.#fields;
  }

  formatSeq(seq: number): Seq {
    return formatSeq(seq, this.#opaque);
  }

  /** Parses a sequence a client sent back; see seq.ts for what is accepted. */
  parseSeq(text: string): number {
    return parseSeq(text, this.#opaque, this.#fields.updateSeq);
  }

  readRecord(ref: RecordRef): Buffer {
    this.#check();
    return this.#file.read(ref.pointer, ref.length);
  }

  /** Reads a leaf's attachment table. */
  attachmentRecords(ref: RecordRef): AttachmentRecord[] {
    return decodeAttachmentTable(this.readRecord(ref));
  }

  /** The attachments of a leaf's table, with readers of their bytes. */
  attachments(ref: RecordRef): StoredAttachment[] {
    return this.attachmentRecords(ref).map((attachment) => storedAttachment(this, attachment));
  }

  info(): DatabaseInfo {
    this.#check();
    const reduction = this.#trees.byId.fullReduce();
    const voters = Math.max(1, this.#fields.membership.voters.length);
    const quorum = Math.floor(voters / 2) + 1;
    return {
      docCount: reduction.live,
      docDelCount: reduction.deleted,
      updateSeq: this.formatSeq(this.#fields.updateSeq),
      purgeSeq: this.formatSeq(this.#fields.purgeSeq),
      sizes: {
        file: this.#file.end,
        external: reduction.externalBytes,
        active: reduction.activeBytes + documentTreeBytes(this.#trees),
      },
      cluster: { q: 1, n: voters, w: quorum, r: quorum },
      compactRunning: this.#context.compactRunning,
    };
  }

  docInfo(id: string): DocInfo | null {
    this.#check();
    return this.#trees.byId.get(id) ?? null;
  }

  document(id: string): StoredDocument | null {
    const info = this.docInfo(id);
    return info === null ? null : StoredDocument.fromInfo(this, id, info);
  }

  /** Live documents in the range, in id order (reverse order when descending). */
  *documents(range: IdRange): Iterable<StoredDocument> {
    this.#check();
    const found: Array<[string, DocInfo]> = [];
    let resumeAfter: string | undefined;
    // Folds run to completion synchronously, so read in batches and yield between them.
    for (;;) {
      found.length = 0;
      const options = foldOptions(range, resumeAfter);
      this.#trees.byId.fold((id, info) => {
        if (id === resumeAfter) return true;
        found.push([id, info]);
        return found.length < READ_BATCH;
      }, options);
      for (const [id, info] of found) {
        if (!info.deleted) yield StoredDocument.fromInfo(this, id, info);
      }
      if (found.length < READ_BATCH) return;
      resumeAfter = found[found.length - 1]![0];
    }
  }

  countDocuments(range: IdRange): number {
    this.#check();
    const byId = this.#trees.byId;
    if (!range.descending) {
      return byId.reduceRange({
        start: range.startId,
        end: range.endId,
        endInclusive: range.inclusiveEnd,
      }).live;
    }
    const low = range.endId;
    let count = byId.reduceRange({ start: low, end: range.startId }).live;
    if (low !== undefined && !range.inclusiveEnd) {
      const lowest = byId.get(low);
      if (lowest !== undefined && !lowest.deleted) count -= 1;
    }
    return count;
  }

  resolveSince(since: ChangesSince): Seq {
    this.#check();
    if (since.kind === 'start') return this.formatSeq(0);
    if (since.kind === 'now') return this.formatSeq(this.#fields.updateSeq);
    return this.formatSeq(this.parseSeq(since.seq));
  }

  changes(since: Seq, descending: boolean): Iterable<StoredDocument> {
    return this.changesAfter(this.parseSeq(since), descending);
  }

  /**
   * Documents changed after sequence `after`, one per document at its latest change, in
   * sequence order; when descending, from the newest down to just after `after`.
   */
  *changesAfter(after: number, descending: boolean): Iterable<StoredDocument> {
    this.#check();
    const found: Array<[number, SeqRow]> = [];
    let last: number | undefined;
    const collect = (seq: number, row: SeqRow) => {
      found.push([seq, row]);
      return found.length < READ_BATCH;
    };
    // Folds run to completion synchronously, so read in batches and yield between them.
    for (;;) {
      found.length = 0;
      if (descending) {
        const start = last === undefined ? undefined : last - 1;
        this.#trees.bySeq.fold(collect, {
          direction: 'backward',
          start,
          end: after,
          endInclusive: false,
        });
      } else {
        this.#trees.bySeq.fold(collect, { start: (last ?? after) + 1 });
      }
      for (const [seq, row] of found) yield StoredDocument.fromRow(this, seq, row);
      if (found.length < READ_BATCH) return;
      last = found[found.length - 1]![0];
    }
  }

  pendingAfter(seq: Seq, descending: boolean): number {
    return this.pendingAfterSeq(this.parseSeq(seq), descending);
  }

  /** Rows of by_seq after `seq` (before it when descending), from the count reduction. */
  pendingAfterSeq(seq: number, descending: boolean): number {
    this.#check();
    const bySeq = this.#trees.bySeq;
    if (descending) return bySeq.reduceRange({ end: seq, endInclusive: false });
    return bySeq.reduceRange({ start: seq + 1 });
  }

  localDocument(id: string): LocalDocumentRecord | null {
    this.#check();
    const doc = this.#trees.local.get(id);
    if (doc === undefined) return null;
    return { id, rev: `0-${doc.counter}`, body: this.readRecord(doc.body) };
  }

  /** Every `_local/` document, in id order. */
  *localDocuments(): Iterable<LocalDocumentRecord> {
    this.#check();
    const found: Array<[string, LocalDoc]> = [];
    this.#trees.local.fold((id, doc) => {
      found.push([id, doc]);
    });
    for (const [id, doc] of found)
      yield { id, rev: `0-${doc.counter}`, body: this.readRecord(doc.body) };
  }

  /** Reads the request-id table in id order: where each request was applied, and its outcome. */
  requestRecords(): Array<[string, RequestRecord]> {
    this.#check();
    const records: Array<[string, RequestRecord]> = [];
    this.#trees.requests.fold((id, record) => {
      records.push([id, { index: record.index, outcome: Buffer.from(record.outcome) }]);
    });
    return records;
  }

  security(): Buffer {
    this.#check();
    const ref = this.#fields.security;
    return ref === null ? EMPTY_SECURITY : this.readRecord(ref);
  }

  revsLimit(): number {
    return this.#fields.revsLimit;
  }

  purgedInfosLimit(): number {
    return this.#fields.purgedInfosLimit;
  }

  purgedInfos(): PurgedInfo[] {
    this.#check();
    const infos: PurgedInfo[] = [];
    this.#trees.purgeSeq.fold((_seq, info) => {
      infos.push({ id: info.docId, revs: info.revs.map(formatRev) });
    });
    return infos;
  }

  close(): void {
    assert(!this.#closed, 'snapshot closed twice');
    this.#closed = true;
    this.#context.onClose?.();
  }

  #check(): void {
    assert(!this.#closed, 'read from a closed snapshot');
  }
}

function foldOptions(range: IdRange, resumeAfter: string | undefined) {
  return {
    direction: range.descending ? ('backward' as const) : ('forward' as const),
    start: resumeAfter ?? range.startId,
    end: range.endId,
    endInclusive: range.inclusiveEnd,
  };
}
