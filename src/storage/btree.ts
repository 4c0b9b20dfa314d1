/**
 * A copy-on-write B+tree over a block file. A `BTree` value is immutable: `modify` writes new
 * nodes from the changed leaves up to a new root and returns a new tree, and the old tree
 * stays readable, so a reader holding it sees a consistent snapshot while a writer goes on.
 *
 * Interior entries hold the last key of each child, its pointer, its entry count, the byte size
 * of its subtree and its reduction, so `fullReduce` and `count` are O(1) and `reduceRange`
 * reads only the two edges of the range. Nodes split by encoded byte size. Removing entries
 * never merges nodes; a node left empty disappears and a root with one child is replaced by
 * that child.
 *
 * This module makes nothing durable: the caller commits the block file with the new root in
 * its header (`encodeRoot`). It reads through the node cache and writes new nodes into it.
 */
import { assert } from '../util/assert.js';
import type { BlockFile } from './block-file.js';
import {
  type ChildReference,
  childPointerAt,
  childReductionAt,
  childReductions,
  childSizeAt,
  childTotals,
  compareBytes,
  compareKeyAt,
  decodeChildEntry,
  EntryList,
  editedLength,
  editNode,
  encodeChildEntry,
  encodeInlineEntry,
  encodeNode,
  encodeOutOfLineEntry,
  entryCount,
  entryOutOfLineBytes,
  lowerBoundKey,
  MAX_KEY_BYTES,
  NODE_INTERIOR,
  NODE_LEAF,
  type NodeEdit,
  NodeView,
  OFFSET_BYTES,
  outOfLineLength,
  spliceNode,
  splitEntries,
  VALUE_INLINE,
} from './btree-node.js';
import { type ReduceEntries, reduceEntriesOf, type TreeCodec } from './codecs.js';
import { CorruptionError, StorageError } from './errors.js';
import { NodeCache } from './node-cache.js';

/** Default target size of an encoded interior node; docs/benchmarks.md gives the measurements. */
export const DEFAULT_NODE_SIZE_BYTES = 2000;
/**
 * Default target size of an encoded leaf. A batch of random keys rewrites one leaf per key,
 * so small leaves write less; docs/benchmarks.md gives the measurements.
 */
export const DEFAULT_LEAF_SIZE_BYTES = 1600;
/** Bytes read beyond the node size target, since a split node may exceed it by an entry. */
const NODE_READ_SLACK_BYTES = 256;
const ROOT_FIXED_BYTES = 18;
const U48_BYTES = 6;
const EMPTY = Buffer.alloc(0);
const NO_ENTRIES = reduceEntriesOf<never, never>([]);

/** The state a header stores for a tree; `null` is the empty tree. */
export interface TreeRoot {
  readonly pointer: number;
  /** Entries in the tree. */
  readonly count: number;
  /** Bytes of all nodes of the tree plus its out-of-line values. */
  readonly sizeBytes: number;
  /** Encoded reduction of the whole tree; empty without a reducer. */
  readonly reduction: Buffer;
}

/** Encodes a root for a header: u48 pointer, u48 count, u48 size, reduction; empty for null. */
export function encodeRoot(root: TreeRoot | null): Buffer {
  if (root === null) return EMPTY;
  const bytes = Buffer.alloc(ROOT_FIXED_BYTES + root.reduction.length);
  bytes.writeUIntBE(root.pointer, 0, U48_BYTES);
  bytes.writeUIntBE(root.count, U48_BYTES, U48_BYTES);
  bytes.writeUIntBE(root.sizeBytes, 2 * U48_BYTES, U48_BYTES);
  root.reduction.copy(bytes, ROOT_FIXED_BYTES);
  return bytes;
}

export function decodeRoot(bytes: Uint8Array): TreeRoot | null {
  if (bytes.length === 0) return null;
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  assert(buffer.length >= ROOT_FIXED_BYTES, 'an encoded root has its fixed fields');
  return {
    pointer: buffer.readUIntBE(0, U48_BYTES),
    count: buffer.readUIntBE(U48_BYTES, U48_BYTES),
    sizeBytes: buffer.readUIntBE(2 * U48_BYTES, U48_BYTES),
    reduction: Buffer.from(buffer.subarray(ROOT_FIXED_BYTES)),
  };
}

/** A key longer than a node entry can hold. */
export class KeyTooLargeError extends StorageError {
  override readonly name = 'KeyTooLargeError';

