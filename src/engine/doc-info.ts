/**
 * What the by_id and by_seq trees store for a document, and their encodings.
 *
 * A revision tree leaf (`StoredLeaf`) points at the record of its body, written once when the
 * log entry was appended (or when a standalone command was applied). When the revision has
 * attachments it also points at their table (attachment-table.ts) and keeps their sizes, and
 * it names the sequence that wrote it.
 *
 * by_id value (`DocInfo`), version 1, varints as in src/document/bytes.ts:
 *
 *   version:u8 flags:u8 (bit 0: deleted) seq:varint activeBytes:varint externalBytes:varint
 *   revTree (src/document/rev-tree-codec.ts with the leaf encoding below)
 *
 *   leaf := flags:u8 (bit 0: deleted, bit 1: attachments) seq:varint
 *           bodyPointer:varint bodyLength:varint
 *           [tablePointer:varint tableLength:varint attExternal:varint attActive:varint]
 *
 * The fixed fields come first so that the by_id reduction reads them without decoding the
 * tree; `DocInfo.decode` decodes the tree only when asked.
 *
 * Sizes follow CouchDB. A document's external size is the JSON bytes of its leaves' bodies plus
 * the decoded bytes of their attachments, and its active size is the bytes its records take
 * in the file: bodies, attachment tables and attachment bytes, each with its record framing.
 * Interior revisions have no body, so they count nothing.
 * NOTE: an attachment that several leaves share is counted once per leaf; CouchDB counts it
 * once per document.
 *
 * by_seq value (`SeqRow`), version 1: the document id, the deleted flag and its leaves in
 * winner order, so `_changes` reads one row per document without the by_id tree:
 *
 *   version:u8 flags:u8 id:string leafCount:varint (position:varint revId leaf)*
 *   revId := tag:varint, 0 then 16 raw bytes (32 hex digits), or length + 1 then UTF-8
 */
import { ByteReader, ByteWriter, readVarintsAt } from '../document/bytes.js';
import { isHexRevId, REV_ID_BINARY_BYTES, type Rev } from '../document/rev.js';
import type { RevLeafValue, RevTree } from '../document/rev-tree.js';
import { type LeafValueCodec, readRevTree, writeRevTree } from '../document/rev-tree-codec.js';
import { sortedLeaves } from '../document/rev-tree-query.js';
import { RECORD_PREFIX_BYTES } from '../storage/block-layout.js';
import type { Reducer, ValueCodec } from '../storage/codecs.js';
import { assert } from '../util/assert.js';

const DOC_INFO_VERSION = 1;
const SEQ_ROW_VERSION = 1;
const FLAG_DELETED = 1;
const FLAG_ATTACHMENTS = 2;
const HEX_ID_TAG = 0;
const TEXT_ID_TAG_OFFSET = 1;

/** A record's pointer and payload length. */
export interface RecordRef {
  readonly pointer: number;
  readonly length: number;
}

/** A leaf's attachment table and the sizes of the attachments it lists. */
export interface AttachmentsRef extends RecordRef {
  /** Decoded bytes of the listed attachments. */
  readonly externalBytes: number;
  /** Bytes the records of the listed attachments take in the file, framing included. */
  readonly activeBytes: number;
}

/** The value of a revision tree leaf. */
export interface StoredLeaf extends RevLeafValue {
  readonly deleted: boolean;
  /** The update sequence that wrote this leaf. */
  readonly seq: number;
  readonly body: RecordRef;
  /** The attachment table, or null when the revision has no attachments. */
  readonly attachments: AttachmentsRef | null;
}

