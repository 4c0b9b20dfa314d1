/**
 * The byte layout of a block file: block and marker constants, record framing, the header
 * format, and the mapping between logical bytes (what a record holds) and physical bytes
 * (what the file holds, with a marker byte at every block start). docs/file-format.md
 * describes the same layout for readers of the file.
 *
 * Invariants: a block is BLOCK_SIZE bytes and its first byte is a marker, MARKER_HEADER where
 * a header starts and MARKER_DATA everywhere else, so a header marker never appears inside a
 * record. A record pointer is the physical offset of the record's first logical byte and is
 * never at a block start.
 */
import { crc32c } from '@node-rs/crc32';
import { assert } from '../util/assert.js';

export const BLOCK_SIZE = 4096;
export const MARKER_DATA = 0x00;
export const MARKER_HEADER = 0x01;
/** Logical bytes a block holds after its marker. */
export const BLOCK_PAYLOAD_BYTES = BLOCK_SIZE - 1;

/** Record frame: u32 payload length, u32 CRC32C of the length bytes and the payload. */
export const RECORD_PREFIX_BYTES = 8;
/** Largest record payload, so lengths fit in 31 bits and a record fits in one Buffer. */
export const MAX_RECORD_BYTES = 2 ** 30;

/** "DIVN" in ASCII, the first four logical bytes of every header. */
export const HEADER_MAGIC = 0x4449564e;
/** Version of the block file format; docs/file-format.md documents version 1. */
export const FORMAT_VERSION = 1;
/** Logical bytes of a header before its payload. */
export const HEADER_FIXED_BYTES = 36;
/** Offset of the header checksum, which covers the bytes before it and the payload. */
const HEADER_CHECKSUM_OFFSET = 32;

/** How a commit makes its data durable; stored in every header. */
export type CommitDiscipline = 'two-fsync' | 'one-fsync';
const DISCIPLINE_CODES: Record<CommitDiscipline, number> = { 'two-fsync': 1, 'one-fsync': 2 };

assert(BLOCK_SIZE % 512 === 0, 'a block is a whole number of disk sectors');
assert(HEADER_FIXED_BYTES + 1 < BLOCK_SIZE, 'the fixed header part fits in its first block');
assert(MAX_RECORD_BYTES < 2 ** 31, 'record lengths fit in 31 bits');

/**
 * Returns the number of physical bytes that `logicalLength` logical bytes occupy when they
 * start at physical `position`, counting the markers of the block starts they cross. A
 * `position` at a block start counts the marker there too.
 */
export function physicalLength(position: number, logicalLength: number): number {
  if (logicalLength === 0) return 0;
  const inBlock = position % BLOCK_SIZE;
  const firstBlockRoom = inBlock === 0 ? 0 : BLOCK_SIZE - inBlock;
  if (logicalLength <= firstBlockRoom) return logicalLength;
  const rest = logicalLength - firstBlockRoom;
  return logicalLength + Math.ceil(rest / BLOCK_PAYLOAD_BYTES);
}

/**
 * Copies `length` logical bytes starting at physical `position` out of `physical`, a buffer
 * holding the file's bytes from physical offset `physicalStart`. Returns false if a marker
 * in the span is not MARKER_DATA, which the caller reports as corruption; true otherwise.
 */
export function copyLogical(
  physical: Buffer,
  physicalStart: number,
  position: number,
  length: number,
  target: Buffer,
  targetOffset: number,
): boolean {
  let source = position - physicalStart;
  let filePosition = position;
  let copied = 0;
  while (copied < length) {
    if (filePosition % BLOCK_SIZE === 0) {
      if (physical[source] !== MARKER_DATA) return false;
      source += 1;
      filePosition += 1;
      continue;
    }
    const count = Math.min(BLOCK_SIZE - (filePosition % BLOCK_SIZE), length - copied);
    physical.copy(target, targetOffset + copied, source, source + count);
    copied += count;
    source += count;
    filePosition += count;
  }
  return true;
}

/**
 * Moves the logical bytes of a record to the front of `physical`, which holds `span` of the
 * record's physical bytes from its pointer on, dropping the marker at each block start.
 * Returns the number of logical bytes. The markers must have been checked before.
 */
export function compactLogical(physical: Buffer, pointer: number, span: number): number {
  let source = BLOCK_SIZE - (pointer % BLOCK_SIZE);
  let target = source;
  while (source < span) {
    source += 1;
    const count = Math.min(BLOCK_PAYLOAD_BYTES, span - source);
    physical.copyWithin(target, source, source + count);
    target += count;
    source += count;
  }
  return Math.min(target, span);
}

/** Returns the CRC32C of a record's length bytes and payload. */
export function recordChecksum(lengthBytes: Buffer, payload: Uint8Array): number {
  return crc32c(payload, lengthChecksum(lengthBytes.readUInt32BE(0)));
}

/** Reflected CRC32C (Castagnoli) polynomial. */
const CRC32C_POLYNOMIAL = 0x82f63b78;
const CRC32C_TABLE = crc32cTable();

function crc32cTable(): Uint32Array {
  const table = new Uint32Array(256);
  for (let byte = 0; byte < 256; byte++) {
    let crc = byte;
    for (let bit = 0; bit < 8; bit++) crc = crc & 1 ? (crc >>> 1) ^ CRC32C_POLYNOMIAL : crc >>> 1;
    table[byte] = crc;
  }
  return table;
}

