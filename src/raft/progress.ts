/**
 * The leader's view of one follower: how far its log is known to match (`match`), where the next
 * AppendEntries starts (`next`), and the flow-control state.
 *
 * - `probe`: the leader does not know where the logs diverge. It sends one append at a time and
 *   waits for the response (or the next heartbeat response) before sending another.
 * - `replicate`: the logs match up to `match`; the leader streams appends optimistically, up to
 *   a bounded number of messages and bytes in flight.
 * - `snapshot`: the follower needs entries the leader discarded; the leader sends nothing until
 *   the snapshot is installed, reported failed, or times out.
 *
 * Invariant: 0 <= match < next. `match` never moves backwards while the leader keeps its term,
 * and stale rejections never move `next` backwards.
 */
import { assert } from './assert.js';

export type ProgressState = 'probe' | 'replicate' | 'snapshot';

/**
 * A ring buffer of the last index of each append in flight, with their total size, bounded by
 * count and bytes. Freed from the front as acknowledgements arrive.
 */
export class Inflights {
  readonly #lastIndexes: Float64Array;
  readonly #sizesBytes: Float64Array;
  #start = 0;
  #count = 0;
  #totalBytes = 0;

  constructor(
    readonly maxMessages: number,
    readonly maxBytes: number,
  ) {
    assert(maxMessages > 0, `maxMessages must be positive, got ${maxMessages}`);
    this.#lastIndexes = new Float64Array(maxMessages);
    this.#sizesBytes = new Float64Array(maxMessages);
  }

  get count(): number {
    return this.#count;
  }

  get totalBytes(): number {
    return this.#totalBytes;
  }

  /** Returns whether no further append may be sent. */
  full(): boolean {
    return this.#count === this.maxMessages || this.#totalBytes >= this.maxBytes;
  }

  /** Records an append whose last entry is `lastIndex`. */
  add(lastIndex: number, sizeBytes: number): void {
    assert(!this.full(), 'inflights: add while full');
    const slot = (this.#start + this.#count) % this.maxMessages;
    this.#lastIndexes[slot] = lastIndex;
    this.#sizesBytes[slot] = sizeBytes;
    this.#count++;
    this.#totalBytes += sizeBytes;
  }

  /** Frees every append whose last index is at most `index`. */
  freeTo(index: number): void {
    while (this.#count > 0 && this.#lastIndexes[this.#start]! <= index) {
      this.#totalBytes -= this.#sizesBytes[this.#start]!;
      this.#start = (this.#start + 1) % this.maxMessages;
      this.#count--;
    }
    if (this.#count === 0) {
      this.#start = 0;
      this.#totalBytes = 0;
    }
  }

  reset(): void {
    this.#start = 0;
    this.#count = 0;
    this.#totalBytes = 0;
  }
}

export class Progress {
  match = 0;
  next: number;
  state: ProgressState = 'probe';
  /** In probe state: an append was sent and no response has come back yet. */
  probeSent = false;
  /** In snapshot state: the index of the snapshot sent. */
  pendingSnapshot = 0;
  /** Ticks spent in snapshot state, for the resend timeout. */
  snapshotElapsedTicks = 0;
  /** Whether the follower was heard from since the last check-quorum round. */
  recentActive = false;
  /** The highest commit index sent to the follower, so commit advances reach it promptly. */
  sentCommit = 0;
  /** The highest commit index the follower reported in a heartbeat response. */
  commitAcked = 0;
  /** In replicate state: heartbeat responses in a row during which `match` did not move. */
  stalledHeartbeats = 0;
  #matchAtHeartbeat = 0;
  /** The highest read round the follower acknowledged in the current term. */
  readRoundAcked = 0;
  /**
   * For a peer that the latest configuration entry removed: that entry's index, which the peer
   * must know committed before the leader stops replicating to it. 0 for members.
   */
  retiringAt = 0;
  readonly inflights: Inflights;

