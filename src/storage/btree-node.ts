/**
 * Encoding of B+tree nodes, read in place through `NodeView` without decoding whole nodes.
 *
 * Node: u8 kind (NODE_LEAF or NODE_INTERIOR), u32 entry count n, (n + 1) u32 offsets of the
 * entries from the node start (the last one is the node length), then the entries.
 * Leaf entry: u16 key length, key, u8 value tag, then for VALUE_INLINE the value bytes, for
 * VALUE_OUT_OF_LINE a u48 record pointer and a u32 value length.
 * Interior entry: u16 key length, the last key of the child, u48 child pointer, u48 entry
 * count of the child's subtree, u48 byte size of the subtree, then the child's encoded
 * reduction. Entries are sorted by key, and keys are unique within a leaf.
 */
import { assert } from '../util/assert.js';
import type { EncodedReductions } from './codecs.js';
import type { NodeAllocator } from './node-cache.js';

export const NODE_LEAF = 1;
export const NODE_INTERIOR = 2;
export const VALUE_INLINE = 0;
export const VALUE_OUT_OF_LINE = 1;

const KIND_BYTES = 1;
const COUNT_BYTES = 4;
export const OFFSET_BYTES = 4;
const NODE_PREFIX_BYTES = KIND_BYTES + COUNT_BYTES;
export const KEY_LENGTH_BYTES = 2;
const TAG_BYTES = 1;
/** Width of pointers, counts and sizes in entries: 48 bits address 256 TiB. */
const U48_BYTES = 6;
const OUT_OF_LINE_BYTES = TAG_BYTES + U48_BYTES + 4;
const CHILD_FIXED_BYTES = 3 * U48_BYTES;
/** Minimum number of entries in a node that a split writes. */
const MIN_RUN_ENTRIES = 2;
/** Maximum key length in bytes. */
export const MAX_KEY_BYTES = 2 ** (8 * KEY_LENGTH_BYTES) - 1;

/** The fields of an interior entry, decoded. */
export interface ChildReference {
  lastKey: Buffer;
  pointer: number;
  count: number;
  sizeBytes: number;
  reduction: Buffer;
}

/** Read-only access to an encoded node. */
export class NodeView {
  readonly kind: number;
  readonly count: number;

  constructor(readonly bytes: Buffer) {
    this.kind = bytes[0]!;
    this.count = entryCount(bytes);
  }

  get isLeaf(): boolean {
    return this.kind === NODE_LEAF;
  }

  entryStart(index: number): number {
    return entryStartAt(this.bytes, index);
  }

  /** Returns the whole encoded entry, to copy unchanged into a rewritten node. */
  entry(index: number): Buffer {
    return this.bytes.subarray(this.entryStart(index), this.entryStart(index + 1));
  }

  keyStart(index: number): number {
    return this.entryStart(index) + KEY_LENGTH_BYTES;
  }

  keyEnd(index: number): number {
    const start = this.entryStart(index);
    return start + KEY_LENGTH_BYTES + this.bytes.readUInt16BE(start);
  }

  key(index: number): Buffer {
    return this.bytes.subarray(this.keyStart(index), this.keyEnd(index));
  }

  /** Value tag of a leaf entry. */
  valueTag(index: number): number {
    return this.bytes[this.keyEnd(index)]!;
  }

  /** Inline value bytes of a leaf entry. */
  inlineValue(index: number): Buffer {
    return this.bytes.subarray(this.inlineValueStart(index), this.entryStart(index + 1));
  }

  /** Returns the offset in `bytes` where a leaf entry's inline value starts. */
  inlineValueStart(index: number): number {
    return this.keyEnd(index) + TAG_BYTES;
  }

  /** Record pointer and length of an out-of-line leaf value. */
  outOfLineValue(index: number): { pointer: number; length: number } {
    const at = this.keyEnd(index) + TAG_BYTES;
    return {
      pointer: this.bytes.readUIntBE(at, U48_BYTES),
      length: this.bytes.readUInt32BE(at + U48_BYTES),
    };
  }

  /** Bytes outside the node that a leaf entry's value occupies. */
  outOfLineBytes(index: number): number {
    return this.valueTag(index) === VALUE_OUT_OF_LINE ? this.outOfLineValue(index).length : 0;
  }

  childPointer(index: number): number {
    return childPointerAt(this.bytes, index);
  }

  child(index: number): ChildReference {
    return decodeChildEntry(this.entry(index));
  }
}

// The functions below read encoded nodes byte by byte: searches run them for every entry
// they compare, and plain element reads cost less there than Buffer's checked readers.

