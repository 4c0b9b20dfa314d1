/**
 * The Raft log as the core reads it: the driver's durable `Storage` followed by the core's
 * unstable entries (appended but not yet acknowledged as durable), plus the commit and apply
 * positions.
 *
 * Unstable entries are split at `inProgress`: entries before it were handed to the driver in a
 * `Ready` and are being persisted; entries from it on have not been handed out yet. An unstable
 * entry may overwrite a durable one (a follower truncating a conflicting tail): the unstable copy
 * wins until the driver persists it.
 *
 * The log also tracks the configurations it holds (`configs`): every append, truncation and
 * reset goes through here, so the membership in effect always matches the log's last
 * configuration entry.
 *
 * Invariants: applied <= applying <= committed <= lastIndex(); committed never decreases;
 * offset <= inProgress <= lastIndex() + 1; entries in [firstIndex(), offset) are durable.
 */
import { assert } from './assert.js';
import { MembershipHistory } from './membership-history.js';
import type { Storage } from './storage.js';
import { entrySizeBytes } from './storage.js';
import type { Entry, Membership } from './types.js';

const NO_LIMIT = Number.POSITIVE_INFINITY;
/** Bytes of entries read per storage call while looking for configuration entries. */
const CONFIG_SCAN_BYTES = 1024 * 1024;

export class RaftLog {
  readonly storage: Storage;
  /** Unstable entries; `unstable[0]` has index `offset`. */
  unstable: Entry[] = [];
  offset: number;
  /** First unstable index not yet handed out to the driver. */
  inProgress: number;
  committed: number;
  /** Highest index handed out for apply. */
  applying: number;
  /** Highest index the driver reported applied. */
  applied: number;
  /** The configurations in the log from the applied index on. */
  readonly configs: MembershipHistory;

  /**
   * Opens the log over `storage`. `membership` is the membership as of `applied`; when the
   * snapshot is newer than `applied`, the snapshot's membership is used instead.
   */
  constructor(storage: Storage, applied: number, membership: Membership) {
    this.storage = storage;
    this.offset = storage.lastIndex() + 1;
    this.inProgress = this.offset;
    const snapshot = storage.snapshotMeta();
    this.committed = Math.max(storage.hardState().commit, snapshot.index);
    const base = Math.max(applied, snapshot.index);
    assert(base <= this.committed, () => `applied ${base} above commit ${this.committed}`);
    this.applying = base;
    this.applied = base;
    const baseMembership = base === applied ? membership : snapshot.membership;
    this.configs = new MembershipHistory({ index: base, membership: baseMembership });
    this.#scanConfigs(base + 1);
  }