  constructor(readonly lengthBytes: number) {
    super(`key of ${lengthBytes} bytes is longer than the maximum of ${MAX_KEY_BYTES} bytes`);
  }
}

export interface BTreeOptions {
  /**
   * Target size of an encoded node in bytes, for leaves and interior nodes alike unless
   * `leafSizeBytes` or `interiorSizeBytes` sets one of them.
   */
  nodeSizeBytes?: number;
  /** Target size of an encoded leaf; `nodeSizeBytes`, else DEFAULT_LEAF_SIZE_BYTES. */
  leafSizeBytes?: number;
  /** Target size of an encoded interior node; `nodeSizeBytes`, else DEFAULT_NODE_SIZE_BYTES. */
  interiorSizeBytes?: number;
  /** Values whose encoding is longer than this are stored as records of their own. */
  outOfLineValueBytes?: number;
  /** Cache of node buffers; `NodeCache.shared` by default. */
  cache?: NodeCache;
}

interface ResolvedOptions {
  leafSizeBytes: number;
  interiorSizeBytes: number;
  outOfLineValueBytes: number;
  cache: NodeCache;
}

export interface ModifyRequest<K, V> {
  insert?: Iterable<readonly [K, V]>;
  remove?: Iterable<K>;
}

export interface QueryModifyRequest<K, V> extends ModifyRequest<K, V> {
  /** Keys whose values before the change are returned in `found`, in this order. */
  lookup?: readonly K[];
}

export interface QueryModifyResult<K, V, R> {
  tree: BTree<K, V, R>;
  /** Value of each `lookup` key before the change, aligned with `lookup`. */
  found: Array<V | undefined>;
  /** Entries that the inserts and removes replaced or deleted, in key order. */
  replaced: Array<readonly [K, V]>;
}

/** Summary of a subtree, passed to `skipSubtree`. */
export interface SubtreeSummary<K, R> {
  lastKey: K;
  count: number;
  reduction: R;
}

export interface RangeOptions<K> {
  start?: K;
  end?: K;
  /** Whether `end` itself is in the range; true by default. */
  endInclusive?: boolean;
}

export interface FoldOptions<K, R> extends RangeOptions<K> {
  /** Backward folds start at `start`, the high key, and go down to `end`. */
  direction?: 'forward' | 'backward';
  /** Returns true to skip a whole subtree without reading it. */
  skipSubtree?: (subtree: SubtreeSummary<K, R>) => boolean;
}

/** The visitor returns false to stop the fold. */
export type FoldVisitor<K, V> = (key: K, value: V) => unknown;

const ACTION_LOOKUP = 0;
const ACTION_REMOVE = 1;
const ACTION_INSERT = 2;

/** All requests for one key, merged: lookups see the old value; insert beats remove. */
interface KeyAction {
  key: Buffer;
  lookupIndexes: number[];
  write: typeof ACTION_LOOKUP | typeof ACTION_REMOVE | typeof ACTION_INSERT;
  entry: Buffer | undefined;
}

interface RawAction {
  key: Buffer;
  kind: number;
  sequence: number;
  entry?: Buffer;
  lookupIndex?: number;
}

/** Result of rewriting a subtree: the child entries that replace it, if it changed. */
type Rewrite = { changed: false } | { changed: true; children: EntryList };

const CONTINUE = 0;
const STOP = 1;
const PAST_END = 2;
type FoldState = typeof CONTINUE | typeof STOP | typeof PAST_END;

export class BTree<K, V, R = undefined> {
  readonly #file: BlockFile;
  readonly #codec: TreeCodec<K, V, R>;
  readonly #options: ResolvedOptions;

  private constructor(
    file: BlockFile,
    codec: TreeCodec<K, V, R>,
    options: ResolvedOptions,
    readonly root: TreeRoot | null,
  ) {
    this.#file = file;
    this.#codec = codec;
    this.#options = options;
  }

  /** Opens the tree whose root a header stored (`null` for an empty tree). */
  static open<K, V, R = undefined>(
    file: BlockFile,
    codec: TreeCodec<K, V, R>,
    root: TreeRoot | null,
    options: BTreeOptions = {},
  ): BTree<K, V, R> {
    const resolved: ResolvedOptions = {
      leafSizeBytes: options.leafSizeBytes ?? options.nodeSizeBytes ?? DEFAULT_LEAF_SIZE_BYTES,
      interiorSizeBytes:
        options.interiorSizeBytes ?? options.nodeSizeBytes ?? DEFAULT_NODE_SIZE_BYTES,
      outOfLineValueBytes: options.outOfLineValueBytes ?? Number.POSITIVE_INFINITY,
      cache: options.cache ?? NodeCache.shared,
    };
    assert(resolved.leafSizeBytes > 0, 'a leaf size is positive');
    assert(resolved.interiorSizeBytes > 0, 'an interior node size is positive');
    return new BTree(file, codec, resolved, root);
  }

