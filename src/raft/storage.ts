/**
 * The read-only view of durable Raft state that the core reads, and `MemoryStorage`, an
 * in-memory implementation for drivers that keep the retained log in memory (the cluster keeps
 * it next to the database file; the simulator and benchmark use it as is).
 *
 * The driver owns the storage: it appends entries, records hard state, discards a prefix and
 * installs snapshots, each only once durable. The core only reads. Reads are synchronous.
 *
 * Invariant: firstIndex() === snapshot index + 1 and lastIndex() >= snapshot index; the term of
 * the snapshot index is always known, so the log's last index and term survive a full discard.
 */
import { assert } from './assert.js';
import type { Entry, HardState, Membership, SnapshotMeta } from './types.js';
import { NO_NODE } from './types.js';

export interface Storage {
  hardState(): HardState;
  /** The metadata of the latest snapshot or discard point; index 0 when there is none. */
  snapshotMeta(): SnapshotMeta;
  firstIndex(): number;
  lastIndex(): number;
  /** The term of `index`, or undefined when it was discarded or is past the last index. */
  term(index: number): number | undefined;
  /**
   * Entries in [lo, hi), stopping once `maxBytes` would be exceeded but always returning at
   * least one entry when lo < hi. The caller keeps firstIndex() <= lo <= hi <= lastIndex() + 1.
   */
  entries(lo: number, hi: number, maxBytes: number): Entry[];
}

/** Per-entry overhead counted on top of the data, for byte caps: index, term and type. */
export const ENTRY_OVERHEAD_BYTES = 24;

export function entrySizeBytes(entry: Entry): number {
  return entry.data.byteLength + ENTRY_OVERHEAD_BYTES;
}

export const INITIAL_HARD_STATE: HardState = Object.freeze({ term: 0, vote: NO_NODE, commit: 0 });

/** Storage backed by arrays. `entries[0]` holds index `snapshot.index + 1`. */
export class MemoryStorage implements Storage {
  #hardState: HardState = INITIAL_HARD_STATE;
  #snapshot: SnapshotMeta;
  #entries: Entry[] = [];

  constructor(membership: Membership) {
    this.#snapshot = { index: 0, term: 0, membership };
  }

  hardState(): HardState {
    return this.#hardState;
  }

  snapshotMeta(): SnapshotMeta {
    return this.#snapshot;
  }

  firstIndex(): number {
    return this.#snapshot.index + 1;
  }

  lastIndex(): number {
    return this.#snapshot.index + this.#entries.length;
  }

  term(index: number): number | undefined {
    const offset = this.#snapshot.index;
    if (index === offset) return this.#snapshot.term;
    if (index < offset || index > offset + this.#entries.length) return undefined;
    return this.#entries[index - offset - 1]!.term;
  }

  entries(lo: number, hi: number, maxBytes: number): Entry[] {
    assert(lo >= this.firstIndex(), () => `entries: ${lo} was discarded`);
    assert(hi <= this.lastIndex() + 1, () => `entries: ${hi} is past the last index`);
    const offset = this.#snapshot.index + 1;
    let end = lo;
    let sizeBytes = 0;
    while (end < hi) {
      sizeBytes += entrySizeBytes(this.#entries[end - offset]!);
      if (sizeBytes > maxBytes && end > lo) break;
      end++;
    }
    return this.#entries.slice(lo - offset, end - offset);
  }

  /** Returns the entry at `index`, or undefined when it is not retained. */
  entry(index: number): Entry | undefined {
    return this.#entries[index - this.#snapshot.index - 1];
  }

  setHardState(hardState: HardState): void {
    this.#hardState = hardState;
  }

  /** Appends entries; the first may overwrite the log from its index on. */
  append(entries: readonly Entry[]): void {
    if (entries.length === 0) return;
    const first = entries[0]!.index;
    assert(first > this.#snapshot.index, () => `append at ${first} overlaps the snapshot`);
    assert(first <= this.lastIndex() + 1, () => `append at ${first} leaves a gap`);
    const keep = first - this.#snapshot.index - 1;
    if (keep < this.#entries.length) this.#entries.length = keep;
    for (const entry of entries) this.#entries.push(entry);
  }

  /** Discards entries up to and including `index`, recording it as the snapshot point. */
  compact(index: number, membership: Membership): void {
    if (index <= this.#snapshot.index) return;
    assert(index <= this.lastIndex(), () => `compact at ${index} past last ${this.lastIndex()}`);
    const term = this.term(index)!;
    this.#entries = this.#entries.slice(index - this.#snapshot.index);
    this.#snapshot = { index, term, membership };
  }

  /** Replaces the log with an installed snapshot's point. */
  installSnapshot(meta: SnapshotMeta): void {
    const keepFrom = meta.index - this.#snapshot.index;
    const matches = this.term(meta.index) === meta.term && keepFrom <= this.#entries.length;
    this.#entries = matches && keepFrom >= 0 ? this.#entries.slice(keepFrom) : [];
    this.#snapshot = meta;
  }
}