/** Returns the number of entries of an encoded node. */
export function entryCount(node: Buffer): number {
  return readUInt32(node, KIND_BYTES);
}

/** Returns the offset of entry `index` from the node start. */
export function entryStartAt(node: Buffer, index: number): number {
  return readUInt32(node, NODE_PREFIX_BYTES + index * OFFSET_BYTES);
}

/** Returns the child pointer of interior entry `index`. */
export function childPointerAt(node: Buffer, index: number): number {
  const start = entryStartAt(node, index);
  const at = start + KEY_LENGTH_BYTES + ((node[start]! << 8) | node[start + 1]!);
  return readUInt32(node, at) * 2 ** 16 + ((node[at + 4]! << 8) | node[at + 5]!);
}

/**
 * Returns the subtree size in bytes of interior entry `index`: at least the child node's own
 * length, so it bounds how much to read for it.
 */
export function childSizeAt(node: Buffer, index: number): number {
  const start = entryStartAt(node, index);
  const at = start + KEY_LENGTH_BYTES + ((node[start]! << 8) | node[start + 1]!) + 2 * U48_BYTES;
  return readUInt32(node, at) * 2 ** 16 + ((node[at + 4]! << 8) | node[at + 5]!);
}

/** Compares the key of entry `index` with `key` bytewise: negative, zero or positive. */
export function compareKeyAt(node: Buffer, index: number, key: Buffer): number {
  const start = entryStartAt(node, index);
  const keyStart = start + KEY_LENGTH_BYTES;
  return compareBytes(node, keyStart, keyStart + ((node[start]! << 8) | node[start + 1]!), key);
}

/**
 * Returns the index of the first entry in [low, count) whose key is at least `key` in
 * bytewise order, or `count` if there is none.
 */
export function lowerBoundKey(node: Buffer, count: number, key: Buffer, low: number): number {
  let high = count;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (compareKeyAt(node, middle, key) < 0) low = middle + 1;
    else high = middle;
  }
  return low;
}

/**
 * Compares `bytes[start, end)` with `key` bytewise. Four bytes at a time while both have
 * them, because keys usually differ early and a native call costs more than this loop.
 */
export function compareBytes(bytes: Buffer, start: number, end: number, key: Buffer): number {
  const length = Math.min(end - start, key.length);
  let offset = 0;
  for (; offset + 4 <= length; offset += 4) {
    const difference = readUInt32(bytes, start + offset) - readUInt32(key, offset);
    if (difference !== 0) return difference;
  }
  for (; offset < length; offset++) {
    const difference = bytes[start + offset]! - key[offset]!;
    if (difference !== 0) return difference;
  }
  return end - start - key.length;
}

function readUInt32(bytes: Buffer, at: number): number {
  return bytes[at]! * 2 ** 24 + ((bytes[at + 1]! << 16) | (bytes[at + 2]! << 8) | bytes[at + 3]!);
}

/** One change to a node's entries: `removeCount` entries from `position` on give way to `inserts`. */
export interface NodeEdit {
  position: number;
  removeCount: number;
  inserts: EntryList;
}

/**
 * Encodes a copy of `node` in which the `removeCount` entries from `position` on are replaced
 * by `insert` (one encoded entry) or by nothing.
 */
export function spliceNode(
  node: Buffer,
  position: number,
  removeCount: number,
  insert: Buffer | undefined,
  allocator?: NodeAllocator,
): Buffer {
  const inserts = new EntryList();
  if (insert !== undefined) inserts.push(insert);
  return editNode(node, [{ position, removeCount, inserts }], allocator);
}

/**
 * Returns the length of the node that `editNode` would encode, so a caller can check it
 * against the node size target first.
 */
export function editedLength(node: Buffer, edits: readonly NodeEdit[]): number {
  let length = node.length;
  for (const edit of edits) {
    const insertCount = edit.inserts.length;
    length += (insertCount - edit.removeCount) * OFFSET_BYTES;
    length -=
      entryStartAt(node, edit.position + edit.removeCount) - entryStartAt(node, edit.position);
    for (let index = 0; index < insertCount; index++) {
      length += edit.inserts.end(index) - edit.inserts.start(index);
    }
  }
  return length;
}

/**
 * Encodes a copy of `node` with `edits` applied; edits are sorted by position and do not
 * overlap. Unchanged entries are copied as byte ranges and their offsets shifted, so no entry
 * is decoded. The result equals encoding the edited entry list (`encodeNode`).
 */