  constructor(next: number, maxInflightMessages: number, maxInflightBytes: number) {
    assert(next > 0, `progress next must be positive, got ${next}`);
    this.next = next;
    this.inflights = new Inflights(maxInflightMessages, maxInflightBytes);
  }

  /** Resets the progress for a new leader whose log ends before `next`. */
  resetForLeader(next: number): void {
    this.match = 0;
    this.#resetState('probe');
    this.next = next;
    this.recentActive = true;
    this.sentCommit = 0;
    this.commitAcked = 0;
    this.readRoundAcked = 0;
    this.retiringAt = 0;
  }

  becomeProbe(): void {
    if (this.state === 'snapshot') {
      // A snapshot that was sent and reported installed lets probing resume after it.
      this.next = Math.max(this.match + 1, this.pendingSnapshot + 1);
    } else {
      this.next = this.match + 1;
    }
    this.#resetState('probe');
  }

  becomeReplicate(): void {
    this.next = this.match + 1;
    this.#resetState('replicate');
  }

  becomeSnapshot(snapshotIndex: number): void {
    this.#resetState('snapshot');
    this.pendingSnapshot = snapshotIndex;
  }

  #resetState(state: ProgressState): void {
    this.state = state;
    this.stalledHeartbeats = 0;
    this.probeSent = false;
    this.pendingSnapshot = 0;
    this.snapshotElapsedTicks = 0;
    this.inflights.reset();
  }

  /**
   * Records a successful acknowledgement up to `index`. Returns whether `match` moved; a stale
   * acknowledgement (at or below `match`) changes nothing but unblocks a probe.
   */
  maybeUpdate(index: number): boolean {
    this.probeSent = false;
    if (index <= this.match) return false;
    this.match = index;
    if (this.next <= index) this.next = index + 1;
    return true;
  }

  /**
   * Handles a rejection of the append whose previous index was `rejected`, with the follower's
   * hint. Returns false when the rejection is stale and was ignored.
   */
  maybeDecreaseTo(rejected: number, hintIndex: number): boolean {
    if (this.state === 'replicate') {
      // In replicate state only a rejection above the match is news; it means the
      // optimistic stream went wrong, so restart from the match.
      if (rejected <= this.match) return false;
      this.next = this.match + 1;
      return true;
    }
    // In probe state only the answer to the last probe counts.
    if (this.next - 1 !== rejected) return false;
    this.next = Math.max(Math.min(rejected, hintIndex + 1), this.match + 1);
    this.probeSent = false;
    return true;
  }

  /** Records an append sent whose last entry is `lastIndex`, of `sizeBytes` in total. */
  sentEntries(entryCount: number, lastIndex: number, sizeBytes: number): void {
    if (this.state === 'replicate') {
      if (entryCount > 0) {
        this.next = lastIndex + 1;
        this.inflights.add(lastIndex, sizeBytes);
      }
      return;
    }
    assert(this.state === 'probe', `sentEntries in state ${this.state}`);
    this.probeSent = true;
  }

  /**
   * Records a heartbeat response. Returns true when the stream looks stalled: appends are
   * outstanding but `match` has not moved for `limit` heartbeat responses, so an append or its
   * acknowledgement was lost and the follower must be probed again.
   */
  heartbeatAnswered(limit: number): boolean {
    this.probeSent = false;
    if (
      this.state !== 'replicate' ||
      this.match >= this.next - 1 ||
      this.match !== this.#matchAtHeartbeat
    ) {
      this.#matchAtHeartbeat = this.match;
      this.stalledHeartbeats = 0;
      return false;
    }
    this.stalledHeartbeats++;
    return this.stalledHeartbeats >= limit;
  }

  /** Whether the leader must hold back appends to this follower for now. */
  paused(): boolean {
    if (this.state === 'probe') return this.probeSent;
    if (this.state === 'replicate') return this.inflights.full();
    return true;
  }
}
