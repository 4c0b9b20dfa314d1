/**
 * A least-recently-used cache of B+tree node buffers, bounded in bytes and keyed by block
 * file handle and record pointer. One cache serves every tree of a file and, through
 * `NodeCache.shared`, every file of a process, so many open files share one memory budget.
 *
 * Cached buffers are the verified record payloads, and callers must not change them.
 *
 * Slabs: `allocate` carves node buffers out of slabs, ArrayBuffers of up to 64 KiB shared
 * by many nodes, because a separate ArrayBuffer per node costs about a microsecond to create
 * plus garbage collection work. The budget counts the memory the cache keeps alive: a slab
 * counts whole while it holds a cached node or is the slab being filled, and a buffer that
 * `set` receives from elsewhere counts its own length. Bookkeeping (a few dozen bytes per
 * entry) is not counted.
 *
 * Eviction follows least-recent use. Evicting a node from a slab evicts its whole slab,
 * because the slab's memory is only released once none of its nodes is cached; nodes of
 * that slab used while the newest half of the budget's slabs were filled are first copied
 * into the current slab, so hot nodes stay cached. Interior nodes are copied forward too
 * while they fill at most half the budget: each one routes to many leaves, and a batch of
 * random keys revisits them after several batches of leaves went through the cache. A node
 * that `demote` marks (one a copy-on-write update replaced) is never copied forward. A
 * buffer from elsewhere is evicted alone, so a cache that only receives such buffers is an
 * exact LRU.
 *
 * Invariants: slab memory is never reused. A buffer returned by `allocate` or `get` stays
 * valid for as long as its holder keeps it; the garbage collector frees a slab once no
 * buffer views it. `sizeBytes` is at most the budget after every `set`, `allocate` and budget
 * change.
 */
import { assert } from '../util/assert.js';
import { NODE_INTERIOR } from './btree-node.js';

/** Budget of `NodeCache.shared` unless DIVAN_NODE_CACHE_BYTES sets another. */
const DEFAULT_SHARED_BUDGET_BYTES = 16 * 1024 * 1024;
/** Largest slab. */
const MAX_SLAB_BYTES = 64 * 1024;
/** A slab is at most this fraction of the budget, so eviction by slab stays fine-grained. */
const SLABS_PER_BUDGET = 32;
/** Below this slab size (a budget under 128 KiB) every node gets an ArrayBuffer of its own. */
const MIN_SLAB_BYTES = 4096;
/** A node longer than a slab divided by this gets an ArrayBuffer of its own. */
const NODES_PER_SLAB_MIN = 4;
/**
 * Share of the budget's slabs, newest first, during whose filling a use makes a node recent,
 * and share of the budget up to which interior nodes are kept through slab evictions. The
 * two add up to less than the whole budget, so an eviction keeps a fraction of a slab and
 * frees the rest; with both near the whole, evictions would mostly copy nodes around.
 */
const RECENT_SHARE = 0.25;
const INTERIOR_SHARE_MAX = 0.5;
/** `touched` of a demoted entry: never recent. */
const DEMOTED = Number.NEGATIVE_INFINITY;

interface Slab {
  readonly bytes: Buffer;
  /** Bytes carved out so far. */
  used: number;
  /** Entries cached in this slab at some time. Some may have left it since. */
  entries: Entry[];
  /** Entries cached in this slab now. */
  live: number;
  /** Whether `sizeBytes` counts this slab. */
  charged: boolean;
}

interface Entry {
  fileId: number;
  pointer: number;
  bytes: Buffer;
  /** The slab holding `bytes`, or undefined for a buffer from elsewhere. */
  slab: Slab | undefined;
  /** Slab sequence number at the last `get` or `set` of this entry. */
  touched: number;
  cached: boolean;
  older: Entry | undefined;
  newer: Entry | undefined;
}

export interface NodeCacheStats {
  hits: number;
  misses: number;
  evictions: number;
  /** Bytes counted against the budget: whole slabs plus buffers from elsewhere. */
  sizeBytes: number;
  budgetBytes: number;
  /** hits / (hits + misses), or 0 before the first lookup. */
  hitRate: number;
  /** Bytes of the cached nodes themselves; `sizeBytes` minus this is slab space not in use. */
  nodeBytes: number;
  /** Slabs counted in `sizeBytes`. */
  slabs: number;
  /** Bytes of the cached interior nodes, part of `nodeBytes`. */
  interiorBytes: number;
}

