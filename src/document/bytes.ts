/**
 * Byte writer and reader for compact binary encodings (the revision tree codec and the leaf
 * value codecs the engine plugs into it).
 *
 * Varints are unsigned LEB128: seven bits per byte, least significant group first, the high
 * bit set on every byte but the last. They hold integers from 0 to 2^53 - 1 (at most 8 bytes).
 * The reader rejects overlong and out-of-range varints and reads past the end, by assertion:
 * encoded bytes come from Divan itself, so a failure means corruption or a bug.
 */
import { assert, InvariantError } from '../util/assert.js';

const VARINT_GROUP_BITS = 7;
const VARINT_GROUP = 0x80;
const VARINT_PAYLOAD_MASK = 0x7f;
/** 2^53 - 1 needs 53 bits, so 8 groups of 7. */
const VARINT_MAX_BYTES = 8;
const INITIAL_CAPACITY = 64;

export class ByteWriter {
  private buffer: Buffer;
  private length = 0;

  constructor(initialCapacity = INITIAL_CAPACITY) {
    this.buffer = Buffer.allocUnsafe(initialCapacity);
  }

  /** Bytes written so far. */
  get size(): number {
    return this.length;
  }

  private reserve(extra: number): void {
    const needed = this.length + extra;
    if (needed <= this.buffer.length) return;
    const grown = Buffer.allocUnsafe(Math.max(needed, this.buffer.length * 2));
    this.buffer.copy(grown, 0, 0, this.length);
    this.buffer = grown;
  }

  writeByte(byte: number): void {
    assert(Number.isInteger(byte) && byte >= 0 && byte <= 0xff, () => `invalid byte ${byte}`);
    this.reserve(1);
    this.buffer[this.length++] = byte;
  }

  writeVarint(value: number): void {
    assert(Number.isSafeInteger(value) && value >= 0, () => `invalid varint ${value}`);
    this.reserve(VARINT_MAX_BYTES);
    let rest = value;
    while (rest >= VARINT_GROUP) {
      this.buffer[this.length++] = (rest % VARINT_GROUP) | VARINT_GROUP;
      rest = Math.floor(rest / VARINT_GROUP);
    }
    this.buffer[this.length++] = rest;
  }

  writeBytes(bytes: Uint8Array): void {
    this.reserve(bytes.length);
    this.buffer.set(bytes, this.length);
    this.length += bytes.length;
  }

  /** Writes the UTF-8 bytes of `text` with no length prefix. */
  writeUtf8(text: string, byteLength = Buffer.byteLength(text)): void {
    this.reserve(byteLength);
    this.length += this.buffer.write(text, this.length, 'utf8');
  }

  /** Writes the bytes that an even-length hex string spells. */
  writeHex(hex: string): void {
    const byteLength = hex.length / 2;
    this.reserve(byteLength);
    const written = this.buffer.write(hex, this.length, 'hex');
    assert(written === byteLength, () => `invalid hex ${hex}`);
    this.length += written;
  }

  /** Returns the bytes written. The writer must not be used afterwards. */
  finish(): Buffer {
    return this.buffer.subarray(0, this.length);
  }
}

export class ByteReader {
  private offset: number;

  constructor(
    private readonly bytes: Uint8Array,
    start = 0,
    private readonly end = bytes.length,
  ) {
    this.offset = start;
  }

  get position(): number {
    return this.offset;
  }

  get remaining(): number {
    return this.end - this.offset;
  }

  readByte(): number {
    assert(this.offset < this.end, 'read past the end of an encoded value');
    return this.bytes[this.offset++]!;
  }

  readVarint(): number {
    let value = 0;
    let scale = 1;
    for (let count = 0; count < VARINT_MAX_BYTES; count++) {
      const byte = this.readByte();
      value += (byte & VARINT_PAYLOAD_MASK) * scale;
      if ((byte & VARINT_GROUP) === 0) {
        assert(count === 0 || byte !== 0, 'overlong varint');
        assert(Number.isSafeInteger(value), 'varint beyond 2^53 - 1');
        return value;
      }
      scale *= 2 ** VARINT_GROUP_BITS;
    }
    throw new InvariantError('varint longer than 8 bytes');
  }

  /** Returns the next `length` bytes (sharing memory with the input). */
  readBytes(length: number): Uint8Array {
    assert(
      length >= 0 && this.offset + length <= this.end,
      'read past the end of an encoded value',
    );
    const bytes = this.bytes.subarray(this.offset, this.offset + length);
    this.offset += length;
    return bytes;
  }

  readUtf8(length: number): string {
    const bytes = this.readBytes(length);
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('utf8');
  }

  readHex(length: number): string {
    const bytes = this.readBytes(length);
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('hex');
  }
}

/**
 * Reads `into.length` consecutive varints from `bytes[start, end)` into `into` and returns the
 * offset after them, with the checks of `ByteReader.readVarint`. It allocates nothing, so hot
 * paths can read a few fields of many encoded values in place.
 */
export function readVarintsAt(
  bytes: Uint8Array,
  start: number,
  end: number,
  into: number[],
): number {
  let at = start;
  for (let field = 0; field < into.length; field++) {
    let value = 0;
    let scale = 1;
    let count = 0;
    for (;;) {
      assert(at < end, 'read past the end of an encoded value');
      assert(count < VARINT_MAX_BYTES, 'varint longer than 8 bytes');
      const byte = bytes[at++]!;
      value += (byte & VARINT_PAYLOAD_MASK) * scale;
      if ((byte & VARINT_GROUP) === 0) {
        assert(count === 0 || byte !== 0, 'overlong varint');
        assert(Number.isSafeInteger(value), 'varint beyond 2^53 - 1');
        break;
      }
      scale *= 2 ** VARINT_GROUP_BITS;
      count++;
    }
    into[field] = value;
  }
  return at;
}
