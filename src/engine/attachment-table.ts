/**
 * A revision's attachment table: the record a leaf points at when the revision has
 * attachments. It lists each attachment's facts and the records that hold its stored bytes,
 * in document order. The byte records are the chunk segments of the log entry that added the
 * attachment (commands.ts), so they are written once; a later revision that keeps the
 * attachment (a stub) lists the same records again, so nothing is copied between revisions.
 *
 * Encoding, version 1 (varints and strings as in doc-info.ts):
 *
 *   version:u8 count:varint attachment*
 *   attachment := name:string contentType:string revpos:varint md5:16 bytes length:varint
 *                 encoding:u8 (0 identity, 1 gzip) chunkCount:varint (pointer:varint length:varint)*
 *
 * `length` is the decoded length; the stored length is the sum of the chunk lengths.
 */
import { type AttachmentEncoding, formatDigest, MD5_BYTES } from '../document/attachments.js';
import { ByteReader, ByteWriter } from '../document/bytes.js';
import { RECORD_PREFIX_BYTES } from '../storage/block-layout.js';
import { assert } from '../util/assert.js';
import { type RecordRef, readString, writeString } from './doc-info.js';

const TABLE_VERSION = 1;
const ENCODINGS: readonly AttachmentEncoding[] = ['identity', 'gzip'];

/** One attachment of a stored revision. */
export interface AttachmentRecord {
  readonly name: string;
  readonly contentType: string;
  readonly revpos: number;
  /** MD5 of the stored bytes. */
  readonly md5: Buffer;
  /** Length of the decoded bytes. */
  readonly length: number;
  readonly encoding: AttachmentEncoding;
  /** The records of the stored bytes, in order. */
  readonly chunks: readonly RecordRef[];
}

/** Length of an attachment's stored bytes. */
export function storedLength(attachment: AttachmentRecord): number {
  let total = 0;
  for (const chunk of attachment.chunks) total += chunk.length;
  return total;
}

/** The `md5-<base64>` digest clients see. */
export function digestOf(attachment: AttachmentRecord): string {
  return formatDigest(attachment.md5);
}

export function encodeAttachmentTable(attachments: readonly AttachmentRecord[]): Buffer {
  const writer = new ByteWriter(64 * (attachments.length + 1));
  writer.writeByte(TABLE_VERSION);
  writer.writeVarint(attachments.length);
  for (const attachment of attachments) {
    assert(attachment.md5.length === MD5_BYTES, 'an attachment digest is an MD5');
    writeString(writer, attachment.name);
    writeString(writer, attachment.contentType);
    writer.writeVarint(attachment.revpos);
    writer.writeBytes(attachment.md5);
    writer.writeVarint(attachment.length);
    writer.writeByte(ENCODINGS.indexOf(attachment.encoding));
    writer.writeVarint(attachment.chunks.length);
    for (const chunk of attachment.chunks) {
      writer.writeVarint(chunk.pointer);
      writer.writeVarint(chunk.length);
    }
  }
  return writer.finish();
}

export function decodeAttachmentTable(bytes: Buffer): AttachmentRecord[] {
  const reader = new ByteReader(bytes);
  const version = reader.readByte();
  assert(version === TABLE_VERSION, () => `unknown attachment table version ${version}`);
  const count = reader.readVarint();
  const attachments: AttachmentRecord[] = [];
  for (let i = 0; i < count; i++) {
    const name = readString(reader);
    const contentType = readString(reader);
    const revpos = reader.readVarint();
    const md5 = Buffer.from(reader.readBytes(MD5_BYTES));
    const length = reader.readVarint();
    const encoding = ENCODINGS[reader.readByte()];
    assert(encoding !== undefined, 'an attachment encoding is identity or gzip');
    const chunkCount = reader.readVarint();
    const chunks: RecordRef[] = [];
    for (let j = 0; j < chunkCount; j++) {
      chunks.push({ pointer: reader.readVarint(), length: reader.readVarint() });
    }
    attachments.push({ name, contentType, revpos, md5, length, encoding, chunks });
  }
  assert(reader.remaining === 0, 'an attachment table ends with its last attachment');
  return attachments;
}

/** Sizes of a table's attachments as a document's sizes count them. */
export function attachmentSizes(attachments: readonly AttachmentRecord[]): {
  externalBytes: number;
  activeBytes: number;
} {
  let externalBytes = 0;
  let activeBytes = 0;
  for (const attachment of attachments) {
    externalBytes += attachment.length;
    for (const chunk of attachment.chunks) activeBytes += chunk.length + RECORD_PREFIX_BYTES;
  }
  return { externalBytes, activeBytes };
}
