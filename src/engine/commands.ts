/**
 * Commands: what a Raft log entry of a database carries. A command is the client's request,
 * not its outcome: revision ids, sequences and conflicts are computed when the entry is
 * applied, identically on every replica. Anything random or time-based (generated document
 * ids) is fixed by the node that received the request before the command is built. Every
 * command carries that node's request id (node name, boot id and counter), so a retried
 * request is recognised and gets its first outcome back.
 *
 * Encoding, version 1 (integers are unsigned LEB128 varints from src/document/bytes.ts unless
 * noted; a string is a varint byte length and UTF-8 bytes):
 *
 *   payload   := version:u8 kind:u8 requestId:string fields segmentCount:varint segment*
 *   segment   := length:u32be bytes
 *
 * Document bodies, attachment data and the security object are segments. They come at the
 * end of the payload, in the order the fields name them. So the engine can store each one as a
 * record of its own and rebuild the payload byte for byte (`splitCommand`). `fields` per kind:
 *
 *   documents     flags:u8 (bit 0: new_edits) count:varint document*
 *                 document := id:string revStart:varint revCount:varint revId:string*
 *                             flags:u8 (bit 0: deleted, bit 1: has attachments)
 *                             [attCount:varint attachment*]        (when bit 1 is set)
 *                 attachment := name:string kind:u8, then
 *                   kind 0 (stub): revpos:varint (0: none, else revpos + 1)
 *                   kind 1 (data): contentType:string encoding:u8 (0 identity, 1 gzip)
 *                                  revpos:varint (as for a stub) length:varint md5:16 bytes
 *                                  chunkCount:varint
 *                 segments: per document its body, then each data attachment's chunks
 *   local_put     id:string revStart:varint revCount:varint revId:string*   segments: body
 *   local_delete  id:string revStart:varint revCount:varint revId:string*   segments: none
 *   revs_limit    limit:varint                                              segments: none
 *   security      (no fields)                                segments: the security object
 *   noop          (no fields)                                               segments: none
 *   purge         count:varint (uuid:string id:string revCount:varint rev:string*)*  none
 *   purged_infos_limit  limit:varint                                        segments: none
 *   compact       (no fields)                                               segments: none
 *
 * An attachment's stored bytes are cut into chunks of at most `ATTACHMENT_CHUNK_BYTES`, each a
 * segment, so each becomes a checksummed record of the file when the entry is appended and the
 * document points at those records: attachment bytes are written once. Purge revisions are
 * kept as the client's `N-<id>` text and parsed when applied.
 *
 * Decoding rejects an unknown version or kind, unknown flag bits, strings that are not UTF-8,
 * trailing bytes, overlong varints and segment counts that do not match the fields, with
 * `CommandFormatError`; the engine applies such an entry as a rejected command. This module
 * checks structure only: ids, revisions and JSON are checked when the command is applied.
 */
import { isUtf8 } from 'node:buffer';
import {
  type AttachmentEncoding,
  MD5_BYTES,
  type StubAttachment,
  type WriteAttachment,
} from '../document/attachments.js';
import { ByteReader, ByteWriter } from '../document/bytes.js';
import type { RevPath } from '../document/rev.js';
import { assert, InvariantError } from '../util/assert.js';

export const COMMAND_FORMAT_VERSION = 1;
/** Largest segment an attachment's bytes are cut into. */
export const ATTACHMENT_CHUNK_BYTES = 256 * 1024;

const KIND_CODES = {
  documents: 1,
  local_put: 2,
  local_delete: 3,
  revs_limit: 4,
  security: 5,
  noop: 6,
  purge: 7,
  purged_infos_limit: 8,
  compact: 9,
} as const;

export type CommandKind = keyof typeof KIND_CODES;

const KINDS_BY_CODE = new Map<number, CommandKind>(
  Object.entries(KIND_CODES).map(([kind, code]) => [code, kind as CommandKind]),
);