/** Supplies buffers to read or encode nodes into (`NodeCache` carves them out of slabs). */
export interface NodeAllocator {
  allocate(length: number): Buffer;
  /**
   * Returns `bytes[start, start + length)` as a node's buffer, where `bytes` is what the last
   * `allocate` returned, and gives the rest back when it can. A reader that allocated room
   * for a whole record span keeps only the payload this way.
   */
  keep?(bytes: Buffer, start: number, length: number): Buffer;
}

export class NodeCache implements NodeAllocator {
  static readonly shared = new NodeCache(sharedBudgetFromEnv());

  readonly #files = new Map<number, Map<number, Entry>>();
  readonly #slabOf = new WeakMap<ArrayBufferLike, Slab>();
  #oldest: Entry | undefined;
  #newest: Entry | undefined;
  #current: Slab | undefined;
  /** Number of slabs started so far; entries record it in `touched`. */
  #sequence = 0;
  #budgetBytes: number;
  #sizeBytes = 0;
  #nodeBytes = 0;
  /** Bytes of cached interior nodes. */
  #interiorBytes = 0;
  #slabs = 0;
  #hits = 0;
  #misses = 0;
  #evictions = 0;

  constructor(budgetBytes: number) {
    assert(budgetBytes >= 0, 'a cache budget is not negative');
    this.#budgetBytes = budgetBytes;
  }

  get budgetBytes(): number {
    return this.#budgetBytes;
  }

  /** Changes the budget, evicting the least recently used nodes down to it. */
  set budgetBytes(budgetBytes: number) {
    assert(budgetBytes >= 0, 'a cache budget is not negative');
    this.#budgetBytes = budgetBytes;
    if (this.#current !== undefined && this.#current.bytes.length > this.#slabBytes()) {
      this.#retire(this.#current);
    }
    this.#evict();
  }

  get stats(): NodeCacheStats {
    const lookups = this.#hits + this.#misses;
    return {
      hits: this.#hits,
      misses: this.#misses,
      evictions: this.#evictions,
      sizeBytes: this.#sizeBytes,
      budgetBytes: this.#budgetBytes,
      hitRate: lookups === 0 ? 0 : this.#hits / lookups,
      nodeBytes: this.#nodeBytes,
      slabs: this.#slabs,
      interiorBytes: this.#interiorBytes,
    };
  }

  /** Zeroes the hit, miss and eviction counters. */
  resetCounters(): void {
    this.#hits = 0;
    this.#misses = 0;
    this.#evictions = 0;
  }

  /**
   * Returns an uninitialized buffer of `length` bytes for a node that is about to be `set`:
   * a slice of the current slab, or an ArrayBuffer of its own for a large node or a small
   * budget. The buffer stays valid for as long as its holder keeps it.
   */
  allocate(length: number): Buffer {
    const slabBytes = this.#slabBytes();
    if (slabBytes === 0 || length > slabBytes / NODES_PER_SLAB_MIN) {
      return Buffer.allocUnsafeSlow(length);
    }
    const slab = this.#current;
    if (slab !== undefined && slab.used + length <= slab.bytes.length) {
      slab.used += length;
      return slab.bytes.subarray(slab.used - length, slab.used);
    }
    const bytes = this.#carve(length, slabBytes);
    this.#evict();
    return bytes;
  }