export const leafCodec: LeafValueCodec<StoredLeaf> = {
  encode(leaf, writer) {
    const flags = (leaf.deleted ? FLAG_DELETED : 0) | (leaf.attachments ? FLAG_ATTACHMENTS : 0);
    writer.writeByte(flags);
    writer.writeVarint(leaf.seq);
    writer.writeVarint(leaf.body.pointer);
    writer.writeVarint(leaf.body.length);
    if (leaf.attachments !== null) {
      writer.writeVarint(leaf.attachments.pointer);
      writer.writeVarint(leaf.attachments.length);
      writer.writeVarint(leaf.attachments.externalBytes);
      writer.writeVarint(leaf.attachments.activeBytes);
    }
  },
  decode(reader) {
    const flags = reader.readByte();
    const seq = reader.readVarint();
    const body = { pointer: reader.readVarint(), length: reader.readVarint() };
    const attachments =
      (flags & FLAG_ATTACHMENTS) === 0
        ? null
        : {
            pointer: reader.readVarint(),
            length: reader.readVarint(),
            externalBytes: reader.readVarint(),
            activeBytes: reader.readVarint(),
          };
    return { deleted: (flags & FLAG_DELETED) !== 0, seq, body, attachments };
  },
};

/** Returns a leaf's external size: its body's JSON bytes and its attachments' decoded bytes. */
function leafExternalBytes(leaf: StoredLeaf): number {
  return leaf.body.length + (leaf.attachments?.externalBytes ?? 0);
}

/** Bytes a leaf's records take in the file (its active size). */
function leafActiveBytes(leaf: StoredLeaf): number {
  const attachments =
    leaf.attachments === null
      ? 0
      : leaf.attachments.length + RECORD_PREFIX_BYTES + leaf.attachments.activeBytes;
  return leaf.body.length + RECORD_PREFIX_BYTES + attachments;
}

/** The by_id value of a document: its latest sequence, sizes and revision tree. */
export class DocInfo {
  #tree: RevTree<StoredLeaf> | undefined;
  #bytes: Buffer | undefined;
  readonly #treeOffset: number;
  #leaves: readonly SeqLeaf[] | undefined;

  private constructor(
    readonly seq: number,
    /** True when every leaf is deleted. */
    readonly deleted: boolean,
    readonly activeBytes: number,
    readonly externalBytes: number,
    tree: RevTree<StoredLeaf> | undefined,
    bytes: Buffer | undefined,
    treeOffset: number,
  ) {
    this.#tree = tree;
    this.#bytes = bytes;
    this.#treeOffset = treeOffset;
  }

  /** Builds the info of a document whose latest update is `seq`. */
  static fromTree(tree: RevTree<StoredLeaf>, seq: number): DocInfo {
    assert(tree.length > 0, 'a stored document has at least one revision');
    const leaves = winnerFirst(tree);
    let active = 0;
    let external = 0;
    for (const { leaf } of leaves) {
      active += leafActiveBytes(leaf);
      external += leafExternalBytes(leaf);
    }
    // A live leaf always beats a deleted one, so the winner is deleted only when all are.
    const deleted = leaves[0]!.leaf.deleted;
    const info = new DocInfo(seq, deleted, active, external, tree, undefined, 0);
    info.#leaves = leaves;
    return info;
  }

  /** Decodes the fixed fields now and the tree when it is first read. */
  static decode(bytes: Buffer): DocInfo {
    const reader = new ByteReader(bytes);
    const version = reader.readByte();
    assert(version === DOC_INFO_VERSION, () => `unknown document info version ${version}`);
    const flags = reader.readByte();
    const seq = reader.readVarint();
    const active = reader.readVarint();
    const external = reader.readVarint();
    const deleted = (flags & FLAG_DELETED) !== 0;
    return new DocInfo(seq, deleted, active, external, undefined, bytes, reader.position);
  }

  /** Every leaf, winner first. */
  get leaves(): readonly SeqLeaf[] {
    this.#leaves ??= winnerFirst(this.tree);
    return this.#leaves;
  }