const FLAG_NEW_EDITS = 1;
const FLAG_DELETED = 1;
const FLAG_HAS_ATTACHMENTS = 2;
const SEGMENT_LENGTH_BYTES = 4;
const MAX_SEGMENT_BYTES = 0xffff_ffff;
const ATTACHMENT_STUB = 0;
const ATTACHMENT_DATA = 1;
const ENCODING_CODES: Readonly<Record<AttachmentEncoding, number>> = { identity: 0, gzip: 1 };
const ENCODINGS: readonly AttachmentEncoding[] = ['identity', 'gzip'];
/** Smallest encoding of one attachment (empty name, kind), to bound a claimed count. */
const MIN_ATTACHMENT_BYTES = 2;

/** An attachment with data, its bytes cut into the command's segments. */
export interface CommandDataAttachment {
  readonly kind: 'data';
  readonly name: string;
  readonly contentType: string;
  readonly encoding: AttachmentEncoding;
  readonly revpos: number | null;
  /** Length of the decoded bytes. */
  readonly length: number;
  /** MD5 of the stored bytes. */
  readonly digest: Buffer;
  /** The stored bytes, in order; none for an empty attachment. */
  readonly chunks: readonly Buffer[];
}

export type CommandAttachment = StubAttachment | CommandDataAttachment;

/** One document of a `documents` command, as the HTTP layer parsed it. */
export interface CommandDocument {
  readonly id: string;
  /** `_rev` or `_revisions`; `{start: 0, ids: []}` when the document named neither. */
  readonly revisions: RevPath;
  readonly deleted: boolean;
  /** The stored body: a minified JSON object without special members. */
  readonly body: Buffer;
  /** The document's `_attachments`, or null when it named none. */
  readonly attachments: readonly CommandAttachment[] | null;
}

interface CommandBase {
  /** Chosen by the node that received the request: node name, boot id and counter. */
  readonly requestId: string;
}

/** PUT, POST, DELETE, COPY and `_bulk_docs` (`all_or_nothing` is not supported). */
export interface DocumentsCommand extends CommandBase {
  readonly kind: 'documents';
  readonly newEdits: boolean;
  readonly docs: readonly CommandDocument[];
}

export interface LocalPutCommand extends CommandBase {
  readonly kind: 'local_put';
  readonly id: string;
  readonly revisions: RevPath;
  readonly body: Buffer;
}

export interface LocalDeleteCommand extends CommandBase {
  readonly kind: 'local_delete';
  readonly id: string;
  readonly revisions: RevPath;
}

export interface RevsLimitCommand extends CommandBase {
  readonly kind: 'revs_limit';
  readonly limit: number;
}

export interface SecurityCommand extends CommandBase {
  readonly kind: 'security';
  /** The `_security` object as raw JSON. */
  readonly security: Buffer;
}

export interface NoopCommand extends CommandBase {
  readonly kind: 'noop';
}

/** One document of a purge: the revisions to remove, under the request's uuid. */
export interface PurgeItem {
  readonly uuid: string;
  readonly id: string;
  /** Revisions as the client sent them (`N-<id>`). */
  readonly revs: readonly string[];
}

/** `POST /{db}/_purge`. */
export interface PurgeCommand extends CommandBase {
  readonly kind: 'purge';
  readonly docs: readonly PurgeItem[];
}

export interface PurgedInfosLimitCommand extends CommandBase {
  readonly kind: 'purged_infos_limit';
  readonly limit: number;
}

/** Asks every replica to compact its file; changes nothing the replicas store. */
export interface CompactCommand extends CommandBase {
  readonly kind: 'compact';
}

export type Command =
  | DocumentsCommand
  | LocalPutCommand
  | LocalDeleteCommand
  | RevsLimitCommand
  | SecurityCommand
  | NoopCommand
  | PurgeCommand
  | PurgedInfosLimitCommand
  | CompactCommand;

/** A payload that is not a valid command of a version this code reads. */
export class CommandFormatError extends Error {
  override readonly name = 'CommandFormatError';
}

/** A payload cut into its fixed part and its segments; `joinCommand` reverses the cut. */
export interface SplitCommand {
  /** Every byte before the first segment, the segment count included. */
  readonly prefix: Buffer;
  /** The segments' bytes, without their length prefixes, in payload order. */
  readonly segments: readonly Buffer[];
}

function writeString(writer: ByteWriter, text: string): void {
  const length = Buffer.byteLength(text);
  writer.writeVarint(length);
  writer.writeUtf8(text, length);
}