export function editNode(
  node: Buffer,
  edits: readonly NodeEdit[],
  allocator?: NodeAllocator,
): Buffer {
  const count = entryCount(node);
  let newCount = count;
  for (const edit of edits) newCount += edit.inserts.length - edit.removeCount;
  const length = editedLength(node, edits);
  const edited =
    allocator === undefined ? Buffer.allocUnsafeSlow(length) : allocator.allocate(length);
  edited[0] = node[0]!;
  writeUInt32(edited, KIND_BYTES, newCount);
  let at = NODE_PREFIX_BYTES + (newCount + 1) * OFFSET_BYTES;
  let next = 0;
  let unchanged = 0;
  for (const edit of edits) {
    assert(edit.position >= unchanged, 'node edits are sorted and do not overlap');
    at = copyEntries(node, unchanged, edit.position, edited, next, at);
    next += edit.position - unchanged;
    for (let index = 0; index < edit.inserts.length; index++) {
      writeUInt32(edited, offsetAt(next), at);
      next += 1;
      const source = edit.inserts.buffer(index);
      at += source.copy(edited, at, edit.inserts.start(index), edit.inserts.end(index));
    }
    unchanged = edit.position + edit.removeCount;
  }
  at = copyEntries(node, unchanged, count, edited, next, at);
  writeUInt32(edited, offsetAt(newCount), at);
  assert(at === length, 'an edited node has the length computed for it');
  return edited;
}

/**
 * Copies entries [from, to) of `node` to `target` at byte `at` as entries `next` on, writing
 * their offsets. Returns the byte offset after them.
 */
function copyEntries(
  node: Buffer,
  from: number,
  to: number,
  target: Buffer,
  next: number,
  at: number,
): number {
  if (from === to) return at;
  const start = entryStartAt(node, from);
  const shift = at - start;
  for (let index = from; index < to; index++) {
    writeUInt32(target, offsetAt(next + index - from), entryStartAt(node, index) + shift);
  }
  return at + node.copy(target, at, start, entryStartAt(node, to));
}

/** Returns the encoded reduction of interior entry `index`, a view of the node's bytes. */
export function childReductionAt(node: Buffer, index: number): Buffer {
  return node.subarray(childReductionStart(node, index), entryStartAt(node, index + 1));
}

/** Returns the reductions of an interior node's children, read in place. */
export function childReductions(node: Buffer): EncodedReductions {
  return {
    length: entryCount(node),
    bytes: node,
    start: (index) => childReductionStart(node, index),
    end: (index) => entryStartAt(node, index + 1),
  };
}

function childReductionStart(node: Buffer, index: number): number {
  const start = entryStartAt(node, index);
  return start + KEY_LENGTH_BYTES + ((node[start]! << 8) | node[start + 1]!) + CHILD_FIXED_BYTES;
}

/** Sums the entry counts and subtree sizes of an interior node's children. */
export function childTotals(node: Buffer): { count: number; sizeBytes: number } {
  let count = 0;
  let sizeBytes = 0;
  const entries = entryCount(node);
  for (let index = 0; index < entries; index++) {
    const start = entryStartAt(node, index);
    const at = start + KEY_LENGTH_BYTES + ((node[start]! << 8) | node[start + 1]!) + U48_BYTES;
    count += readUInt48(node, at);
    sizeBytes += readUInt48(node, at + U48_BYTES);
  }
  return { count, sizeBytes };
}

/** Bytes outside the node that the value of an encoded leaf entry occupies. */
export function entryOutOfLineBytes(entry: Buffer): number {
  const at = KEY_LENGTH_BYTES + ((entry[0]! << 8) | entry[1]!);
  if (entry[at] !== VALUE_OUT_OF_LINE) return 0;
  return readUInt32(entry, at + TAG_BYTES + U48_BYTES);
}

function offsetAt(index: number): number {
  return NODE_PREFIX_BYTES + index * OFFSET_BYTES;
}

function writeUInt32(bytes: Buffer, at: number, value: number): void {
  bytes[at] = value >>> 24;
  bytes[at + 1] = value >>> 16;
  bytes[at + 2] = value >>> 8;
  bytes[at + 3] = value;
}

/** Encodes a leaf entry holding an inline value. */
export function encodeInlineEntry(key: Buffer, value: Uint8Array): Buffer {
  checkKeyLength(key);
  const entry = Buffer.allocUnsafe(KEY_LENGTH_BYTES + key.length + TAG_BYTES + value.length);
  entry.writeUInt16BE(key.length, 0);
  key.copy(entry, KEY_LENGTH_BYTES);
  entry[KEY_LENGTH_BYTES + key.length] = VALUE_INLINE;
  entry.set(value, KEY_LENGTH_BYTES + key.length + TAG_BYTES);
  return entry;
}

