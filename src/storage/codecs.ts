/**
 * Codecs that tell a B+tree how to order, encode and decode its keys and values, and how to
 * reduce them. A key codec whose `byteOrdered` is true promises that comparing encoded keys
 * bytewise gives the same order as `compare`, so the tree compares keys inside node buffers
 * without decoding them.
 *
 * Decoded byte keys and values are read-only views into cached node buffers: copy them before
 * keeping them past the next tree call or changing them.
 */
import { assert } from '../util/assert.js';

export interface KeyCodec<K> {
  /** Negative, zero or positive as `a` sorts before, equal to or after `b`. */
  compare(a: K, b: K): number;
  encode(key: K): Buffer;
  decode(bytes: Buffer): K;
  /** True when bytewise order of encodings equals `compare` order. */
  readonly byteOrdered: boolean;
}

export interface ValueCodec<V> {
  encode(value: V): Uint8Array;
  decode(bytes: Buffer): V;
}

/**
 * The entries a reduction covers, in key order. A key or value is decoded only when requested,
 * so a reducer that needs only the count, or only the first and last entries, decodes
 * nothing else.
 */
export interface ReduceEntries<K, V> {
  readonly length: number;
  key(index: number): K;
  value(index: number): V;
  /**
   * Calls `visit` with each entry's encoded value as `bytes[start, end)`, in order, so that a
   * reducer can read a few fields in place without decoding values. Optional.
   */
  forEachEncodedValue?(visit: (bytes: Buffer, start: number, end: number) => void): void;
}

/** Wraps decoded pairs as `ReduceEntries`. */
export function reduceEntriesOf<K, V>(pairs: ReadonlyArray<readonly [K, V]>): ReduceEntries<K, V> {
  return {
    length: pairs.length,
    key: (index) => pairs[index]![0],
    value: (index) => pairs[index]![1],
  };
}

/** Encoded reductions of an interior node's children, read where they lie in the node. */
export interface EncodedReductions {
  readonly length: number;
  readonly bytes: Buffer;
  /** Offset in `bytes` of reduction `index`. */
  start(index: number): number;
  /** Offset in `bytes` just past reduction `index`. */
  end(index: number): number;
}

/**
 * A user-defined reduction. `reduce` summarizes the entries of one leaf, and `rereduce`
 * combines summaries of sibling subtrees. Both must be pure, and `rereduce` must be
 * associative over the partitions the tree chooses. The tree stores encoded reductions in interior pointers.
 */
export interface Reducer<K, V, R> {
  reduce(entries: ReduceEntries<K, V>): R;
  rereduce(reductions: readonly R[]): R;
  /**
   * The `rereduce` of encoded reductions, read in place. When a reducer has it, the tree uses it
   * for every interior node it writes, so it must equal `rereduce` of the decoded reductions.
   */
  rereduceEncoded?(reductions: EncodedReductions): R;
  encode(reduction: R): Uint8Array;
  decode(bytes: Buffer): R;
}

export interface TreeCodec<K, V, R = undefined> {
  key: KeyCodec<K>;
  value: ValueCodec<V>;
  reducer?: Reducer<K, V, R>;
}

/** Strings ordered by their UTF-8 bytes (document ids), which is code point order. */
export const utf8StringKeys: KeyCodec<string> = {
  compare: (a, b) => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8')),
  encode: (key) => Buffer.from(key, 'utf8'),
  decode: (bytes) => bytes.toString('utf8'),
  byteOrdered: true,
};

/** Byte strings in bytewise order. */
export const bytesKeys: KeyCodec<Buffer> = {
  compare: (a, b) => Buffer.compare(a, b),
  encode: (key) => key,
  decode: (bytes) => bytes,
  byteOrdered: true,
};

/** Largest length byte of an unsigned integer key: 7 bytes hold every safe integer. */
const MAX_INTEGER_KEY_BYTES = 7;

