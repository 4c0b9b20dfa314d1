/**
 * The Raft core's view of one group's durable log: the `Storage` the core reads, kept by the
 * group driver next to the database file.
 *
 * The file is the durable copy. This store mirrors what the file holds after each durable
 * commit: the hard state, the discard point (snapshot metadata) and the retained entries. Terms
 * of every retained entry stay in memory; payloads stay in memory only within a byte budget,
 * newest first, and older ones are read back from the file on demand (reads are synchronous).
 *
 * A store opens with no payload cached: it reads only the terms and payload lengths of the
 * retained entries, and payloads come from the file when first asked for.
 *
 * Invariant: firstIndex() === snapshot.index + 1, and `#terms[#head + i]` is the term of index
 * snapshot.index + 1 + i. Only durable state is visible: the driver calls the mutators after
 * the commit that wrote it has been synced.
 */
import type { Entry, HardState, Membership, SnapshotMeta, Storage } from '../raft/index.js';
import { ENTRY_OVERHEAD_BYTES, entrySizeBytes } from '../raft/index.js';
import { assert } from '../util/assert.js';

/** Reads entries [from, to) back from the database file. */
export type LogReader = (from: number, to: number) => Entry[];

/** The terms and payload lengths of the retained entries, in index order from the first. */
export interface RetainedShape {
  readonly terms: readonly number[];
  readonly payloadBytes: readonly number[];
}

export class LogStore implements Storage {
  #hardState: HardState;
  #snapshot: SnapshotMeta;
  #terms: number[] = [];
  /** Payload cache aligned with `#terms`; undefined where evicted. */
  #cached: (Entry | undefined)[] = [];
  /** Index of the oldest cached entry; everything from it to the last index is cached. */
  #cachedFrom: number;
  #cachedBytes = 0;
  /** Bytes of all retained entries, for the retention caps. */
  #retainedBytes = 0;
  readonly #sizes: number[] = [];
  /**
   * Slots at the front of the three arrays that a discard left behind. They are dropped in one
   * splice once they are half of the arrays, so a discard does not shift every entry.
   */
  #head = 0;

  constructor(
    hardState: HardState,
    snapshot: SnapshotMeta,
    retained: RetainedShape,
    private readonly readFromFile: LogReader,
    private readonly cacheBudgetBytes: number,
  ) {
    assert(
      retained.terms.length === retained.payloadBytes.length,
      () => `${retained.terms.length} terms for ${retained.payloadBytes.length} payload lengths`,
    );
    this.#hardState = hardState;
    this.#snapshot = snapshot;
    for (let i = 0; i < retained.terms.length; i++) {
      const size = retained.payloadBytes[i]! + ENTRY_OVERHEAD_BYTES;
      this.#terms.push(retained.terms[i]!);
      this.#sizes.push(size);
      this.#cached.push(undefined);
      this.#retainedBytes += size;
    }
    this.#cachedFrom = this.lastIndex() + 1;
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
    return this.#snapshot.index + this.#count;
  }

  term(index: number): number | undefined {
    const offset = this.#snapshot.index;
    if (index === offset) return this.#snapshot.term;
    if (index < offset || index > offset + this.#count) return undefined;
    return this.#terms[index - this.#base];
  }

  /** Number of retained entries. */
  get #count(): number {
    return this.#terms.length - this.#head;
  }

