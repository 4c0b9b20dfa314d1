/**
 * A least-recently-used cache of B+tree node buffers, bounded in bytes and keyed by block
 * file handle and record pointer. One cache serves every tree of a file and, through
 * `NodeCache.shared`, every file of a process, so many open files share one memory budget.
 *
 * Cached buffers are the verified record payloads; nobody may change them. Their memory is
 * ArrayBuffer storage outside the V8 heap. Only payload bytes count toward the budget, not
 * the few dozen bytes of bookkeeping per entry.
 */
import { assert } from '../util/assert.js';

/** Budget of `NodeCache.shared` unless DIVAN_NODE_CACHE_BYTES sets another. */
const DEFAULT_SHARED_BUDGET_BYTES = 256 * 1024 * 1024;

interface Entry {
  fileId: number;
  pointer: number;
  bytes: Buffer;
  older: Entry | undefined;
  newer: Entry | undefined;
}

export interface NodeCacheStats {
  hits: number;
  misses: number;
  evictions: number;
  sizeBytes: number;
  budgetBytes: number;
  /** hits / (hits + misses), or 0 before the first lookup. */
  hitRate: number;
}

export class NodeCache {
  static readonly shared = new NodeCache(sharedBudgetFromEnv());

  readonly #files = new Map<number, Map<number, Entry>>();
  #oldest: Entry | undefined;
  #newest: Entry | undefined;
  #budgetBytes: number;
  #sizeBytes = 0;
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
    };
  }

  /** Zeroes the hit, miss and eviction counters. */
  resetCounters(): void {
    this.#hits = 0;
    this.#misses = 0;
    this.#evictions = 0;
  }

  /** Returns the cached node and marks it most recently used, counting a hit or a miss. */
  get(fileId: number, pointer: number): Buffer | undefined {
    const entry = this.#files.get(fileId)?.get(pointer);
    if (entry === undefined) {
      this.#misses += 1;
      return undefined;
    }
    this.#hits += 1;
    if (entry !== this.#newest) {
      this.#unlink(entry);
      this.#link(entry);
    }
    return entry.bytes;
  }

  /** Caches a node; a node larger than the whole budget is not kept. */
  set(fileId: number, pointer: number, bytes: Buffer): void {
    if (bytes.length > this.#budgetBytes) return;
    const previous = this.#files.get(fileId)?.get(pointer);
    // Removing the last entry of a file drops the file's map, so look it up afterwards.
    if (previous !== undefined) this.#remove(this.#files.get(fileId)!, previous);
    let file = this.#files.get(fileId);
    if (file === undefined) {
      file = new Map();
      this.#files.set(fileId, file);
    }
    const entry: Entry = { fileId, pointer, bytes, older: undefined, newer: undefined };
    file.set(pointer, entry);
    this.#link(entry);
    this.#sizeBytes += bytes.length;
    this.#evict();
  }

  /** Drops every node of a file, e.g. when it closes. */
  dropFile(fileId: number): void {
    const file = this.#files.get(fileId);
    if (file === undefined) return;
    for (const entry of file.values()) {
      this.#unlink(entry);
      this.#sizeBytes -= entry.bytes.length;
    }
    this.#files.delete(fileId);
  }

  #evict(): void {
    while (this.#sizeBytes > this.#budgetBytes && this.#oldest !== undefined) {
      const entry = this.#oldest;
      this.#remove(this.#files.get(entry.fileId)!, entry);
      this.#evictions += 1;
    }
  }

  #remove(file: Map<number, Entry>, entry: Entry): void {
    file.delete(entry.pointer);
    if (file.size === 0) this.#files.delete(entry.fileId);
    this.#unlink(entry);
    this.#sizeBytes -= entry.bytes.length;
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
