/**
 * The engine's header: the payload of every block file header of a database file. One header
 * write commits everything it names at once: the tree roots, the document counters, and the
 * Raft group's hard state, applied index, discard point and hash chain.
 *
 * Encoding, version 1. Varints and strings are as in doc-info.ts. Each root is an `encodeRoot`
 * value of src/storage/btree.ts preceded by its byte length, 0 for an empty tree:
 *
 *   version:u8 uuid:16 bytes name:string
 *   updateSeq purgeSeq purgedInfosLimit revsLimit compactedSeq requestRetention   (varints)
 *   securityPointer:varint securityLength:varint          (pointer 0: never set, `{}`)
 *   term:varint vote:string commit:varint                  (Raft hard state)
 *   voters learners votersOutgoing                         (count:varint, then strings)
 *   appliedIndex appliedTerm discardedIndex discardedTerm  (varints)
 *   hashChain:(length:varint bytes)
 *   8 roots: by_id by_seq local purge purge_seq raft requests request_index
 *
 * A version this code does not know raises `EngineFormatError`. New fields go at the end under
 * a new version, so that newer code still reads version 1.
 */
import { ByteReader, ByteWriter } from '../document/bytes.js';
import type { HardState, Membership } from '../raft/types.js';
import { decodeRoot, encodeRoot, type TreeRoot } from '../storage/btree.js';
import { assert } from '../util/assert.js';
import { type RecordRef, readString, writeString } from './doc-info.js';
import type { LogPosition } from './stored-entry.js';

export const ENGINE_HEADER_VERSION = 1;
export const UUID_BYTES = 16;

export const TREE_NAMES = [
  'byId',
  'bySeq',
  'local',
  'purge',
  'purgeSeq',
  'log',
  'requests',
  'requestIndex',
] as const;

export type TreeName = (typeof TREE_NAMES)[number];

export type TreeRoots = Readonly<Record<TreeName, TreeRoot | null>>;

/** Everything the header records besides the tree roots. */
export interface HeaderFields {
  /** 32 lowercase hex digits, the same on every replica of the database. */
  readonly uuid: string;
  readonly name: string;
  readonly updateSeq: number;
  readonly purgeSeq: number;
  readonly purgedInfosLimit: number;
  readonly revsLimit: number;
  readonly compactedSeq: number;
  /** Window, in applied entries, in which a retried request id gets its outcome (`DatabaseFile`). */
  readonly requestRetention: number;
  /** The `_security` object's record, or null when never set. */
  readonly security: RecordRef | null;
  readonly hardState: HardState;
  readonly membership: Membership;
  /** The last applied entry; `{0, 0}` before the first. */
  readonly applied: LogPosition;
  /** The last entry discarded from the log; `{0, 0}` before the first discard. */
  readonly discarded: LogPosition;
  readonly hashChain: Buffer;
}

export interface EngineHeader {
  readonly fields: HeaderFields;
  readonly roots: TreeRoots;
}

/** A database file's header that this version of Divan cannot read. */
export class EngineFormatError extends Error {
  override readonly name = 'EngineFormatError';
}

function writeNames(writer: ByteWriter, names: readonly string[]): void {
  writer.writeVarint(names.length);
  for (const name of names) writeString(writer, name);
}

function readNames(reader: ByteReader): string[] {
  const count = reader.readVarint();
  const names: string[] = [];
  for (let i = 0; i < count; i++) names.push(readString(reader));
  return names;
}

function writePosition(writer: ByteWriter, position: LogPosition): void {
  writer.writeVarint(position.index);
  writer.writeVarint(position.term);
}

function readPosition(reader: ByteReader): LogPosition {
  return { index: reader.readVarint(), term: reader.readVarint() };
}

/** Writes the Raft group's part: hard state, membership, applied and discarded entries, chain. */
function writeRaftFields(writer: ByteWriter, fields: HeaderFields): void {
  writer.writeVarint(fields.hardState.term);
  writeString(writer, fields.hardState.vote);
  writer.writeVarint(fields.hardState.commit);

  writeNames(writer, fields.membership.voters);
  writeNames(writer, fields.membership.learners);
  writeNames(writer, fields.membership.votersOutgoing);

  writePosition(writer, fields.applied);
  writePosition(writer, fields.discarded);
  writer.writeVarint(fields.hashChain.length);
  writer.writeBytes(fields.hashChain);
}

export function encodeHeader(header: EngineHeader): Buffer {
  const { fields, roots } = header;
  const writer = new ByteWriter(512);
  writer.writeByte(ENGINE_HEADER_VERSION);
  assert(/^[0-9a-f]{32}$/.test(fields.uuid), () => `invalid database uuid ${fields.uuid}`);
  writer.writeHex(fields.uuid);
  writeString(writer, fields.name);

  writer.writeVarint(fields.updateSeq);
  writer.writeVarint(fields.purgeSeq);
  writer.writeVarint(fields.purgedInfosLimit);
  writer.writeVarint(fields.revsLimit);
  writer.writeVarint(fields.compactedSeq);
  writer.writeVarint(fields.requestRetention);
  writer.writeVarint(fields.security?.pointer ?? 0);
  writer.writeVarint(fields.security?.length ?? 0);

  writeRaftFields(writer, fields);

  for (const name of TREE_NAMES) {
    const root = encodeRoot(roots[name]);
    writer.writeVarint(root.length);
    writer.writeBytes(root);
  }
  return writer.finish();
}

type RaftFields = Pick<
  HeaderFields,
  'hardState' | 'membership' | 'applied' | 'discarded' | 'hashChain'
>;

function readRaftFields(reader: ByteReader): RaftFields {
  const hardState = {
    term: reader.readVarint(),
    vote: readString(reader),
    commit: reader.readVarint(),
  };
  const membership = {
    voters: readNames(reader),
    learners: readNames(reader),
    votersOutgoing: readNames(reader),
  };
  const applied = readPosition(reader);
  const discarded = readPosition(reader);
  const hashChain = Buffer.from(reader.readBytes(reader.readVarint()));
  return { hardState, membership, applied, discarded, hashChain };
}

function readFields(reader: ByteReader): HeaderFields {
  const uuid = reader.readHex(UUID_BYTES);
  const name = readString(reader);

  const updateSeq = reader.readVarint();
  const purgeSeq = reader.readVarint();
  const purgedInfosLimit = reader.readVarint();
  const revsLimit = reader.readVarint();
  const compactedSeq = reader.readVarint();
  const requestRetention = reader.readVarint();
  const securityPointer = reader.readVarint();
  const securityLength = reader.readVarint();
  const security =
    securityPointer === 0 ? null : { pointer: securityPointer, length: securityLength };

  return {
    uuid,
    name,
    updateSeq,
    purgeSeq,
    purgedInfosLimit,
    revsLimit,
    compactedSeq,
    requestRetention,
    security,
    ...readRaftFields(reader),
  };
}

export function decodeHeader(bytes: Uint8Array): EngineHeader {
  const reader = new ByteReader(bytes);
  const version = reader.readByte();
  if (version !== ENGINE_HEADER_VERSION) {
    throw new EngineFormatError(
      `database header version ${version} is not ${ENGINE_HEADER_VERSION}; a newer Divan wrote this file`,
    );
  }
  const fields = readFields(reader);
  const roots: Partial<Record<TreeName, TreeRoot | null>> = {};
  for (const name of TREE_NAMES) {
    const length = reader.readVarint();
    roots[name] = decodeRoot(Buffer.from(reader.readBytes(length)));
  }
  assert(reader.remaining === 0, 'the database header has no trailing bytes');
  return { fields, roots: roots as TreeRoots };
}