  /** Number of entries, O(1). */
  get count(): number {
    return this.root?.count ?? 0;
  }

  /** Reduction of the whole tree, O(1). */
  fullReduce(): R {
    const reducer = this.#reducer();
    if (this.root === null) return reducer.reduce(NO_ENTRIES);
    return reducer.decode(this.root.reduction);
  }

  get(key: K): V | undefined {
    if (this.root === null) return undefined;
    const encoded = this.#encodeKey(key);
    if (!this.#codec.key.byteOrdered) return this.#getDecoded(encoded);
    let node = this.#nodeBytes(this.root.pointer, this.root.sizeBytes);
    for (;;) {
      const count = entryCount(node);
      const index = lowerBoundKey(node, count, encoded, 0);
      if (index === count) return undefined;
      if (node[0] === NODE_LEAF) {
        if (compareKeyAt(node, index, encoded) !== 0) return undefined;
        return this.#value(new NodeView(node), index);
      }
      node = this.#nodeBytes(childPointerAt(node, index), childSizeAt(node, index));
    }
  }

  /** `get` for key codecs whose encodings are not byte-ordered. */
  #getDecoded(encoded: Buffer): V | undefined {
    let view = this.#node(this.root!.pointer);
    for (;;) {
      const index = this.#lowerBound(view, encoded);
      if (index === view.count) return undefined;
      if (view.isLeaf) {
        return this.#compareAt(view, index, encoded) === 0 ? this.#value(view, index) : undefined;
      }
      view = this.#node(view.childPointer(index));
    }
  }

  /** Looks up many keys in one pass down the tree; results are aligned with `keys`. */
  lookup(keys: readonly K[]): Array<V | undefined> {
    return this.queryModify({ lookup: keys }).found;
  }

  /** Applies inserts and removes in one pass and returns the new tree. */
  modify(request: ModifyRequest<K, V>): BTree<K, V, R> {
    return this.queryModify(request).tree;
  }

  /**
   * Looks up, removes and inserts in one pass. For the same key, lookups see the value before
   * the change, and an insert wins over a remove; of several inserts the last one wins.
   */
  queryModify(request: QueryModifyRequest<K, V>): QueryModifyResult<K, V, R> {
    const lookupKeys = request.lookup ?? [];
    const result: QueryModifyResult<K, V, R> = {
      tree: this,
      found: new Array<V | undefined>(lookupKeys.length).fill(undefined),
      replaced: [],
    };
    const actions = this.#prepareActions(request);
    if (actions.length === 0) return result;
    const rewrite =
      this.root === null
        ? this.#rewriteLeaf(undefined, actions, 0, actions.length, result)
        : this.#rewrite(this.root.pointer, this.root.sizeBytes, actions, 0, actions.length, result);
    if (rewrite.changed) {
      result.tree = new BTree(
        this.#file,
        this.#codec,
        this.#options,
        this.#buildRoot(rewrite.children),
      );
    }
    return result;
  }

  /**
   * Calls `visitor` for each entry in key order (or reverse order) within the range, until it
   * returns false. Returns false if the visitor stopped the fold, true otherwise.
   */
  fold(visitor: FoldVisitor<K, V>, options: FoldOptions<K, R> = {}): boolean {
    if (this.root === null) return true;
    const range = {
      start: options.start === undefined ? undefined : this.#encodeKey(options.start),
      end: options.end === undefined ? undefined : this.#encodeKey(options.end),
      endInclusive: options.endInclusive ?? true,
      skipSubtree: options.skipSubtree,
      visitor,
    };
    const state =
      options.direction === 'backward'
        ? this.#foldBackward(this.root.pointer, range)
        : this.#foldForward(this.root.pointer, range);
    return state !== STOP;
  }