  get tree(): RevTree<StoredLeaf> {
    if (this.#tree === undefined) {
      const bytes = this.#bytes!;
      const reader = new ByteReader(bytes, this.#treeOffset);
      this.#tree = readRevTree(reader, leafCodec);
      assert(reader.remaining === 0, 'document info ends with its revision tree');
    }
    return this.#tree;
  }

  encode(): Buffer {
    if (this.#bytes !== undefined) return this.#bytes;
    const writer = new ByteWriter();
    writer.writeByte(DOC_INFO_VERSION);
    writer.writeByte(this.deleted ? FLAG_DELETED : 0);
    writer.writeVarint(this.seq);
    writer.writeVarint(this.activeBytes);
    writer.writeVarint(this.externalBytes);
    writeRevTree(writer, this.tree, leafCodec);
    this.#bytes = writer.finish();
    return this.#bytes;
  }
}

export const docInfoCodec: ValueCodec<DocInfo> = {
  encode: (info) => info.encode(),
  decode: (bytes) => DocInfo.decode(bytes),
};

/** The by_id reduction: document counts and sizes. */
export interface IdReduction {
  readonly live: number;
  readonly deleted: number;
  readonly activeBytes: number;
  readonly externalBytes: number;
}

const EMPTY_ID_REDUCTION: IdReduction = { live: 0, deleted: 0, activeBytes: 0, externalBytes: 0 };

function addIdReductions(reductions: readonly IdReduction[]): IdReduction {
  let live = 0;
  let deleted = 0;
  let activeBytes = 0;
  let externalBytes = 0;
  for (const reduction of reductions) {
    live += reduction.live;
    deleted += reduction.deleted;
    activeBytes += reduction.activeBytes;
    externalBytes += reduction.externalBytes;
  }
  return { live, deleted, activeBytes, externalBytes };
}

export const idReducer: Reducer<string, DocInfo, IdReduction> = {
  reduce: (entries) => {
    if (entries.length === 0) return EMPTY_ID_REDUCTION;
    let live = 0;
    let deleted = 0;
    let activeBytes = 0;
    let externalBytes = 0;
    if (entries.forEachEncodedValue !== undefined) {
      // The fixed fields of `DocInfo.encode`, read in place: version, flags, then the varints
      // seq, active bytes and external bytes.
      const fields = [0, 0, 0];
      entries.forEachEncodedValue((bytes, start, end) => {
        assert(start + 2 <= end, 'document info shorter than its version and flags');
        assert(
          bytes[start] === DOC_INFO_VERSION,
          () => `unknown document info version ${bytes[start]}`,
        );
        if ((bytes[start + 1]! & FLAG_DELETED) !== 0) deleted += 1;
        else live += 1;
        readVarintsAt(bytes, start + 2, end, fields);
        activeBytes += fields[1]!;
        externalBytes += fields[2]!;
      });
      return { live, deleted, activeBytes, externalBytes };
    }
    for (let index = 0; index < entries.length; index++) {
      const info = entries.value(index);
      if (info.deleted) deleted += 1;
      else live += 1;
      activeBytes += info.activeBytes;
      externalBytes += info.externalBytes;
    }
    return { live, deleted, activeBytes, externalBytes };
  },
  rereduce: addIdReductions,
  rereduceEncoded: (reductions) => {
    let live = 0;
    let deleted = 0;
    let activeBytes = 0;
    let externalBytes = 0;
    const fields = [0, 0, 0, 0];
    for (let index = 0; index < reductions.length; index++) {
      readVarintsAt(reductions.bytes, reductions.start(index), reductions.end(index), fields);
      live += fields[0]!;
      deleted += fields[1]!;
      activeBytes += fields[2]!;
      externalBytes += fields[3]!;
    }
    return { live, deleted, activeBytes, externalBytes };
  },
  encode: (reduction) => {
    const writer = new ByteWriter(32);
    writer.writeVarint(reduction.live);
    writer.writeVarint(reduction.deleted);
    writer.writeVarint(reduction.activeBytes);
    writer.writeVarint(reduction.externalBytes);
    return writer.finish();
  },
  decode: (bytes) => {
    const reader = new ByteReader(bytes);
    return {
      live: reader.readVarint(),
      deleted: reader.readVarint(),
      activeBytes: reader.readVarint(),
      externalBytes: reader.readVarint(),
    };
  },
};

/** One leaf of a by_seq row. */
export interface SeqLeaf {
  readonly rev: Rev;
  readonly leaf: StoredLeaf;
}

/** The by_seq value of a document at its latest change. */
export interface SeqRow {
  readonly id: string;
  /** True when every leaf is deleted. */
  readonly deleted: boolean;
  /** Every leaf, winner first. */
  readonly leaves: readonly SeqLeaf[];
}

/** Returns every leaf of a tree, winner first. */
function winnerFirst(tree: RevTree<StoredLeaf>): SeqLeaf[] {
  return sortedLeaves(tree).map((leaf) => ({ rev: leaf.rev, leaf: leaf.value }));
}

/** Builds the by_seq row of a document from its info. */
export function seqRowOf(id: string, info: DocInfo): SeqRow {
  return { id, deleted: info.deleted, leaves: info.leaves };
}

function writeRevId(writer: ByteWriter, id: string): void {
  if (isHexRevId(id)) {
    writer.writeVarint(HEX_ID_TAG);
    writer.writeHex(id);
    return;
  }
  const length = Buffer.byteLength(id);
  writer.writeVarint(length + TEXT_ID_TAG_OFFSET);
  writer.writeUtf8(id, length);
}

function readRevId(reader: ByteReader): string {
  const tag = reader.readVarint();
  if (tag === HEX_ID_TAG) return reader.readHex(REV_ID_BINARY_BYTES);
  return reader.readUtf8(tag - TEXT_ID_TAG_OFFSET);
}

export function writeString(writer: ByteWriter, text: string): void {
  const length = Buffer.byteLength(text);
  writer.writeVarint(length);
  writer.writeUtf8(text, length);
}

export function readString(reader: ByteReader): string {
  return reader.readUtf8(reader.readVarint());
}

/**
 * A by_seq row decoded on first use. The tree decodes every value of a leaf it rewrites to
 * compute the count reduction, which reads none of them, so decoding waits.
 */
class EncodedSeqRow implements SeqRow {
  #bytes: Buffer | null;
  #decoded: SeqRow | null = null;

  constructor(bytes: Buffer) {
    this.#bytes = bytes;
  }

  get id(): string {
    return this.#row().id;
  }

  get deleted(): boolean {
    return this.#row().deleted;
  }

  get leaves(): readonly SeqLeaf[] {
    return this.#row().leaves;
  }

  #row(): SeqRow {
    if (this.#decoded === null) {
      this.#decoded = decodeSeqRow(this.#bytes!);
      this.#bytes = null;
    }
    return this.#decoded;
  }
}

function decodeSeqRow(bytes: Buffer): SeqRow {
  const reader = new ByteReader(bytes);
  const version = reader.readByte();
  assert(version === SEQ_ROW_VERSION, () => `unknown sequence row version ${version}`);
  const deleted = (reader.readByte() & FLAG_DELETED) !== 0;
  const id = readString(reader);
  const count = reader.readVarint();
  const leaves: SeqLeaf[] = [];
  for (let i = 0; i < count; i++) {
    const pos = reader.readVarint();
    const revId = readRevId(reader);
    leaves.push({ rev: { pos, id: revId }, leaf: leafCodec.decode(reader) });
  }
  assert(reader.remaining === 0, 'sequence row ends with its leaves');
  return { id, deleted, leaves };
}

export const seqRowCodec: ValueCodec<SeqRow> = {
  encode(row) {
    const writer = new ByteWriter();
    writer.writeByte(SEQ_ROW_VERSION);
    writer.writeByte(row.deleted ? FLAG_DELETED : 0);
    writeString(writer, row.id);
    writer.writeVarint(row.leaves.length);
    for (const { rev, leaf } of row.leaves) {
      writer.writeVarint(rev.pos);
      writeRevId(writer, rev.id);
      leafCodec.encode(leaf, writer);
    }
    return writer.finish();
  },
  decode: (bytes) => new EncodedSeqRow(bytes),
};
