/**
 * The raft tree's value for a log entry, and its reduction (the first and last `{index, term}`).
 *
 * The key is the entry's index. A payload that decodes as a command is stored split: its
 * prefix inline, and each segment (document bodies, attachment objects, the security object)
 * as a record of its own. When the entry is applied, the document trees point at those
 * records, so a body is written to the file once. Any other payload (the leader's empty no-op, a
 * configuration entry, bytes that are not a command) is stored as it is.
 *
 * Value, version 1 (varints as in src/document/bytes.ts):
 *
 *   version:u8 term:varint type:u8 (0 normal, 1 config) form:u8
 *   form 0 (raw):   payload bytes to the end
 *   form 1 (split): prefixLength:varint prefix segmentCount:varint (pointer:varint length:varint)*
 *
 * `joinCommand` rebuilds a split payload byte for byte from the prefix and the segments.
 */
import { ByteReader, ByteWriter } from '../document/bytes.js';
import type { EntryType } from '../raft/types.js';
import type { Reducer, ValueCodec } from '../storage/codecs.js';
import { assert } from '../util/assert.js';
import type { RecordRef } from './doc-info.js';

const STORED_ENTRY_VERSION = 1;
const TYPE_NORMAL = 0;
const TYPE_CONFIG = 1;
const FORM_RAW = 0;
const FORM_SPLIT = 1;

export type StoredPayload =
  | { readonly form: 'raw'; readonly bytes: Buffer }
  | { readonly form: 'split'; readonly prefix: Buffer; readonly segments: readonly RecordRef[] };

export interface StoredEntry {
  readonly term: number;
  readonly type: EntryType;
  readonly payload: StoredPayload;
}

/**
 * A stored entry whose payload is decoded on first use: the raft tree's reduction reads only
 * the term of each entry in a leaf it rewrites.
 */
class EncodedEntry implements StoredEntry {
  readonly term: number;
  readonly type: EntryType;
  readonly #bytes: Buffer;
  readonly #payloadStart: number;
  #payload: StoredPayload | null = null;

  constructor(bytes: Buffer) {
    const reader = new ByteReader(bytes);
    const version = reader.readByte();
    assert(version === STORED_ENTRY_VERSION, () => `unknown stored entry version ${version}`);
    this.term = reader.readVarint();
    this.type = reader.readByte() === TYPE_CONFIG ? 'config' : 'normal';
    this.#bytes = bytes;
    this.#payloadStart = reader.position;
  }

  get payload(): StoredPayload {
    this.#payload ??= decodePayload(this.#bytes, this.#payloadStart);
    return this.#payload;
  }
}

function decodePayload(bytes: Buffer, start: number): StoredPayload {
  const reader = new ByteReader(bytes, start);
  const form = reader.readByte();
  if (form === FORM_RAW) return { form: 'raw', bytes: bytes.subarray(reader.position) };
  assert(form === FORM_SPLIT, () => `unknown stored entry form ${form}`);
  const prefixLength = reader.readVarint();
  const prefix = Buffer.from(reader.readBytes(prefixLength));
  const count = reader.readVarint();
  const segments: RecordRef[] = [];
  for (let i = 0; i < count; i++) {
    segments.push({ pointer: reader.readVarint(), length: reader.readVarint() });
  }
  assert(reader.remaining === 0, 'stored entry ends with its segments');
  return { form: 'split', prefix, segments };
}

export const storedEntryCodec: ValueCodec<StoredEntry> = {
  encode(entry) {
    const payload = entry.payload;
    const writer = new ByteWriter(
      payload.form === 'raw' ? 16 + payload.bytes.length : 32 + payload.prefix.length,
    );
    writer.writeByte(STORED_ENTRY_VERSION);
    writer.writeVarint(entry.term);
    writer.writeByte(entry.type === 'config' ? TYPE_CONFIG : TYPE_NORMAL);
    if (payload.form === 'raw') {
      writer.writeByte(FORM_RAW);
      writer.writeBytes(payload.bytes);
      return writer.finish();
    }
    writer.writeByte(FORM_SPLIT);
    writer.writeVarint(payload.prefix.length);
    writer.writeBytes(payload.prefix);
    writer.writeVarint(payload.segments.length);
    for (const segment of payload.segments) {
      writer.writeVarint(segment.pointer);
      writer.writeVarint(segment.length);
    }
    return writer.finish();
  },
  decode: (bytes) => new EncodedEntry(bytes),
};

/** An entry's position in the log. */
export interface LogPosition {
  readonly index: number;
  readonly term: number;
}

/** The raft tree's reduction; both positions are `{0, 0}` for an empty tree. */
export interface LogBounds {
  readonly first: LogPosition;
  readonly last: LogPosition;
}

const NO_POSITION: LogPosition = Object.freeze({ index: 0, term: 0 });
const EMPTY_BOUNDS: LogBounds = Object.freeze({ first: NO_POSITION, last: NO_POSITION });

export const logBoundsReducer: Reducer<number, StoredEntry, LogBounds> = {
  reduce: (entries) => {
    if (entries.length === 0) return EMPTY_BOUNDS;
    const last = entries.length - 1;
    return {
      first: { index: entries.key(0), term: entries.value(0).term },
      last: { index: entries.key(last), term: entries.value(last).term },
    };
  },
  rereduce: (reductions) => {
    const present = reductions.filter((bounds) => bounds.first.index !== 0);
    if (present.length === 0) return EMPTY_BOUNDS;
    return { first: present[0]!.first, last: present[present.length - 1]!.last };
  },
  rereduceEncoded: (reductions) => {
    // An empty subtree's bounds start with index 0, a varint of one zero byte.
    const { bytes } = reductions;
    const isEmpty = (index: number) => {
      assert(reductions.start(index) < reductions.end(index), 'raft bounds are not empty');
      return bytes[reductions.start(index)] === 0;
    };
    let first = 0;
    while (first < reductions.length && isEmpty(first)) first++;
    if (first === reductions.length) return EMPTY_BOUNDS;
    let last = reductions.length - 1;
    while (isEmpty(last)) last--;
    const decodeAt = (index: number) =>
      logBoundsReducer.decode(bytes.subarray(reductions.start(index), reductions.end(index)));
    return { first: decodeAt(first).first, last: decodeAt(last).last };
  },
  encode: (bounds) => {
    const writer = new ByteWriter(32);
    writer.writeVarint(bounds.first.index);
    writer.writeVarint(bounds.first.term);
    writer.writeVarint(bounds.last.index);
    writer.writeVarint(bounds.last.term);
    return writer.finish();
  },
  decode: (bytes) => {
    const reader = new ByteReader(bytes);
    const first = { index: reader.readVarint(), term: reader.readVarint() };
    return { first, last: { index: reader.readVarint(), term: reader.readVarint() } };
  },
};