function writeRevisions(writer: ByteWriter, revisions: RevPath): void {
  writer.writeVarint(revisions.start);
  writer.writeVarint(revisions.ids.length);
  for (const id of revisions.ids) writeString(writer, id);
}

/** Returns the segments of a command in payload order. */
export function commandSegments(command: Command): Buffer[] {
  switch (command.kind) {
    case 'documents': {
      const segments: Buffer[] = [];
      for (const doc of command.docs) {
        segments.push(doc.body);
        for (const attachment of doc.attachments ?? []) {
          if (attachment.kind === 'data') segments.push(...attachment.chunks);
        }
      }
      return segments;
    }
    case 'local_put':
      return [command.body];
    case 'security':
      return [command.security];
    default:
      return [];
  }
}

function writeOptionalPosition(writer: ByteWriter, revpos: number | null): void {
  writer.writeVarint(revpos === null ? 0 : revpos + 1);
}

function writeAttachment(writer: ByteWriter, attachment: CommandAttachment): void {
  writeString(writer, attachment.name);
  if (attachment.kind === 'stub') {
    writer.writeByte(ATTACHMENT_STUB);
    writeOptionalPosition(writer, attachment.revpos);
    return;
  }
  assert(attachment.digest.length === MD5_BYTES, 'an attachment digest is an MD5');
  writer.writeByte(ATTACHMENT_DATA);
  writeString(writer, attachment.contentType);
  writer.writeByte(ENCODING_CODES[attachment.encoding]);
  writeOptionalPosition(writer, attachment.revpos);
  writer.writeVarint(attachment.length);
  writer.writeBytes(attachment.digest);
  writer.writeVarint(attachment.chunks.length);
}

function writeFields(writer: ByteWriter, command: Command): void {
  switch (command.kind) {
    case 'documents':
      writer.writeByte(command.newEdits ? FLAG_NEW_EDITS : 0);
      writer.writeVarint(command.docs.length);
      for (const doc of command.docs) {
        writeString(writer, doc.id);
        writeRevisions(writer, doc.revisions);
        const flags =
          (doc.deleted ? FLAG_DELETED : 0) | (doc.attachments !== null ? FLAG_HAS_ATTACHMENTS : 0);
        writer.writeByte(flags);
        if (doc.attachments === null) continue;
        writer.writeVarint(doc.attachments.length);
        for (const attachment of doc.attachments) writeAttachment(writer, attachment);
      }
      return;
    case 'purge':
      writer.writeVarint(command.docs.length);
      for (const doc of command.docs) {
        writeString(writer, doc.uuid);
        writeString(writer, doc.id);
        writer.writeVarint(doc.revs.length);
        for (const rev of doc.revs) writeString(writer, rev);
      }
      return;
    case 'purged_infos_limit':
      writer.writeVarint(command.limit);
      return;
    case 'local_put':
    case 'local_delete':
      writeString(writer, command.id);
      writeRevisions(writer, command.revisions);
      return;
    case 'revs_limit':
      writer.writeVarint(command.limit);
      return;
    case 'security':
    case 'noop':
    case 'compact':
      return;
  }
}

/** Encodes a command as a log entry payload. */
export function encodeCommand(command: Command): Buffer {
  const segments = commandSegments(command);
  const writer = new ByteWriter(
    64 + segments.reduce((sum, segment) => sum + SEGMENT_LENGTH_BYTES + segment.length, 0),
  );
  writer.writeByte(COMMAND_FORMAT_VERSION);
  writer.writeByte(KIND_CODES[command.kind]);
  writeString(writer, command.requestId);
  writeFields(writer, command);
  writer.writeVarint(segments.length);
  const lengthBytes = Buffer.allocUnsafe(SEGMENT_LENGTH_BYTES);
  for (const segment of segments) {
    assert(segment.length <= MAX_SEGMENT_BYTES, 'a command segment fits a u32 length');
    lengthBytes.writeUInt32BE(segment.length, 0);
    writer.writeBytes(lengthBytes);
    writer.writeBytes(segment);
  }
  return writer.finish();
}