/** Encodes a leaf entry whose value is the record at `pointer`, `length` bytes long. */
export function encodeOutOfLineEntry(key: Buffer, pointer: number, length: number): Buffer {
  checkKeyLength(key);
  const entry = Buffer.allocUnsafe(KEY_LENGTH_BYTES + key.length + OUT_OF_LINE_BYTES);
  entry.writeUInt16BE(key.length, 0);
  key.copy(entry, KEY_LENGTH_BYTES);
  let at = KEY_LENGTH_BYTES + key.length;
  entry[at] = VALUE_OUT_OF_LINE;
  at += TAG_BYTES;
  entry.writeUIntBE(pointer, at, U48_BYTES);
  entry.writeUInt32BE(length, at + U48_BYTES);
  return entry;
}

/** Encodes an interior entry. */
export function encodeChildEntry(child: ChildReference): Buffer {
  const { lastKey, reduction } = child;
  checkKeyLength(lastKey);
  const entry = Buffer.allocUnsafe(
    KEY_LENGTH_BYTES + lastKey.length + CHILD_FIXED_BYTES + reduction.length,
  );
  entry.writeUInt16BE(lastKey.length, 0);
  lastKey.copy(entry, KEY_LENGTH_BYTES);
  let at = KEY_LENGTH_BYTES + lastKey.length;
  entry.writeUIntBE(child.pointer, at, U48_BYTES);
  entry.writeUIntBE(child.count, at + U48_BYTES, U48_BYTES);
  entry.writeUIntBE(child.sizeBytes, at + 2 * U48_BYTES, U48_BYTES);
  at += CHILD_FIXED_BYTES;
  reduction.copy(entry, at);
  return entry;
}

export function decodeChildEntry(entry: Buffer): ChildReference {
  const keyLength = entry.readUInt16BE(0);
  const at = KEY_LENGTH_BYTES + keyLength;
  return {
    lastKey: entry.subarray(KEY_LENGTH_BYTES, at),
    pointer: entry.readUIntBE(at, U48_BYTES),
    count: entry.readUIntBE(at + U48_BYTES, U48_BYTES),
    sizeBytes: entry.readUIntBE(at + 2 * U48_BYTES, U48_BYTES),
    reduction: entry.subarray(at + CHILD_FIXED_BYTES),
  };
}

/**
 * Sorted entries waiting to be written, each a byte range of some buffer (a node being
 * rewritten or a new entry), so that copying entries allocates no Buffer per entry.
 */
export class EntryList {
  readonly #buffers: Buffer[] = [];
  readonly #starts: number[] = [];
  readonly #ends: number[] = [];

  get length(): number {
    return this.#starts.length;
  }

  push(buffer: Buffer, start = 0, end = buffer.length): void {
    this.#buffers.push(buffer);
    this.#starts.push(start);
    this.#ends.push(end);
  }

  /** Appends the entries [from, to) of a node unchanged. */
  pushFromNode(view: NodeView, from: number, to: number): void {
    let start = from < to ? view.entryStart(from) : 0;
    for (let index = from; index < to; index++) {
      const end = view.entryStart(index + 1);
      this.push(view.bytes, start, end);
      start = end;
    }
  }

  /** Appends every entry of another list. */
  pushAll(other: EntryList): void {
    for (let index = 0; index < other.length; index++) {
      this.push(other.buffer(index), other.start(index), other.end(index));
    }
  }

  buffer(index: number): Buffer {
    return this.#buffers[index]!;
  }

  start(index: number): number {
    return this.#starts[index]!;
  }

  end(index: number): number {
    return this.#ends[index]!;
  }

  /** Key of the entry at `index`, as a view. */
  key(index: number): Buffer {
    const buffer = this.#buffers[index]!;
    const start = this.#starts[index]! + KEY_LENGTH_BYTES;
    return buffer.subarray(start, start + buffer.readUInt16BE(start - KEY_LENGTH_BYTES));
  }

  /** Offset of the bytes after the key of the entry at `index`, within its buffer. */
  afterKey(index: number): number {
    const buffer = this.#buffers[index]!;
    const start = this.#starts[index]!;
    return start + KEY_LENGTH_BYTES + buffer.readUInt16BE(start);
  }
}

/**
 * Encodes a node from the sorted entries [from, to) of `entries`, into a buffer from
 * `allocator` when one is given.
 */
