/**
 * Compact, deterministic binary encoding of a revision tree, generic over a leaf value codec
 * that the engine supplies. The same tree always encodes to the same bytes, so two replicas
 * that merge the same paths in the same order write byte-identical trees.
 *
 * Layout (varint = unsigned LEB128, see bytes.ts):
 *
 *   tree   := version:u8 rootCount:varint root*
 *   root   := position:varint node
 *   node   := revId childCount:varint [leafValue if childCount = 0] node*childCount
 *   revId  := tag:varint, then
 *               tag = 0:      16 raw bytes (an id of 32 hex digits, see rev.ts)
 *               tag = n + 1:  n bytes of UTF-8 text (any other id, the empty one included)
 *   leafValue := whatever `LeafValueCodec.encode` writes
 *
 * - `version` is 1 (`REV_TREE_ENCODING_VERSION`).
 * - Roots come in tree order (position, then id) and nodes in preorder, children in
 *   `compareRevIds` order. A child's position is its parent's plus one, so it is not stored.
 * - Interior nodes store no value (they have none; see rev-tree.ts).
 *
 * Example: the single revision `1-<32 hex>` with a leaf value V encodes as
 * `01 01 01 00 <16 bytes> 00 <V>`: version, one root, position 1, tag 0, the id, no children,
 * then V.
 *
 * Decoding checks the structure (lengths, child order, no trailing bytes) with assertions:
 * encoded trees come from Divan itself, so a failure means corruption or a bug.
 */
import { assert } from '../util/assert.js';
import { ByteReader, ByteWriter } from './bytes.js';
import { compareRevIds, isHexRevId, REV_ID_BINARY_BYTES } from './rev.js';
import type { RevNode, RevRoot, RevTree } from './rev-tree.js';

export const REV_TREE_ENCODING_VERSION = 1;

/** Tag of a revision id stored as raw bytes; text ids use their length plus one. */
const HEX_ID_TAG = 0;
const TEXT_ID_TAG_OFFSET = 1;

/** Encodes and decodes the value of a leaf. Both must be deterministic. */
export interface LeafValueCodec<T> {
  encode(value: T, writer: ByteWriter): void;
  decode(reader: ByteReader): T;
}

function writeRevId(writer: ByteWriter, id: string): void {
  if (isHexRevId(id)) {
    writer.writeVarint(HEX_ID_TAG);
    writer.writeHex(id);
    return;
  }
  const byteLength = Buffer.byteLength(id);
  writer.writeVarint(byteLength + TEXT_ID_TAG_OFFSET);
  writer.writeUtf8(id, byteLength);
}

function readRevId(reader: ByteReader): string {
  const tag = reader.readVarint();
  if (tag === HEX_ID_TAG) return reader.readHex(REV_ID_BINARY_BYTES);
  return reader.readUtf8(tag - TEXT_ID_TAG_OFFSET);
}

/** Appends the encoding of `tree` to `writer`. */
export function writeRevTree<T>(
  writer: ByteWriter,
  tree: RevTree<T>,
  codec: LeafValueCodec<T>,
): void {
  writer.writeByte(REV_TREE_ENCODING_VERSION);
  writer.writeVarint(tree.length);
  const stack: RevNode<T>[] = [];
  for (const root of tree) {
    writer.writeVarint(root.pos);
    stack.push(root.node);
    for (;;) {
      const node = stack.pop();
      if (node === undefined) break;
      writeRevId(writer, node.id);
      writer.writeVarint(node.children.length);
      if (node.children.length === 0) {
        assert(node.value !== null, () => `leaf ${node.id} has no value`);
        codec.encode(node.value, writer);
      }
      for (let c = node.children.length - 1; c >= 0; c--) stack.push(node.children[c]!);
    }
  }
}

/** Returns the encoding of `tree`. */
export function encodeRevTree<T>(tree: RevTree<T>, codec: LeafValueCodec<T>): Buffer {
  const writer = new ByteWriter();
  writeRevTree(writer, tree, codec);
  return writer.finish();
}

interface DecodeFrame<T> {
  readonly id: string;
  remaining: number;
  readonly children: RevNode<T>[];
}

function readNode<T>(reader: ByteReader, codec: LeafValueCodec<T>): RevNode<T> {
  const frames: DecodeFrame<T>[] = [];
  for (;;) {
    const id = readRevId(reader);
    const childCount = reader.readVarint();
    // Every child takes at least two bytes (a tag and a count).
    assert(childCount <= reader.remaining, () => `revision ${id}: ${childCount} children`);
    let done: RevNode<T> | null = null;
    if (childCount === 0) {
      done = { id, value: codec.decode(reader), children: [] };
    } else {
      frames.push({ id, remaining: childCount, children: [] });
    }
    while (done !== null) {
      const parent = frames[frames.length - 1];
      if (parent === undefined) return done;
      const previous = parent.children[parent.children.length - 1];
      if (previous !== undefined) {
        assert(
          compareRevIds(previous.id, done.id) < 0,
          () => `children of ${parent.id} out of order`,
        );
      }
      parent.children.push(done);
      parent.remaining--;
      done = null;
      if (parent.remaining === 0) {
        frames.pop();
        done = { id: parent.id, value: null, children: parent.children };
      }
    }
  }
}

/** Reads one tree written by `writeRevTree`. */
export function readRevTree<T>(reader: ByteReader, codec: LeafValueCodec<T>): RevTree<T> {
  const version = reader.readByte();
  assert(version === REV_TREE_ENCODING_VERSION, () => `unknown revision tree encoding ${version}`);
  const rootCount = reader.readVarint();
  assert(rootCount <= reader.remaining, () => `revision tree with ${rootCount} roots`);
  const roots: RevRoot<T>[] = [];
  for (let r = 0; r < rootCount; r++) {
    const pos = reader.readVarint();
    assert(pos >= 1, () => `revision tree root at position ${pos}`);
    const root = { pos, node: readNode(reader, codec) };
    const previous = roots[roots.length - 1];
    if (previous !== undefined) {
      const ordered =
        previous.pos < pos ||
        (previous.pos === pos && compareRevIds(previous.node.id, root.node.id) < 0);
      assert(ordered, () => `revision tree roots out of order at position ${pos}`);
    }
    roots.push(root);
  }
  return roots;
}

/** Decodes a whole buffer holding one tree. */
export function decodeRevTree<T>(bytes: Uint8Array, codec: LeafValueCodec<T>): RevTree<T> {
  const reader = new ByteReader(bytes);
  const tree = readRevTree(reader, codec);
  assert(reader.remaining === 0, () => `${reader.remaining} bytes after a revision tree`);
  return tree;
}