/**
 * Returns the CRC32C of a record length written as 4 big-endian bytes, the value that
 * `crc32c` continues from over the payload. Computed here, because a native call for four
 * bytes costs more than the table lookups.
 */
export function lengthChecksum(length: number): number {
  let crc = 0xffffffff;
  for (let shift = 24; shift >= 0; shift -= 8) {
    crc = CRC32C_TABLE[(crc ^ (length >>> shift)) & 0xff]! ^ (crc >>> 8);
  }
  return (crc ^ 0xffffffff) >>> 0;
}

/**
 * Returns the index in the record's physical bytes (counted from its pointer) of logical
 * byte `offset`, skipping the marker at each block start the record crosses.
 */
export function physicalIndex(pointer: number, offset: number): number {
  const firstBlockRoom = BLOCK_SIZE - (pointer % BLOCK_SIZE);
  if (offset < firstBlockRoom) return offset;
  return offset + 1 + Math.floor((offset - firstBlockRoom) / BLOCK_PAYLOAD_BYTES);
}

/** The fields of a header; `position` and `end` are physical offsets in the file. */
export interface HeaderFields {
  discipline: CommitDiscipline;
  /** Commit counter, 1 for the header written at creation. */
  generation: number;
  /** Physical offset where the previous header ended; 0 for the first header. */
  regionStart: number;
  /** CRC32C of the physical bytes in [regionStart, header position); 0 with two-fsync. */
  regionChecksum: number;
  payload: Uint8Array;
}

/** Encodes a header's logical bytes (everything after its marker). */
export function encodeHeader(fields: HeaderFields): Buffer {
  const bytes = Buffer.alloc(HEADER_FIXED_BYTES + fields.payload.length);
  bytes.writeUInt32BE(HEADER_MAGIC, 0);
  bytes.writeUInt16BE(FORMAT_VERSION, 4);
  bytes.writeUInt8(DISCIPLINE_CODES[fields.discipline], 6);
  bytes.writeUInt8(0, 7);
  writeUInt64(bytes, fields.generation, 8);
  writeUInt64(bytes, fields.regionStart, 16);
  bytes.writeUInt32BE(fields.regionChecksum >>> 0, 24);
  bytes.writeUInt32BE(fields.payload.length, 28);
  bytes.set(fields.payload, HEADER_FIXED_BYTES);
  const checksum = crc32c(
    bytes.subarray(HEADER_FIXED_BYTES),
    crc32c(bytes.subarray(0, HEADER_CHECKSUM_OFFSET)),
  );
  bytes.writeUInt32BE(checksum >>> 0, HEADER_CHECKSUM_OFFSET);
  return bytes;
}

/** Result of reading the fixed part of a header candidate. */
export type HeaderPrefix =
  | { valid: false }
  | { valid: true; version: number; payloadLength: number };

/** Checks the magic number and reads the version and payload length of a header candidate. */
export function decodeHeaderPrefix(fixed: Buffer): HeaderPrefix {
  if (fixed.length < HEADER_FIXED_BYTES || fixed.readUInt32BE(0) !== HEADER_MAGIC) {
    return { valid: false };
  }
  return { valid: true, version: fixed.readUInt16BE(4), payloadLength: fixed.readUInt32BE(28) };
}

/**
 * Decodes and verifies a whole header (fixed part and payload, logical bytes). Returns
 * undefined when the checksum or a field does not verify.
 */
export function decodeHeader(bytes: Buffer): HeaderFields | undefined {
  const prefix = decodeHeaderPrefix(bytes);
  if (!prefix.valid || bytes.length !== HEADER_FIXED_BYTES + prefix.payloadLength) {
    return undefined;
  }
  const checksum = crc32c(
    bytes.subarray(HEADER_FIXED_BYTES),
    crc32c(bytes.subarray(0, HEADER_CHECKSUM_OFFSET)),
  );
  if (checksum >>> 0 !== bytes.readUInt32BE(HEADER_CHECKSUM_OFFSET)) return undefined;
  const code = bytes.readUInt8(6);
  const discipline = code === 1 ? 'two-fsync' : code === 2 ? 'one-fsync' : undefined;
  if (discipline === undefined) return undefined;
  return {
    discipline,
    generation: readUInt64(bytes, 8),
    regionStart: readUInt64(bytes, 16),
    regionChecksum: bytes.readUInt32BE(24),
    payload: bytes.subarray(HEADER_FIXED_BYTES),
  };
}

/** Writes a non-negative safe integer as 8 big-endian bytes. */
export function writeUInt64(target: Buffer, value: number, offset: number): void {
  assert(Number.isSafeInteger(value) && value >= 0, () => `not a u64-safe integer: ${value}`);
  target.writeUInt32BE(Math.floor(value / 2 ** 32), offset);
  target.writeUInt32BE(value % 2 ** 32, offset + 4);
}

/** Reads 8 big-endian bytes; values above 2^53 come back rounded (only corrupt data has them). */
export function readUInt64(source: Buffer, offset: number): number {
  return source.readUInt32BE(offset) * 2 ** 32 + source.readUInt32BE(offset + 4);
}