  /** Reduction of the entries within the range, reading only the nodes at its edges. */
  reduceRange(options: RangeOptions<K> = {}): R {
    const reducer = this.#reducer();
    if (this.root === null) return reducer.reduce(NO_ENTRIES);
    const range = {
      start: options.start === undefined ? undefined : this.#encodeKey(options.start),
      end: options.end === undefined ? undefined : this.#encodeKey(options.end),
      endInclusive: options.endInclusive ?? true,
    };
    const parts: R[] = [];
    this.#reduceNode(this.root.pointer, undefined, range, parts);
    if (parts.length === 0) return reducer.reduce(NO_ENTRIES);
    return parts.length === 1 ? parts[0]! : reducer.rereduce(parts);
  }

  /** Number of entries with a key strictly before `key`, reading one path. */
  countBefore(key: K): number {
    if (this.root === null) return 0;
    const encoded = this.#encodeKey(key);
    let before = 0;
    let view = this.#node(this.root.pointer);
    for (;;) {
      const index = this.#lowerBound(view, encoded);
      if (view.isLeaf) return before + index;
      for (let child = 0; child < index; child++) before += view.child(child).count;
      if (index === view.count) return before;
      view = this.#node(view.childPointer(index));
    }
  }

  // ---- reading helpers

  #reducer() {
    const reducer = this.#codec.reducer;
    assert(reducer !== undefined, 'this tree has no reducer');
    return reducer;
  }

  #encodeKey(key: K): Buffer {
    const encoded = this.#codec.key.encode(key);
    if (encoded.length > MAX_KEY_BYTES) throw new KeyTooLargeError(encoded.length);
    return encoded;
  }

  #node(pointer: number, subtreeBytes?: number): NodeView {
    return new NodeView(this.#nodeBytes(pointer, subtreeBytes));
  }

  /**
   * Returns the verified bytes of the node at `pointer`, from the cache or the file, caching
   * a node read from the file if `admit` is set. A known `subtreeBytes` (never less than the
   * node's length) keeps the read to the node's size.
   */
  #nodeBytes(pointer: number, subtreeBytes = Number.POSITIVE_INFINITY, admit = true): Buffer {
    const cache = this.#options.cache;
    let bytes = cache.get(this.#file.id, pointer);
    if (bytes === undefined) {
      const expectedBytes = Math.min(
        subtreeBytes,
        Math.max(this.#options.leafSizeBytes, this.#options.interiorSizeBytes) +
          NODE_READ_SLACK_BYTES,
      );
      bytes = this.#file.read(pointer, expectedBytes, cache);
      if (bytes.length === 0 || (bytes[0] !== NODE_LEAF && bytes[0] !== NODE_INTERIOR)) {
        throw new CorruptionError(this.#file.path, pointer, 'record is not a B+tree node');
      }
      if (admit) cache.set(this.#file.id, pointer, bytes);
    }
    return bytes;
  }

  #compare(a: Buffer, b: Buffer): number {
    if (this.#codec.key.byteOrdered) return compareBytes(a, 0, a.length, b);
    const keys = this.#codec.key;
    return keys.compare(keys.decode(a), keys.decode(b));
  }

  /** Compares the key at `index` of a node with `key`. */
  #compareAt(view: NodeView, index: number, key: Buffer): number {
    if (this.#codec.key.byteOrdered) return compareKeyAt(view.bytes, index, key);
    return this.#compare(view.key(index), key);
  }

  /** Index of the first entry from `low` on whose key is at least `key`; `count` if none. */
  #lowerBound(view: NodeView, key: Buffer, low = 0): number {
    if (this.#codec.key.byteOrdered) return lowerBoundKey(view.bytes, view.count, key, low);
    let high = view.count;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (this.#compareAt(view, middle, key) < 0) low = middle + 1;
      else high = middle;
    }
    return low;
  }

  #value(view: NodeView, index: number): V {
    if (view.valueTag(index) === VALUE_INLINE) {
      return this.#codec.value.decode(view.inlineValue(index));
    }
    return this.#codec.value.decode(this.#file.read(view.outOfLineValue(index).pointer));
  }

  // ---- modify

  #prepareActions(request: QueryModifyRequest<K, V>): KeyAction[] {
    const raw: RawAction[] = [];
    let sequence = 0;
    (request.lookup ?? []).forEach((key, lookupIndex) => {
      raw.push({
        key: this.#encodeKey(key),
        kind: ACTION_LOOKUP,
        sequence: sequence++,
        lookupIndex,
      });
    });
    for (const key of request.remove ?? []) {
      raw.push({ key: this.#encodeKey(key), kind: ACTION_REMOVE, sequence: sequence++ });
    }
    for (const [key, value] of request.insert ?? []) {
      const encodedKey = this.#encodeKey(key);
      const entry = this.#encodeEntry(encodedKey, value);
      raw.push({ key: encodedKey, kind: ACTION_INSERT, sequence: sequence++, entry });
    }
    raw.sort((a, b) => this.#compare(a.key, b.key) || a.kind - b.kind || a.sequence - b.sequence);
    const actions: KeyAction[] = [];
    for (const action of raw) {
      let last = actions[actions.length - 1];
      if (last === undefined || this.#compare(last.key, action.key) !== 0) {
        last = { key: action.key, lookupIndexes: [], write: ACTION_LOOKUP, entry: undefined };
        actions.push(last);
      }
      if (action.kind === ACTION_LOOKUP) last.lookupIndexes.push(action.lookupIndex!);
      else {
        last.write = action.kind as KeyAction['write'];
        last.entry = action.entry;
      }
    }
    return actions;
  }

  #encodeEntry(key: Buffer, value: V): Buffer {
    const encoded = this.#codec.value.encode(value);
    if (encoded.length <= this.#options.outOfLineValueBytes) return encodeInlineEntry(key, encoded);
    const pointer = this.#file.append(encoded);
    return encodeOutOfLineEntry(key, pointer, encoded.length);
  }

  /**
   * Applies actions[low, high) to the subtree at `pointer`. A node that the change replaces
   * is dead for the new tree (older snapshots may still read it), so it is not admitted to
   * the cache when read for an insert, and is demoted there if it was cached.
   */
  #rewrite(
    pointer: number,
    subtreeBytes: number,
    actions: KeyAction[],
    low: number,
    high: number,
    result: QueryModifyResult<K, V, R>,
  ): Rewrite {
    const view = new NodeView(
      this.#nodeBytes(pointer, subtreeBytes, !containsInsert(actions, low, high)),
    );
    const rewrite = this.#rewriteNode(view, subtreeBytes, actions, low, high, result);
    if (rewrite.changed) this.#options.cache.demote(this.#file.id, pointer);
    return rewrite;
  }

  #rewriteNode(
    view: NodeView,
    subtreeBytes: number,
    actions: KeyAction[],
    low: number,
    high: number,
    result: QueryModifyResult<K, V, R>,
  ): Rewrite {
    if (view.isLeaf && high - low === 1) {
      const spliced = this.#spliceLeaf(view, subtreeBytes, actions[low]!, result);
      if (spliced !== undefined) return spliced;
    }
    if (view.isLeaf) return this.#rewriteLeaf(view, actions, low, high, result);
    const edits: NodeEdit[] = [];
    let first = low;
    while (first < high) {
      const child = Math.min(this.#lowerBound(view, actions[first]!.key), view.count - 1);
      let last = first + 1;
      if (child === view.count - 1) last = high;
      while (last < high && this.#compareAt(view, child, actions[last]!.key) >= 0) last += 1;
      const rewrite = this.#rewrite(
        view.childPointer(child),
        childSizeAt(view.bytes, child),
        actions,
        first,
        last,
        result,
      );
      if (rewrite.changed)
        edits.push({ position: child, removeCount: 1, inserts: rewrite.children });
      first = last;
    }
    if (edits.length === 0) return { changed: false };
    return { changed: true, children: this.#writeEdited(view, edits) };
  }

  /**
   * Writes an interior node with its changed children replaced. When the result fits one
   * node, its bytes are edited in place of re-encoding every entry (the common case of a
   * batch touching a few children of each node); otherwise the entries are split afresh.
   */
  #writeEdited(view: NodeView, edits: NodeEdit[]): EntryList {
    let count = view.count;
    for (const edit of edits) count += edit.inserts.length - edit.removeCount;
    if (count > 0 && editedLength(view.bytes, edits) <= this.#options.interiorSizeBytes) {
      const cache = this.#options.cache;
      const node = editNode(view.bytes, edits, cache);
      const pointer = this.#file.append(node);
      cache.set(this.#file.id, pointer, node);
      const edited = new NodeView(node);
      const totals = childTotals(node);
      const children = new EntryList();
      children.push(
        encodeChildEntry({
          lastKey: edited.key(count - 1),
          pointer,
          count: totals.count,
          sizeBytes: node.length + totals.sizeBytes,
          reduction: this.#interiorReduction(edited),
        }),
      );
      return children;
    }
    const entries = new EntryList();
    let unchanged = 0;
    for (const edit of edits) {
      entries.pushFromNode(view, unchanged, edit.position);
      entries.pushAll(edit.inserts);
      unchanged = edit.position + edit.removeCount;
    }
    entries.pushFromNode(view, unchanged, view.count);
    return this.#writeNodes(NODE_INTERIOR, entries);
  }

  #rewriteLeaf(
    view: NodeView | undefined,
    actions: KeyAction[],
    low: number,
    high: number,
    result: QueryModifyResult<K, V, R>,
  ): Rewrite {
    const count = view?.count ?? 0;
    const entries = new EntryList();
    let changed = false;
    let index = 0;
    for (let next = low; next < high; next++) {
      const action = actions[next]!;
      const position = view === undefined ? 0 : this.#lowerBound(view, action.key, index);
      if (view !== undefined) entries.pushFromNode(view, index, position);
      index = position;
      const exists = position < count && this.#compareAt(view!, position, action.key) === 0;
      if (exists) this.#reportExisting(view!, position, action, result);
      if (action.write === ACTION_INSERT) {
        entries.push(action.entry!);
        changed = true;
        if (exists) index += 1;
      } else if (action.write === ACTION_REMOVE && exists) {
        changed = true;
        index += 1;
      }
    }
    if (!changed) return { changed: false };
    if (view !== undefined) entries.pushFromNode(view, index, count);
    return { changed: true, children: this.#writeNodes(NODE_LEAF, entries) };
  }

  /**
   * Applies one action to a leaf by splicing its bytes, the common case of a batch spread
   * over many leaves. Returns undefined when the result needs a split (or is empty), which
   * `#rewriteLeaf` handles; `subtreeBytes` is the leaf's size as its parent records it.
   */
  #spliceLeaf(
    view: NodeView,
    subtreeBytes: number,
    action: KeyAction,
    result: QueryModifyResult<K, V, R>,
  ): Rewrite | undefined {
    const position = this.#lowerBound(view, action.key);
    const exists = position < view.count && this.#compareAt(view, position, action.key) === 0;
    const insert = action.write === ACTION_INSERT ? action.entry! : undefined;
    const removeCount = exists && action.write !== ACTION_LOOKUP ? 1 : 0;
    const count = view.count - removeCount + (insert === undefined ? 0 : 1);
    if (insert === undefined && removeCount === 0) {
      if (exists) this.#reportExisting(view, position, action, result);
      return { changed: false };
    }
    const removedBytes =
      removeCount === 0 ? 0 : view.entryStart(position + 1) - view.entryStart(position);
    const length = view.bytes.length + (count - view.count) * OFFSET_BYTES - removedBytes;
    if (count === 0 || length + (insert?.length ?? 0) > this.#options.leafSizeBytes) {
      return undefined;
    }
    if (exists) this.#reportExisting(view, position, action, result);
    const cache = this.#options.cache;
    const node = spliceNode(view.bytes, position, removeCount, insert, cache);
    const pointer = this.#file.append(node);
    cache.set(this.#file.id, pointer, node);
    const spliced = new NodeView(node);
    const outOfLineBytes =
      subtreeBytes -
      view.bytes.length -
      (removeCount === 0 ? 0 : view.outOfLineBytes(position)) +
      (insert === undefined ? 0 : entryOutOfLineBytes(insert));
    const child = encodeChildEntry({
      lastKey: spliced.key(count - 1),
      pointer,
      count,
      sizeBytes: node.length + outOfLineBytes,
      reduction: this.#leafReduction(node),
    });
    const children = new EntryList();
    children.push(child);
    return { changed: true, children };
  }

  /** Records the value an action found: for its lookups, and as replaced if it writes. */
  #reportExisting(
    view: NodeView,
    index: number,
    action: KeyAction,
    result: QueryModifyResult<K, V, R>,
  ): void {
    const value = this.#value(view, index);
    for (const lookupIndex of action.lookupIndexes) result.found[lookupIndex] = value;
    if (action.write !== ACTION_LOOKUP) {
      result.replaced.push([this.#codec.key.decode(Buffer.from(action.key)), value]);
    }
  }

  /** Writes sorted entries as nodes of `kind` and returns the child entries pointing to them. */
  #writeNodes(kind: number, entries: EntryList): EntryList {
    const children = new EntryList();
    let from = 0;
    const targetBytes =
      kind === NODE_LEAF ? this.#options.leafSizeBytes : this.#options.interiorSizeBytes;
    for (const to of splitEntries(entries, targetBytes)) {
      if (to === from) continue;
      const node = encodeNode(kind, entries, from, to, this.#options.cache);
      const pointer = this.#file.append(node);
      this.#options.cache.set(this.#file.id, pointer, node);
      children.push(encodeChildEntry(this.#describe(kind, entries, from, to, node, pointer)));
      from = to;
    }
    return children;
  }

  #describe(
    kind: number,
    entries: EntryList,
    from: number,
    to: number,
    node: Buffer,
    pointer: number,
  ): ChildReference {
    const lastKey = entries.key(to - 1);
    let count = 0;
    let sizeBytes = node.length;
    if (kind === NODE_LEAF) {
      count = to - from;
      for (let index = from; index < to; index++) sizeBytes += outOfLineLength(entries, index);
      return { lastKey, pointer, count, sizeBytes, reduction: this.#leafReduction(node) };
    }
    const totals = childTotals(node);
    return {
      lastKey,
      pointer,
      count: totals.count,
      sizeBytes: sizeBytes + totals.sizeBytes,
      reduction: this.#interiorReduction(new NodeView(node)),
    };
  }

  #leafReduction(node: Buffer): Buffer {
    const reducer = this.#codec.reducer;
    if (reducer === undefined) return EMPTY;
    const view = new NodeView(node);
    return asBuffer(reducer.encode(reducer.reduce(this.#leafEntries(view, 0, view.count))));
  }

  /** Returns leaf entries [from, to) for a reducer, each decoded only when the reducer reads it. */
  #leafEntries(view: NodeView, from: number, to: number): ReduceEntries<K, V> {
    return {
      length: to - from,
      key: (index) => this.#codec.key.decode(view.key(from + index)),
      value: (index) => this.#value(view, from + index),
      forEachEncodedValue: (visit) => {
        for (let index = from; index < to; index++) {
          if (view.valueTag(index) === VALUE_INLINE) {
            visit(view.bytes, view.inlineValueStart(index), view.entryStart(index + 1));
          } else {
            const bytes = this.#file.read(view.outOfLineValue(index).pointer);
            visit(bytes, 0, bytes.length);
          }
        }
      },
    };
  }

  /** Rereduces the children's reductions, read in place (no child entry is decoded). */
  #interiorReduction(node: NodeView): Buffer {
    const reducer = this.#codec.reducer;
    if (reducer === undefined) return EMPTY;
    if (reducer.rereduceEncoded !== undefined) {
      return asBuffer(reducer.encode(reducer.rereduceEncoded(childReductions(node.bytes))));
    }
    const reductions = new Array<R>(node.count);
    for (let index = 0; index < node.count; index++) {
      reductions[index] = reducer.decode(childReductionAt(node.bytes, index));
    }
    return asBuffer(reducer.encode(reducer.rereduce(reductions)));
  }

  /** Builds interior levels over `children` until one root remains. */
  #buildRoot(children: EntryList): TreeRoot | null {
    let level = children;
    while (level.length > 1) level = this.#writeNodes(NODE_INTERIOR, level);
    if (level.length === 0) return null;
    let root = decodeChildEntry(level.buffer(0).subarray(level.start(0), level.end(0)));
    for (;;) {
      const view = this.#node(root.pointer);
      if (view.isLeaf || view.count > 1) break;
      root = view.child(0);
    }
    return {
      pointer: root.pointer,
      count: root.count,
      sizeBytes: root.sizeBytes,
      reduction: Buffer.from(root.reduction),
    };
  }

  // ---- folds and reductions

  #foldForward(pointer: number, range: FoldRange<K, V, R>): FoldState {
    const view = this.#node(pointer);
    const first = range.start === undefined ? 0 : this.#lowerBound(view, range.start);
    for (let index = first; index < view.count; index++) {
      if (view.isLeaf) {
        if (range.end !== undefined && this.#pastEnd(view, index, range, 1)) return PAST_END;
        const key = this.#codec.key.decode(view.key(index));
        if (range.visitor(key, this.#value(view, index)) === false) return STOP;
        continue;
      }
      if (!this.#skips(view, index, range)) {
        const state = this.#foldForward(view.childPointer(index), range);
        if (state !== CONTINUE) return state;
      }
      if (range.end !== undefined && this.#compareAt(view, index, range.end) >= 0) return PAST_END;
    }
    return CONTINUE;
  }

  #foldBackward(pointer: number, range: FoldRange<K, V, R>): FoldState {
    const view = this.#node(pointer);
    let first = view.count - 1;
    if (range.start !== undefined) {
      const bound = this.#lowerBound(view, range.start);
      if (view.isLeaf) {
        first =
          bound < view.count && this.#compareAt(view, bound, range.start) === 0 ? bound : bound - 1;
      } else {
        first = Math.min(bound, view.count - 1);
      }
    }
    for (let index = first; index >= 0; index--) {
      if (view.isLeaf) {
        if (range.end !== undefined && this.#pastEnd(view, index, range, -1)) return PAST_END;
        const key = this.#codec.key.decode(view.key(index));
        if (range.visitor(key, this.#value(view, index)) === false) return STOP;
        continue;
      }
      if (!this.#skips(view, index, range)) {
        const state = this.#foldBackward(view.childPointer(index), range);
        if (state !== CONTINUE) return state;
      }
      if (index > 0 && range.end !== undefined) {
        const previous = this.#compareAt(view, index - 1, range.end);
        if (previous < 0 || (previous === 0 && !range.endInclusive)) return PAST_END;
      }
    }
    return CONTINUE;
  }

  /** Whether the leaf key at `index` lies beyond the range end in `direction` (1 or -1). */
  #pastEnd(view: NodeView, index: number, range: FoldRange<K, V, R>, direction: number): boolean {
    const order = this.#compareAt(view, index, range.end!) * direction;
    return order > 0 || (order === 0 && !range.endInclusive);
  }

  #skips(view: NodeView, index: number, range: FoldRange<K, V, R>): boolean {
    if (range.skipSubtree === undefined) return false;
    const child = view.child(index);
    const reducer = this.#codec.reducer;
    return range.skipSubtree({
      lastKey: this.#codec.key.decode(Buffer.from(child.lastKey)),
      count: child.count,
      reduction: (reducer === undefined ? undefined : reducer.decode(child.reduction)) as R,
    });
  }

  /**
   * Collects into `parts` the reductions covering the range within the subtree at `pointer`,
   * whose keys are all greater than `lowerExclusive` when it is given.
   */
  #reduceNode(
    pointer: number,
    lowerExclusive: Buffer | undefined,
    range: EncodedRange,
    parts: R[],
  ): void {
    const reducer = this.#reducer();
    const view = this.#node(pointer);
    if (view.isLeaf) {
      // Keys are sorted, so the entries in range are one run, starting at the range's lower bound.
      const from = range.start === undefined ? 0 : this.#lowerBound(view, range.start);
      let to = from;
      while (to < view.count && this.#inRange(view.key(to), range)) to++;
      if (to > from) parts.push(reducer.reduce(this.#leafEntries(view, from, to)));
      return;
    }
    for (let index = 0; index < view.count; index++) {
      const childLow = index === 0 ? lowerExclusive : view.key(index - 1);
      const childHigh = view.key(index);
      if (range.start !== undefined && this.#compare(childHigh, range.start) < 0) continue;
      if (
        range.end !== undefined &&
        childLow !== undefined &&
        this.#compare(childLow, range.end) >= 0
      ) {
        break;
      }
      const startCovered =
        range.start === undefined ||
        (childLow !== undefined && this.#compare(childLow, range.start) >= 0);
      const endOrder = range.end === undefined ? -1 : this.#compare(childHigh, range.end);
      const endCovered = endOrder < 0 || (endOrder === 0 && range.endInclusive);
      if (startCovered && endCovered) {
        parts.push(reducer.decode(childReductionAt(view.bytes, index)));
      } else {
        this.#reduceNode(view.childPointer(index), childLow, range, parts);
      }
    }
  }

  #inRange(key: Buffer, range: EncodedRange): boolean {
    if (range.start !== undefined && this.#compare(key, range.start) < 0) return false;
    if (range.end === undefined) return true;
    const order = this.#compare(key, range.end);
    return order < 0 || (order === 0 && range.endInclusive);
  }
}

/** Returns a reducer's encoding as a Buffer, without copying it. */
function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
}

/** Whether actions[low, high) contain an insert, which rewrites every node above its key. */
function containsInsert(actions: readonly KeyAction[], low: number, high: number): boolean {
  for (let index = low; index < high; index++) {
    if (actions[index]!.write === ACTION_INSERT) return true;
  }
  return false;
}

interface EncodedRange {
  start: Buffer | undefined;
  end: Buffer | undefined;
  endInclusive: boolean;
}

interface FoldRange<K, V, R> extends EncodedRange {
  skipSubtree: ((subtree: SubtreeSummary<K, R>) => boolean) | undefined;
  visitor: FoldVisitor<K, V>;
}