export function encodeNode(
  kind: number,
  entries: EntryList,
  from = 0,
  to = entries.length,
  allocator?: NodeAllocator,
): Buffer {
  const count = to - from;
  const offsetsBytes = (count + 1) * OFFSET_BYTES;
  let length = NODE_PREFIX_BYTES + offsetsBytes;
  for (let index = from; index < to; index++) length += entries.end(index) - entries.start(index);
  const node =
    allocator === undefined ? Buffer.allocUnsafeSlow(length) : allocator.allocate(length);
  node[0] = kind;
  node.writeUInt32BE(count, KIND_BYTES);
  let at = NODE_PREFIX_BYTES + offsetsBytes;
  let index = from;
  while (index < to) {
    // Entries adjacent in one source buffer (an unchanged stretch of a node) take one copy.
    const buffer = entries.buffer(index);
    const start = entries.start(index);
    let end = entries.end(index);
    node.writeUInt32BE(at, NODE_PREFIX_BYTES + (index - from) * OFFSET_BYTES);
    index += 1;
    while (index < to && entries.buffer(index) === buffer && entries.start(index) === end) {
      node.writeUInt32BE(at + end - start, NODE_PREFIX_BYTES + (index - from) * OFFSET_BYTES);
      end = entries.end(index);
      index += 1;
    }
    at += buffer.copy(node, at, start, end);
  }
  node.writeUInt32BE(at, NODE_PREFIX_BYTES + count * OFFSET_BYTES);
  assert(at === length, 'node length matches its entries');
  return node;
}

/**
 * Splits sorted entries into runs whose encoded nodes are about `targetBytes` each: the number
 * of runs is the total size divided by the target, rounded up, and each run is filled to an
 * equal share. Every run contains at least MIN_RUN_ENTRIES entries (when there are that many), so
 * building interior levels always ends with one root; an entry larger than the target thus
 * shares an oversized node. Returns the end index of each run.
 */
export function splitEntries(entries: EntryList, targetBytes: number): number[] {
  const count = entries.length;
  let total = NODE_PREFIX_BYTES + OFFSET_BYTES;
  for (let index = 0; index < count; index++) {
    total += entries.end(index) - entries.start(index) + OFFSET_BYTES;
  }
  if (total <= targetBytes || count < 2 * MIN_RUN_ENTRIES) return [count];
  const runCount = Math.min(Math.ceil(total / targetBytes), Math.floor(count / MIN_RUN_ENTRIES));
  const share = total / runCount;
  const ends: number[] = [];
  let runEntries = 0;
  let runBytes = NODE_PREFIX_BYTES + OFFSET_BYTES;
  for (let index = 0; index < count; index++) {
    const entryBytes = entries.end(index) - entries.start(index) + OFFSET_BYTES;
    if (
      runEntries >= MIN_RUN_ENTRIES &&
      runBytes + entryBytes > share &&
      ends.length < runCount - 1 &&
      count - index >= MIN_RUN_ENTRIES
    ) {
      ends.push(index);
      runEntries = 0;
      runBytes = NODE_PREFIX_BYTES + OFFSET_BYTES;
    }
    runEntries += 1;
    runBytes += entryBytes;
  }
  ends.push(count);
  return ends;
}

/** Reads the count and size fields of an interior entry in place. */
export function childCountAndSize(
  entries: EntryList,
  index: number,
): { count: number; sizeBytes: number } {
  const buffer = entries.buffer(index);
  const at = entries.afterKey(index) + U48_BYTES;
  return { count: readUInt48(buffer, at), sizeBytes: readUInt48(buffer, at + U48_BYTES) };
}

function readUInt48(bytes: Buffer, at: number): number {
  return readUInt32(bytes, at) * 2 ** 16 + ((bytes[at + 4]! << 8) | bytes[at + 5]!);
}

/** Reads the encoded reduction of an interior entry in place. */
export function childReduction(entries: EntryList, index: number): Buffer {
  return entries
    .buffer(index)
    .subarray(entries.afterKey(index) + CHILD_FIXED_BYTES, entries.end(index));
}

/** Bytes outside the node that the value of leaf entry `index` occupies. */
export function outOfLineLength(entries: EntryList, index: number): number {
  const buffer = entries.buffer(index);
  const at = entries.afterKey(index);
  if (buffer[at] !== VALUE_OUT_OF_LINE) return 0;
  return buffer.readUInt32BE(at + TAG_BYTES + U48_BYTES);
}

function checkKeyLength(key: Buffer): void {
  assert(key.length <= MAX_KEY_BYTES, () => `key of ${key.length} bytes exceeds ${MAX_KEY_BYTES}`);
}