  /**
   * Returns `bytes[start, start + length)` as a node's buffer, where `bytes` is what the last
   * `allocate` returned. The slab space after the node goes back to the slab. A buffer of its
   * own is copied to one of the node's exact length, so that no unused bytes stay alive.
   */
  keep(bytes: Buffer, start: number, length: number): Buffer {
    assert(start + length <= bytes.length, 'a node kept lies inside its buffer');
    const slab = this.#current;
    if (slab !== undefined && bytes.buffer === slab.bytes.buffer) {
      const end = bytes.byteOffset - slab.bytes.byteOffset + bytes.length;
      if (end === slab.used) slab.used -= bytes.length - start - length;
      return bytes.subarray(start, start + length);
    }
    if (this.#slabOf.has(bytes.buffer)) return bytes.subarray(start, start + length);
    if (start === 0 && length === bytes.length) return bytes;
    const node = Buffer.allocUnsafeSlow(length);
    bytes.copy(node, 0, start, start + length);
    return node;
  }

  /** Returns the cached node and marks it most recently used, counting a hit or a miss. */
  get(fileId: number, pointer: number): Buffer | undefined {
    const entry = this.#files.get(fileId)?.get(pointer);
    if (entry === undefined) {
      this.#misses += 1;
      return undefined;
    }
    this.#hits += 1;
    entry.touched = this.#sequence;
    if (entry !== this.#newest) {
      this.#unlink(entry);
      this.#link(entry);
    }
    return entry.bytes;
  }

  /**
   * Caches a node. A buffer from `allocate` is counted through its slab. A buffer from
   * elsewhere counts its length, and one larger than the whole budget is not kept. Either way
   * the node cached before under the same key is removed.
   */
  set(fileId: number, pointer: number, bytes: Buffer): void {
    const slab = this.#slabOf.get(bytes.buffer);
    let file = this.#files.get(fileId);
    const previous = file?.get(pointer);
    if (previous !== undefined) this.#remove(previous);
    // The old node goes even when the new one is too large to keep, because it is stale.
    if (slab === undefined && bytes.length > this.#budgetBytes) return;
    // Removing the last entry of a file drops the file's map, so look it up again.
    file = this.#files.get(fileId);
    if (file === undefined) {
      file = new Map();
      this.#files.set(fileId, file);
    }
    const entry: Entry = {
      fileId,
      pointer,
      bytes,
      slab,
      touched: this.#sequence,
      cached: true,
      older: undefined,
      newer: undefined,
    };
    file.set(pointer, entry);
    this.#link(entry);
    this.#nodeBytes += bytes.length;
    if (bytes[0] === NODE_INTERIOR) this.#interiorBytes += bytes.length;
    if (slab === undefined) this.#sizeBytes += bytes.length;
    else this.#addToSlab(slab, entry);
    this.#evict();
  }

  /**
   * Marks a cached node as not worth keeping, e.g. one that a copy-on-write update replaced.
   * It stays readable, for older snapshots, until evicted: a buffer from elsewhere goes first,
   * a node in a slab goes with its slab instead of being copied forward. Does nothing for a
   * node not cached.
   */
  demote(fileId: number, pointer: number): void {
    const entry = this.#files.get(fileId)?.get(pointer);
    if (entry === undefined) return;
    entry.touched = DEMOTED;
    if (entry.slab !== undefined || entry === this.#oldest) return;
    this.#unlink(entry);
    entry.newer = this.#oldest;
    this.#oldest!.older = entry;
    this.#oldest = entry;
  }

  /** Drops every node of a file, e.g. when it closes. */
  dropFile(fileId: number): void {
    const file = this.#files.get(fileId);
    if (file === undefined) return;
    for (const entry of [...file.values()]) this.#remove(entry);
  }

  /** Returns the slab size for the current budget, or 0 when nodes get ArrayBuffers of their own. */
  #slabBytes(): number {
    const bytes = Math.min(MAX_SLAB_BYTES, Math.floor(this.#budgetBytes / SLABS_PER_BUDGET));
    return bytes < MIN_SLAB_BYTES ? 0 : bytes;
  }

  /** Starts a new current slab and carves `length` bytes from it, without evicting. */
  #carve(length: number, slabBytes: number): Buffer {
    if (this.#current !== undefined) this.#retire(this.#current);
    const slab: Slab = {
      bytes: Buffer.allocUnsafeSlow(slabBytes),
      used: length,
      entries: [],
      live: 0,
      charged: false,
    };
    this.#slabOf.set(slab.bytes.buffer, slab);
    this.#charge(slab);
    this.#current = slab;
    this.#sequence += 1;
    return slab.bytes.subarray(0, length);
  }

  /** Stops filling a slab. It is released once no cached node remains in it. */
  #retire(slab: Slab): void {
    if (this.#current === slab) this.#current = undefined;
    if (slab.live === 0) this.#uncharge(slab);
  }

  #charge(slab: Slab): void {
    assert(!slab.charged, 'a slab is counted once');
    slab.charged = true;
    this.#sizeBytes += slab.bytes.length;
    this.#slabs += 1;
  }

  #uncharge(slab: Slab): void {
    if (!slab.charged) return;
    slab.charged = false;
    slab.entries = [];
    this.#sizeBytes -= slab.bytes.length;
    this.#slabs -= 1;
  }

  #addToSlab(slab: Slab, entry: Entry): void {
    if (!slab.charged) this.#charge(slab);
    slab.live += 1;
    slab.entries.push(entry);
  }

  #evict(): void {
    // Nodes copied forward in this call. Past a budget's worth, every node kept was copied
    // once already, so the rest of the call keeps none: that bounds the work and ends it.
    let copiedBytes = 0;
    while (this.#sizeBytes > this.#budgetBytes && this.#oldest !== undefined) {
      const oldest = this.#oldest;
      if (oldest.slab === undefined) {
        this.#remove(oldest);
        this.#evictions += 1;
      } else {
        copiedBytes += this.#evictSlab(oldest.slab, copiedBytes < this.#budgetBytes);
      }
    }
  }