  /** Records the configuration entries of the durable log from `from` on. */
  #scanConfigs(from: number): void {
    const end = this.storage.lastIndex() + 1;
    let next = Math.max(from, this.storage.firstIndex());
    while (next < end) {
      const entries = this.storage.entries(next, end, CONFIG_SCAN_BYTES);
      assert(entries.length > 0, () => `storage returned no entries at ${next}`);
      for (const entry of entries) this.configs.appendedOne(entry);
      next = entries[entries.length - 1]!.index + 1;
    }
  }

  firstIndex(): number {
    return this.storage.firstIndex();
  }

  lastIndex(): number {
    const count = this.unstable.length;
    return count > 0 ? this.offset + count - 1 : this.storage.lastIndex();
  }

  /** Returns the term of `index`, or undefined when it was discarded or is past the last index. */
  term(index: number): number | undefined {
    if (index >= this.offset) {
      const position = index - this.offset;
      if (position < this.unstable.length) return this.unstable[position]!.term;
      if (this.unstable.length > 0) return undefined;
    }
    return this.storage.term(index);
  }

  lastTerm(): number {
    const term = this.term(this.lastIndex());
    assert(term !== undefined, 'the term of the last index is always known');
    return term;
  }

  matchTerm(index: number, term: number): boolean {
    return this.term(index) === term;
  }

  /** Returns whether a log ending at (lastIndex, lastTerm) is at least as up to date as this one. */
  isUpToDate(lastIndex: number, lastTerm: number): boolean {
    const ownTerm = this.lastTerm();
    return lastTerm > ownTerm || (lastTerm === ownTerm && lastIndex >= this.lastIndex());
  }

  /** Returns the index of the first entry that conflicts with the log or extends it, or 0. */
  findConflict(entries: readonly Entry[]): number {
    for (const entry of entries) {
      if (!this.matchTerm(entry.index, entry.term)) return entry.index;
    }
    return 0;
  }

  /**
   * Returns the largest index at or below `index` whose term is at most `term`, with that term:
   * the last place where a log whose entry at `index` has `term` can match this one. Used on both
   * sides of the fast back-off after a rejected append.
   */
  findConflictByTerm(index: number, term: number): { index: number; term: number } {
    let at = Math.min(index, this.lastIndex());
    while (at > 0) {
      const ownTerm = this.term(at);
      if (ownTerm === undefined) return { index: at, term: 0 };
      if (ownTerm <= term) return { index: at, term: ownTerm };
      at--;
    }
    return { index: 0, term: 0 };
  }

  /**
   * Appends `entries` that follow (prevIndex, prevTerm) from the leader, truncating only from
   * the first conflicting entry, and raises the commit index to min(commit, last new entry).
   * Returns the last verified index, or -1 when the previous entry does not match.
   */
  maybeAppend(
    prevIndex: number,
    prevTerm: number,
    commit: number,
    entries: readonly Entry[],
    truncateEverything: boolean,
  ): number {
    if (!this.matchTerm(prevIndex, prevTerm)) return -1;
    const lastNewIndex = prevIndex + entries.length;
    if (truncateEverything && entries.length > 0) {
      // Planted bug: overwrite from prevIndex + 1 even where the entries already match.
      this.#appendUnchecked(entries);
    } else {
      const conflict = this.findConflict(entries);
      if (conflict !== 0) {
        assert(
          conflict > this.committed,
          () => `conflict at ${conflict} within committed ${this.committed}`,
        );
        this.append(entries.slice(conflict - prevIndex - 1));
      }
    }
    this.commitTo(Math.min(commit, lastNewIndex));
    return lastNewIndex;
  }

  /** Appends entries to the unstable tail; the first may overwrite from its index on. */
  append(entries: readonly Entry[]): void {
    if (entries.length === 0) return;
    assert(
      entries[0]!.index > this.committed,
      () => `append at ${entries[0]!.index} overwrites committed ${this.committed}`,
    );
    this.#appendUnchecked(entries);
  }

  #appendUnchecked(entries: readonly Entry[]): void {
    const first = entries[0]!.index;
    assert(
      first <= this.lastIndex() + 1,
      () => `append at ${first} leaves a gap after ${this.lastIndex()}`,
    );
    this.configs.appended(entries);
    const end = this.offset + this.unstable.length;
    if (first === end && (this.unstable.length > 0 || first === this.storage.lastIndex() + 1)) {
      for (const entry of entries) this.unstable.push(entry);
      return;
    }
    if (first <= this.offset) {
      this.offset = first;
      this.unstable = entries.slice();
    } else {
      this.unstable.length = first - this.offset;
      for (const entry of entries) this.unstable.push(entry);
    }
    this.inProgress = Math.min(this.inProgress, first);
  }

  /** Appends one entry to the end of the log, the leader's hot path. */
  appendOne(entry: Entry): void {
    assert(entry.index === this.lastIndex() + 1, 'appendOne must extend the log');
    if (this.unstable.length === 0) this.offset = entry.index;
    this.unstable.push(entry);
    this.configs.appendedOne(entry);
  }

  /** Entries not yet handed out; marks them in progress. */
  takeUnstable(): readonly Entry[] {
    const from = this.inProgress - this.offset;
    if (from >= this.unstable.length) return [];
    const entries = from === 0 ? this.unstable.slice() : this.unstable.slice(from);
    this.inProgress = this.offset + this.unstable.length;
    return entries;
  }

  hasUnstableToHandOut(): boolean {
    return this.inProgress < this.offset + this.unstable.length;
  }

  /**
   * Records that entries up to (index, term) are durable. Ignored when the entry was
   * overwritten meanwhile: its replacement is still to be persisted.
   */
  stableTo(index: number, term: number): void {
    if (index < this.offset) return;
    const position = index - this.offset;
    if (position >= this.unstable.length) return;
    if (this.unstable[position]!.term !== term) return;
    this.unstable.splice(0, position + 1);
    this.offset = index + 1;
    if (this.inProgress < this.offset) this.inProgress = this.offset;
  }

  /** Returns the last index that is durable or handed out for persistence. */
  lastHandedOut(): number {
    return this.inProgress - 1;
  }

  commitTo(index: number): void {
    if (index <= this.committed) return;
    assert(index <= this.lastIndex(), () => `commit ${index} past last index ${this.lastIndex()}`);
    this.committed = index;
  }

  /** Returns whether committed entries are ready to hand out (persisted or in progress). */
  hasEntriesToApply(): boolean {
    return this.applying < Math.min(this.committed, this.lastHandedOut());
  }

  /** Hands out committed entries that are durable or in progress, in log order. */
  takeEntriesToApply(maxBytes: number): Entry[] {
    const high = Math.min(this.committed, this.lastHandedOut());
    if (this.applying >= high) return [];
    const entries = this.slice(this.applying + 1, high + 1, maxBytes);
    assert(entries !== null, 'entries to apply were discarded before being applied');
    this.applying = entries[entries.length - 1]!.index;
    return entries;
  }

  appliedTo(index: number): void {
    assert(index <= this.applying, () => `applied ${index} beyond applying ${this.applying}`);
    if (index > this.applied) this.applied = index;
    this.configs.compactTo(this.applied);
  }

  /**
   * Entries in [lo, hi), capped by `maxBytes` (at least one entry), or null when part of the
   * range was discarded.
   */
  slice(lo: number, hi: number, maxBytes: number = NO_LIMIT): Entry[] | null {
    if (lo >= hi) return [];
    if (lo < this.firstIndex()) return null;
    assert(hi <= this.lastIndex() + 1, () => `slice to ${hi} past ${this.lastIndex()}`);
    let entries: Entry[] = [];
    let sizeBytes = 0;
    if (lo < this.offset) {
      entries = this.storage.entries(lo, Math.min(hi, this.offset), maxBytes);
      for (const entry of entries) sizeBytes += entrySizeBytes(entry);
      if (entries.length < Math.min(hi, this.offset) - lo) return entries;
    }
    for (let index = Math.max(lo, this.offset); index < hi; index++) {
      const entry = this.unstable[index - this.offset]!;
      sizeBytes += entrySizeBytes(entry);
      if (sizeBytes > maxBytes && entries.length > 0) break;
      entries.push(entry);
    }
    return entries;
  }

  /** Resets the log to an installed snapshot at `index` whose membership is `membership`. */
  restore(index: number, membership: Membership): void {
    assert(index > this.applied, () => `snapshot ${index} at or below applied ${this.applied}`);
    this.unstable = [];
    // The storage may keep entries after the snapshot that match it; they are durable.
    this.offset = Math.max(index, this.storage.lastIndex()) + 1;
    this.inProgress = this.offset;
    if (index > this.committed) this.committed = index;
    this.applying = index;
    this.applied = index;
    this.configs.reset({ index, membership });
    this.#scanConfigs(index + 1);
  }
}