/**
 * Unsigned safe integers (sequence numbers, log indexes) in numeric order, up to 2^53 - 1.
 * Encoding: one byte giving the number of significant bytes, then those bytes big-endian;
 * zero is the single byte 0. A shorter encoding is always a smaller number.
 */
export const unsignedIntegerKeys: KeyCodec<number> = {
  compare: (a, b) => a - b,
  encode: (key) => {
    assert(Number.isSafeInteger(key) && key >= 0, () => `not an unsigned safe integer: ${key}`);
    let length = 0;
    for (let rest = key; rest > 0; rest = Math.floor(rest / 256)) length += 1;
    const bytes = Buffer.allocUnsafe(1 + length);
    bytes[0] = length;
    writeBigEndian(bytes, key, 1, length);
    return bytes;
  },
  decode: (bytes) => {
    const length = bytes[0]!;
    assert(length <= MAX_INTEGER_KEY_BYTES && bytes.length === 1 + length, 'integer key encoding');
    return readBigEndian(bytes, 1, length);
  },
  byteOrdered: true,
};

/** Largest width `Buffer.writeUIntBE` accepts. */
const MAX_BUFFER_INT_BYTES = 6;

function writeBigEndian(target: Buffer, value: number, offset: number, length: number): void {
  if (length === 0) return;
  if (length <= MAX_BUFFER_INT_BYTES) {
    target.writeUIntBE(value, offset, length);
    return;
  }
  const low = 2 ** (8 * MAX_BUFFER_INT_BYTES);
  target.writeUIntBE(Math.floor(value / low), offset, length - MAX_BUFFER_INT_BYTES);
  target.writeUIntBE(value % low, offset + length - MAX_BUFFER_INT_BYTES, MAX_BUFFER_INT_BYTES);
}

function readBigEndian(source: Buffer, offset: number, length: number): number {
  if (length === 0) return 0;
  if (length <= MAX_BUFFER_INT_BYTES) return source.readUIntBE(offset, length);
  const high = source.readUIntBE(offset, length - MAX_BUFFER_INT_BYTES);
  const low = source.readUIntBE(offset + length - MAX_BUFFER_INT_BYTES, MAX_BUFFER_INT_BYTES);
  return high * 2 ** (8 * MAX_BUFFER_INT_BYTES) + low;
}

/** Values stored as their bytes. */
export const bytesValues: ValueCodec<Buffer> = {
  encode: (value) => value,
  decode: (bytes) => bytes,
};

/** Values stored as UTF-8 strings. */
export const stringValues: ValueCodec<string> = {
  encode: (value) => Buffer.from(value, 'utf8'),
  decode: (bytes) => bytes.toString('utf8'),
};

/** Values stored as JSON text. */
export const jsonValues: ValueCodec<unknown> = {
  encode: (value) => Buffer.from(JSON.stringify(value), 'utf8'),
  decode: (bytes) => JSON.parse(bytes.toString('utf8')) as unknown,
};

/** Bytes of an encoded count reduction: a 48-bit unsigned integer. */
const COUNT_BYTES = 6;

/** Counts entries; stored in 6 bytes. */
export const countReducer: Reducer<unknown, unknown, number> = {
  reduce: (entries) => entries.length,
  rereduce: (counts) => counts.reduce((sum, count) => sum + count, 0),
  encode: (count) => {
    const bytes = Buffer.allocUnsafe(COUNT_BYTES);
    bytes.writeUIntBE(count, 0, COUNT_BYTES);
    return bytes;
  },
  decode: (bytes) => bytes.readUIntBE(0, COUNT_BYTES),
  rereduceEncoded: (reductions) => {
    let sum = 0;
    for (let index = 0; index < reductions.length; index++) {
      const start = reductions.start(index);
      assert(reductions.end(index) - start >= COUNT_BYTES, 'a count reduction has 6 bytes');
      sum += reductions.bytes.readUIntBE(start, COUNT_BYTES);
    }
    return sum;
  },
};