  /**
   * Releases a slab: copies the nodes worth keeping to the current slab when `keep` is set,
   * and evicts the others. Returns the bytes copied.
   */
  #evictSlab(slab: Slab, keep: boolean): number {
    if (this.#current === slab) this.#current = undefined;
    const recentSince = this.#sequence - Math.max(1, Math.floor(this.#recentSlabs()));
    let copiedBytes = 0;
    const entries = slab.entries;
    // Newest placements first, so that the node just cached is the first one kept.
    for (let index = entries.length - 1; index >= 0; index--) {
      const entry = entries[index]!;
      if (!entry.cached || entry.slab !== slab) continue;
      if (keep && this.#keeps(entry, recentSince)) {
        copiedBytes += entry.bytes.length;
        this.#moveToCurrentSlab(entry);
      } else {
        this.#remove(entry);
        this.#evictions += 1;
      }
    }
    assert(slab.live === 0, 'an evicted slab holds no cached node');
    assert(!slab.charged, 'an evicted slab is not counted');
    return copiedBytes;
  }

  /** Whether a node of a slab being evicted is copied forward instead. */
  #keeps(entry: Entry, recentSince: number): boolean {
    if (entry.touched > recentSince) return true;
    const interior = entry.bytes[0] === NODE_INTERIOR && entry.touched !== DEMOTED;
    return interior && this.#interiorBytes <= this.#budgetBytes * INTERIOR_SHARE_MAX;
  }

  /** Returns half the number of slabs the budget holds, the window in which a node is recent. */
  #recentSlabs(): number {
    const slabBytes = this.#slabBytes();
    return slabBytes === 0 ? 0 : (this.#budgetBytes / slabBytes) * RECENT_SHARE;
  }

  #moveToCurrentSlab(entry: Entry): void {
    const length = entry.bytes.length;
    const current = this.#current;
    let copy: Buffer;
    if (current !== undefined && current.used + length <= current.bytes.length) {
      copy = current.bytes.subarray(current.used, current.used + length);
      current.used += length;
    } else {
      copy = this.#carve(length, Math.max(this.#slabBytes(), length));
    }
    entry.bytes.copy(copy);
    // A node kept is treated as just used; left at the old end of the list, it would be the
    // next eviction's victim and take its new slab's other nodes with it.
    this.#unlink(entry);
    this.#link(entry);
    const from = entry.slab!;
    from.live -= 1;
    if (from.live === 0 && from !== this.#current) this.#uncharge(from);
    entry.bytes = copy;
    entry.slab = this.#current;
    this.#addToSlab(this.#current!, entry);
  }

  #remove(entry: Entry): void {
    const file = this.#files.get(entry.fileId)!;
    file.delete(entry.pointer);
    if (file.size === 0) this.#files.delete(entry.fileId);
    this.#unlink(entry);
    entry.cached = false;
    this.#nodeBytes -= entry.bytes.length;
    if (entry.bytes[0] === NODE_INTERIOR) this.#interiorBytes -= entry.bytes.length;
    const slab = entry.slab;
    if (slab === undefined) {
      this.#sizeBytes -= entry.bytes.length;
      return;
    }
    slab.live -= 1;
    if (slab.live === 0 && slab !== this.#current) this.#uncharge(slab);
  }

  #link(entry: Entry): void {
    entry.older = this.#newest;
    entry.newer = undefined;
    if (this.#newest !== undefined) this.#newest.newer = entry;
    this.#newest = entry;
    this.#oldest ??= entry;
  }

  #unlink(entry: Entry): void {
    if (entry.older !== undefined) entry.older.newer = entry.newer;
    else this.#oldest = entry.newer;
    if (entry.newer !== undefined) entry.newer.older = entry.older;
    else this.#newest = entry.older;
    entry.older = undefined;
    entry.newer = undefined;
  }
}

function sharedBudgetFromEnv(): number {
  const value = process.env.DIVAN_NODE_CACHE_BYTES;
  if (value === undefined || value === '') return DEFAULT_SHARED_BUDGET_BYTES;
  const budget = Number(value);
  if (!Number.isSafeInteger(budget) || budget < 0) {
    throw new Error(`DIVAN_NODE_CACHE_BYTES: invalid value "${value}"; expected bytes >= 0`);
  }
  return budget;
}