  /** The index whose slot in the arrays is 0. */
  get #base(): number {
    return this.#snapshot.index + 1 - this.#head;
  }

  entries(lo: number, hi: number, maxBytes: number): Entry[] {
    assert(lo >= this.firstIndex(), () => `entries: ${lo} was discarded`);
    assert(hi <= this.lastIndex() + 1, () => `entries: ${hi} is past the last index`);
    const base = this.#base;
    let end = lo;
    let sizeBytes = 0;
    while (end < hi) {
      sizeBytes += this.#sizes[end - base]!;
      if (sizeBytes > maxBytes && end > lo) break;
      end++;
    }
    if (lo >= this.#cachedFrom) {
      return this.#cached.slice(lo - base, end - base) as Entry[];
    }
    const fromFile = this.readFromFile(lo, Math.min(end, this.#cachedFrom));
    assert(
      fromFile.length === Math.min(end, this.#cachedFrom) - lo,
      () => `log read of [${lo}, ${end}) returned ${fromFile.length} entries`,
    );
    if (end <= this.#cachedFrom) return fromFile;
    return fromFile.concat(this.#cached.slice(this.#cachedFrom - base, end - base) as Entry[]);
  }

  /** Bytes of the retained entries (payloads and per-entry overhead). */
  get retainedBytes(): number {
    return this.#retainedBytes;
  }

  /** The index at or below which entries must go so that at most `maxEntries`/`maxBytes` remain. */
  capPoint(maxEntries: number, maxBytes: number): number {
    let point = Math.max(this.#snapshot.index, this.lastIndex() - maxEntries);
    let bytes = this.#retainedBytes;
    const base = this.#base;
    for (let index = this.firstIndex(); index <= point; index++) {
      bytes -= this.#sizes[index - base]!;
    }
    while (bytes > maxBytes && point < this.lastIndex()) {
      point++;
      bytes -= this.#sizes[point - base]!;
    }
    return point;
  }

  /** Replaces everything with an installed snapshot's state: no entries after `snapshot`. */
  reset(hardState: HardState, snapshot: SnapshotMeta): void {
    this.#hardState = hardState;
    this.#snapshot = snapshot;
    this.#terms = [];
    this.#sizes.length = 0;
    this.#cached = [];
    this.#head = 0;
    this.#cachedFrom = snapshot.index + 1;
    this.#cachedBytes = 0;
    this.#retainedBytes = 0;
  }

  setHardState(hardState: HardState): void {
    this.#hardState = hardState;
  }

  /** Appends durable entries; the first may overwrite the log from its index on. */
  append(entries: readonly Entry[]): void {
    if (entries.length === 0) return;
    const first = entries[0]!.index;
    assert(first > this.#snapshot.index, () => `append at ${first} overlaps the discard point`);
    assert(first <= this.lastIndex() + 1, () => `append at ${first} leaves a gap`);
    this.#truncateFrom(first);
    if (this.#cachedFrom > first) this.#cachedFrom = first;
    for (const entry of entries) {
      const size = entrySizeBytes(entry);
      this.#terms.push(entry.term);
      this.#sizes.push(size);
      this.#cached.push(entry);
      this.#cachedBytes += size;
      this.#retainedBytes += size;
    }
    this.#evict();
  }

  /** Discards entries up to and including `index`, recording it as the discard point. */
  discard(index: number, membership: Membership): void {
    if (index <= this.#snapshot.index) return;
    assert(index <= this.lastIndex(), () => `discard at ${index} past last ${this.lastIndex()}`);
    const term = this.term(index)!;
    const count = index - this.#snapshot.index;
    for (let i = this.#head; i < this.#head + count; i++) {
      this.#retainedBytes -= this.#sizes[i]!;
      if (this.#cached[i] !== undefined) this.#cachedBytes -= this.#sizes[i]!;
      this.#cached[i] = undefined;
    }
    this.#head += count;
    if (this.#head * 2 >= this.#terms.length) {
      this.#terms.splice(0, this.#head);
      this.#sizes.splice(0, this.#head);
      this.#cached.splice(0, this.#head);
      this.#head = 0;
    }
    this.#snapshot = { index, term, membership };
    if (this.#cachedFrom <= index) this.#cachedFrom = index + 1;
  }

  #truncateFrom(first: number): void {
    const keep = this.#head + first - this.#snapshot.index - 1;
    for (let i = keep; i < this.#terms.length; i++) {
      this.#retainedBytes -= this.#sizes[i]!;
      if (this.#cached[i] !== undefined) this.#cachedBytes -= this.#sizes[i]!;
    }
    this.#terms.length = Math.min(this.#terms.length, keep);
    this.#sizes.length = this.#terms.length;
    this.#cached.length = this.#terms.length;
  }

  /** Drops the oldest cached payloads until the cache fits its budget; keeps the newest one. */
  #evict(): void {
    const base = this.#base;
    while (this.#cachedBytes > this.cacheBudgetBytes && this.#cachedFrom < this.lastIndex()) {
      const slot = this.#cachedFrom - base;
      this.#cachedBytes -= this.#sizes[slot]!;
      this.#cached[slot] = undefined;
      this.#cachedFrom++;
    }
  }
}
