/**
 * Values of the engine's smaller trees: `_local/` documents, the request-id table and its
 * index, and purge infos. Encodings, version 1 (varints and strings as in doc-info.ts):
 *
 *   local doc     version:u8 counter:varint bodyPointer:varint bodyLength:varint
 *   request       version:u8 index:varint outcome (the rest: an encoded outcome, outcome.ts)
 *   request index requestId as UTF-8 (the value of the by-index tree)
 *   purge info    version:u8 purgeSeq:varint uuid:string docId:string
 *                 revCount:varint (position:varint revId:string)*
 *
 * `_local/` documents have no revision tree: their revision is `0-<counter>`.
 */
import { ByteReader, ByteWriter } from '../document/bytes.js';
import type { Rev } from '../document/rev.js';
import type { ValueCodec } from '../storage/codecs.js';
import { assert } from '../util/assert.js';
import { type RecordRef, readString, writeString } from './doc-info.js';

const LOCAL_DOC_VERSION = 1;
const REQUEST_VERSION = 1;
const PURGE_INFO_VERSION = 1;

export interface LocalDoc {
  /** The revision counter: the revision is `0-<counter>`. */
  readonly counter: number;
  readonly body: RecordRef;
}

export const localDocCodec: ValueCodec<LocalDoc> = {
  encode(doc) {
    const writer = new ByteWriter(24);
    writer.writeByte(LOCAL_DOC_VERSION);
    writer.writeVarint(doc.counter);
    writer.writeVarint(doc.body.pointer);
    writer.writeVarint(doc.body.length);
    return writer.finish();
  },
  decode(bytes) {
    const reader = new ByteReader(bytes);
    const version = reader.readByte();
    assert(version === LOCAL_DOC_VERSION, () => `unknown local document version ${version}`);
    const counter = reader.readVarint();
    const body = { pointer: reader.readVarint(), length: reader.readVarint() };
    return { counter, body };
  },
};

/** A request id's entry: where it was applied and its encoded outcome. */
export interface RequestRecord {
  readonly index: number;
  readonly outcome: Buffer;
}

export const requestRecordCodec: ValueCodec<RequestRecord> = {
  encode(record) {
    const writer = new ByteWriter(16 + record.outcome.length);
    writer.writeByte(REQUEST_VERSION);
    writer.writeVarint(record.index);
    writer.writeBytes(record.outcome);
    return writer.finish();
  },
  decode(bytes) {
    const reader = new ByteReader(bytes);
    const version = reader.readByte();
    assert(version === REQUEST_VERSION, () => `unknown request record version ${version}`);
    const index = reader.readVarint();
    return { index, outcome: bytes.subarray(reader.position) };
  },
};

/** One purge request: which revisions of which document were purged. */
export interface PurgeInfo {
  readonly purgeSeq: number;
  readonly uuid: string;
  readonly docId: string;
  readonly revs: readonly Rev[];
}

export const purgeInfoCodec: ValueCodec<PurgeInfo> = {
  encode(info) {
    const writer = new ByteWriter();
    writer.writeByte(PURGE_INFO_VERSION);
    writer.writeVarint(info.purgeSeq);
    writeString(writer, info.uuid);
    writeString(writer, info.docId);
    writer.writeVarint(info.revs.length);
    for (const rev of info.revs) {
      writer.writeVarint(rev.pos);
      writeString(writer, rev.id);
    }
    return writer.finish();
  },
  decode(bytes) {
    const reader = new ByteReader(bytes);
    const version = reader.readByte();
    assert(version === PURGE_INFO_VERSION, () => `unknown purge info version ${version}`);
    const purgeSeq = reader.readVarint();
    const uuid = readString(reader);
    const docId = readString(reader);
    const count = reader.readVarint();
    const revs: Rev[] = [];
    for (let i = 0; i < count; i++) revs.push({ pos: reader.readVarint(), id: readString(reader) });
    return { purgeSeq, uuid, docId, revs };
  },
};