/** Reads one command; `segments` are consumed in payload order. */
class FieldReader {
  readonly #reader: ByteReader;

  constructor(reader: ByteReader) {
    this.#reader = reader;
  }

  /** Reads a flags byte, rejecting bits outside `known`. */
  flags(known: number): number {
    const flags = this.#reader.readByte();
    if ((flags & ~known) !== 0) throw new CommandFormatError(`unknown flags ${flags}`);
    return flags;
  }

  varint(): number {
    return this.#reader.readVarint();
  }

  /** Reads a count of items that each take at least `minBytes`, rejecting impossible counts. */
  count(minBytes: number, what: string): number {
    const count = this.varint();
    if (count * minBytes > this.#reader.remaining)
      throw new CommandFormatError(`${what} count too large`);
    return count;
  }

  bytes(length: number): Buffer {
    return Buffer.from(this.#reader.readBytes(length));
  }

  byte(): number {
    return this.#reader.readByte();
  }

  optionalPosition(): number | null {
    const value = this.varint();
    return value === 0 ? null : value - 1;
  }

  string(): string {
    const bytes = this.#reader.readBytes(this.#reader.readVarint());
    if (!isUtf8(bytes)) throw new CommandFormatError('a string is not valid UTF-8');
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('utf8');
  }

  revisions(): RevPath {
    const start = this.varint();
    const count = this.varint();
    if (count > this.#reader.remaining) throw new CommandFormatError('revision count too large');
    const ids: string[] = [];
    for (let i = 0; i < count; i++) ids.push(this.string());
    return { start, ids };
  }
}

interface CommandFields {
  readonly build: (segments: readonly Buffer[]) => Command;
  readonly segmentCount: number;
}

/** An attachment as its fields read, before its chunks are taken from the segments. */
type AttachmentHead =
  | StubAttachment
  | (Omit<CommandDataAttachment, 'chunks'> & { chunkCount: number });

function readAttachment(fields: FieldReader): AttachmentHead {
  const name = fields.string();
  const kind = fields.byte();
  if (kind === ATTACHMENT_STUB) return { kind: 'stub', name, revpos: fields.optionalPosition() };
  if (kind !== ATTACHMENT_DATA) throw new CommandFormatError(`unknown attachment kind ${kind}`);
  const contentType = fields.string();
  const encodingCode = fields.byte();
  const encoding = ENCODINGS[encodingCode];
  if (encoding === undefined)
    throw new CommandFormatError(`unknown attachment encoding ${encodingCode}`);
  const revpos = fields.optionalPosition();
  const length = fields.varint();
  const digest = fields.bytes(MD5_BYTES);
  const chunkCount = fields.varint();
  return { kind: 'data', name, contentType, encoding, revpos, length, digest, chunkCount };
}

interface DocumentHead {
  readonly id: string;
  readonly revisions: RevPath;
  readonly deleted: boolean;
  readonly attachments: readonly AttachmentHead[] | null;
}

function readDocumentHead(fields: FieldReader): { head: DocumentHead; segmentCount: number } {
  const id = fields.string();
  const revisions = fields.revisions();
  const flags = fields.flags(FLAG_DELETED | FLAG_HAS_ATTACHMENTS);
  let attachments: AttachmentHead[] | null = null;
  let segmentCount = 1;
  if ((flags & FLAG_HAS_ATTACHMENTS) !== 0) {
    attachments = [];
    const count = fields.count(MIN_ATTACHMENT_BYTES, 'attachment');
    for (let i = 0; i < count; i++) {
      const attachment = readAttachment(fields);
      if (attachment.kind === 'data') segmentCount += attachment.chunkCount;
      attachments.push(attachment);
    }
  }
  return {
    head: { id, revisions, deleted: (flags & FLAG_DELETED) !== 0, attachments },
    segmentCount,
  };
}

function buildAttachments(
  heads: readonly AttachmentHead[],
  segments: readonly Buffer[],
  first: number,
): { attachments: CommandAttachment[]; next: number } {
  let next = first;
  const attachments = heads.map((head): CommandAttachment => {
    if (head.kind === 'stub') return head;
    const { chunkCount, ...rest } = head;
    const chunks = segments.slice(next, next + chunkCount);
    next += chunkCount;
    return { ...rest, chunks };
  });
  return { attachments, next };
}

function readDocumentsFields(fields: FieldReader, requestId: string): CommandFields {
  const newEdits = (fields.flags(FLAG_NEW_EDITS) & FLAG_NEW_EDITS) !== 0;
  const count = fields.varint();
  const heads: DocumentHead[] = [];
  let segmentCount = 0;
  for (let i = 0; i < count; i++) {
    const read = readDocumentHead(fields);
    heads.push(read.head);
    segmentCount += read.segmentCount;
  }
  const build = (segments: readonly Buffer[]): Command => {
    let next = 0;
    const docs = heads.map((head): CommandDocument => {
      const body = segments[next++]!;
      let attachments: CommandAttachment[] | null = null;
      if (head.attachments !== null) {
        const built = buildAttachments(head.attachments, segments, next);
        attachments = built.attachments;
        next = built.next;
      }
      return { id: head.id, revisions: head.revisions, deleted: head.deleted, body, attachments };
    });
    return { kind: 'documents', requestId, newEdits, docs };
  };
  return { build, segmentCount };
}

/** Smallest encoding of one purge item (empty uuid and id, no revisions). */
const MIN_PURGE_ITEM_BYTES = 3;

function readPurgeFields(fields: FieldReader, requestId: string): CommandFields {
  const count = fields.count(MIN_PURGE_ITEM_BYTES, 'purge item');
  const docs: PurgeItem[] = [];
  for (let i = 0; i < count; i++) {
    const uuid = fields.string();
    const id = fields.string();
    const revCount = fields.count(1, 'revision');
    const revs: string[] = [];
    for (let j = 0; j < revCount; j++) revs.push(fields.string());
    docs.push({ uuid, id, revs });
  }
  return { segmentCount: 0, build: () => ({ kind: 'purge', requestId, docs }) };
}

function readFields(kind: CommandKind, fields: FieldReader, requestId: string): CommandFields {
  switch (kind) {
    case 'documents':
      return readDocumentsFields(fields, requestId);
    case 'local_put': {
      const id = fields.string();
      const revisions = fields.revisions();
      return {
        segmentCount: 1,
        build: (segments) => ({ kind, requestId, id, revisions, body: segments[0]! }),
      };
    }
    case 'local_delete': {
      const id = fields.string();
      const revisions = fields.revisions();
      return { segmentCount: 0, build: () => ({ kind, requestId, id, revisions }) };
    }
    case 'revs_limit': {
      const limit = fields.varint();
      return { segmentCount: 0, build: () => ({ kind, requestId, limit }) };
    }
    case 'security':
      return {
        segmentCount: 1,
        build: (segments) => ({ kind, requestId, security: segments[0]! }),
      };
    case 'noop':
    case 'compact':
      return { segmentCount: 0, build: () => ({ kind, requestId }) };
    case 'purge':
      return readPurgeFields(fields, requestId);
    case 'purged_infos_limit': {
      const limit = fields.varint();
      return { segmentCount: 0, build: () => ({ kind, requestId, limit }) };
    }
  }
}

interface ParsedPayload {
  readonly fields: CommandFields;
  readonly prefixEnd: number;
  readonly segments: Buffer[];
}

/** Parses a payload's structure, translating the byte reader's assertions into format errors. */
function parsePayload(bytes: Uint8Array): ParsedPayload {
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  const reader = new ByteReader(buffer);
  try {
    const version = reader.readByte();
    if (version !== COMMAND_FORMAT_VERSION) {
      throw new CommandFormatError(`unknown command format version ${version}`);
    }
    const code = reader.readByte();
    const kind = KINDS_BY_CODE.get(code);
    if (kind === undefined) throw new CommandFormatError(`unknown command kind ${code}`);
    const fieldReader = new FieldReader(reader);
    const requestId = fieldReader.string();
    const fields = readFields(kind, fieldReader, requestId);
    const segmentCount = reader.readVarint();
    if (segmentCount !== fields.segmentCount) {
      throw new CommandFormatError(
        `command has ${segmentCount} segments where its fields name ${fields.segmentCount}`,
      );
    }
    const prefixEnd = reader.position;
    const segments: Buffer[] = [];
    for (let i = 0; i < segmentCount; i++) {
      const length = Buffer.from(reader.readBytes(SEGMENT_LENGTH_BYTES)).readUInt32BE(0);
      const start = reader.position;
      reader.readBytes(length);
      segments.push(buffer.subarray(start, start + length));
    }
    if (reader.remaining !== 0) {
      throw new CommandFormatError(`${reader.remaining} bytes after the command`);
    }
    return { fields, prefixEnd, segments };
  } catch (error) {
    if (error instanceof InvariantError) throw new CommandFormatError(error.message);
    throw error;
  }
}

/**
 * Decodes a log entry payload. Segments share memory with `bytes`. Throws CommandFormatError
 * for anything `encodeCommand` could not have written.
 */
export function decodeCommand(bytes: Uint8Array): Command {
  const parsed = parsePayload(bytes);
  return parsed.fields.build(parsed.segments);
}

/**
 * Decodes a payload and cuts it into its prefix and segments, for storing the segments as
 * records of their own. Throws CommandFormatError like `decodeCommand`.
 */
export function splitCommand(bytes: Uint8Array): { command: Command; split: SplitCommand } {
  const parsed = parsePayload(bytes);
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  return {
    command: parsed.fields.build(parsed.segments),
    split: { prefix: buffer.subarray(0, parsed.prefixEnd), segments: parsed.segments },
  };
}

/** Rebuilds the payload bytes that `splitCommand` cut, byte for byte. */
export function joinCommand(split: SplitCommand): Buffer {
  const bytes = Buffer.allocUnsafe(joinedLength(split.prefix.length, split.segments));
  let offset = split.prefix.copy(bytes, 0);
  for (const segment of split.segments) {
    offset = bytes.writeUInt32BE(segment.length, offset);
    offset += segment.copy(bytes, offset);
  }
  return bytes;
}

/** Returns the length of what `joinCommand` builds from a prefix and segments of these lengths. */
export function joinedLength(prefixBytes: number, segments: readonly { length: number }[]): number {
  let total = prefixBytes;
  for (const segment of segments) total += SEGMENT_LENGTH_BYTES + segment.length;
  return total;
}

/** The parts of the HTTP layer's `WriteDocument` that a command carries. */
export interface DocumentWriteInput {
  readonly id: string;
  readonly revisions: RevPath;
  readonly deleted: boolean;
  readonly body: Buffer;
  readonly attachments: readonly WriteAttachment[] | null;
}

/** Cuts `bytes` into chunks of at most `ATTACHMENT_CHUNK_BYTES`, sharing its memory. */
export function chunkBytes(bytes: Buffer): Buffer[] {
  const chunks: Buffer[] = [];
  for (let offset = 0; offset < bytes.length; offset += ATTACHMENT_CHUNK_BYTES) {
    chunks.push(bytes.subarray(offset, offset + ATTACHMENT_CHUNK_BYTES));
  }
  return chunks;
}

function commandAttachment(attachment: WriteAttachment): CommandAttachment {
  if (attachment.kind === 'stub') return attachment;
  const { data, ...rest } = attachment;
  return { ...rest, chunks: chunkBytes(data) };
}

/** Builds the `documents` command of a write request (the HTTP layer's `WriteRequest`). */
export function documentsCommand(
  requestId: string,
  request: { readonly docs: readonly DocumentWriteInput[]; readonly newEdits: boolean },
): DocumentsCommand {
  const docs = request.docs.map((doc) => ({
    id: doc.id,
    revisions: doc.revisions,
    deleted: doc.deleted,
    body: doc.body,
    attachments: doc.attachments === null ? null : doc.attachments.map(commandAttachment),
  }));
  return { kind: 'documents', requestId, newEdits: request.newEdits, docs };
}

/** Builds the `purge` command of a purge request (the HTTP layer's `PurgeRequest`). */
export function purgeCommand(
  requestId: string,
  request: { readonly docs: readonly PurgeItem[] },
): PurgeCommand {
  const docs = request.docs.map((doc) => ({ uuid: doc.uuid, id: doc.id, revs: [...doc.revs] }));
  return { kind: 'purge', requestId, docs };
}
