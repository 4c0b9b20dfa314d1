/**
 * The configurations a node's log holds: the membership in effect at a base point (the applied
 * index, or a snapshot), followed by every configuration entry after it. A configuration takes
 * effect as soon as its entry is appended, on leaders and followers alike, and a truncation that
 * removes the entry brings back the configuration before it.
 *
 * Invariant: the indexes of `#changes` ascend and all exceed the base index. The base index is
 * at most the applied index, so every configuration that a truncation can remove (only
 * uncommitted entries are ever truncated) is still in `#changes`.
 *
 * It does not read the log itself: `RaftLog` reports every append, truncation and reset.
 */
import { decodeMembership } from './conf-change.js';
import type { Entry, Membership } from './types.js';

/** A membership and the log index from which it is in effect. */
export interface ConfigPoint {
  readonly index: number;
  readonly membership: Membership;
}

export class MembershipHistory {
  #base: ConfigPoint;
  #changes: ConfigPoint[] = [];

  constructor(base: ConfigPoint) {
    this.#base = base;
  }

  /** Returns the membership in effect: that of the last configuration entry in the log. */
  current(): Membership {
    return this.latest().membership;
  }

  /** Returns the last configuration entry, or the base point when the log has none after it. */
  latest(): ConfigPoint {
    return this.#changes[this.#changes.length - 1] ?? this.#base;
  }

  /** Returns the configuration before the latest: in effect again if the latest is truncated. */
  previous(): ConfigPoint {
    return this.#changes[this.#changes.length - 2] ?? this.#base;
  }

  /**
   * Records entries written to the log from `entries[0].index` on. Configurations at or after
   * that index were overwritten, so they go before the new ones are added.
   */
  appended(entries: readonly Entry[]): void {
    const first = entries[0];
    if (first === undefined) return;
    this.#truncateFrom(first.index);
    for (const entry of entries) {
      if (entry.type !== 'config' || entry.index <= this.#base.index) continue;
      this.#changes.push({ index: entry.index, membership: decodeMembership(entry.data) });
    }
  }

  /** Records one entry appended at the end of the log. */
  appendedOne(entry: Entry): void {
    if (entry.type !== 'config') return;
    this.#changes.push({ index: entry.index, membership: decodeMembership(entry.data) });
  }

  /** Folds configurations at or below `index` into the base: they can no longer be removed. */
  compactTo(index: number): void {
    let count = 0;
    while (count < this.#changes.length && this.#changes[count]!.index <= index) count++;
    if (count === 0) return;
    this.#base = this.#changes[count - 1]!;
    this.#changes.splice(0, count);
  }

  /** Starts over from `base`, after a snapshot install replaced the log before it. */
  reset(base: ConfigPoint): void {
    this.#base = base;
    this.#changes = [];
  }

  #truncateFrom(index: number): void {
    while (this.#changes.length > 0 && this.#changes[this.#changes.length - 1]!.index >= index) {
      this.#changes.pop();
    }
  }
}
