/**
 * The leader's queue of linearizable reads (ReadIndex). A read records the commit index when it
 * arrives and is served once a quorum has answered a heartbeat round started after it: that
 * proves the leader still led when the read arrived. All reads queued before a round starts
 * share it.
 *
 * A new leader does not know the commit index of earlier terms until an entry of its own term
 * commits, so reads that arrive before its no-op commits wait in `waitingForCommit`.
 *
 * Invariant: rounds are numbered from 1 in each term; every pending read's round is at most
 * `roundStarted + 1`.
 */
import type { NodeId } from './types.js';

export interface PendingRead {
  readonly context: string;
  /** The node that asked; the leader's own id for local reads. */
  readonly from: NodeId;
  index: number;
  round: number;
}

export class ReadQueue {
  #waitingForCommit: PendingRead[] = [];
  #pending: PendingRead[] = [];
  /** The last round whose heartbeats were sent. */
  roundStarted = 0;

  get size(): number {
    return this.#waitingForCommit.length + this.#pending.length;
  }

  /** Queues a read that must wait for the leader's first commit in its term. */
  addWaiting(context: string, from: NodeId): void {
    this.#waitingForCommit.push({ context, from, index: 0, round: 0 });
  }

  /** Queues a read at `commit`, to be confirmed by the next round. */
  add(context: string, from: NodeId, commit: number): void {
    this.#pending.push({ context, from, index: commit, round: this.roundStarted + 1 });
  }

  /** Moves the reads waiting for a commit in this term into the queue at `commit`. */
  releaseWaiting(commit: number): void {
    for (const read of this.#waitingForCommit) {
      read.index = commit;
      read.round = this.roundStarted + 1;
      this.#pending.push(read);
    }
    this.#waitingForCommit = [];
  }

  /** Whether a read waits for a round that has not started. */
  needsRound(): boolean {
    const count = this.#pending.length;
    return count > 0 && this.#pending[count - 1]!.round > this.roundStarted;
  }

  startRound(): number {
    this.roundStarted++;
    return this.roundStarted;
  }

  /** Removes and returns the reads confirmed by a quorum answering round `confirmed`. */
  confirm(confirmed: number): PendingRead[] {
    let count = 0;
    while (count < this.#pending.length && this.#pending[count]!.round <= confirmed) count++;
    if (count === 0) return [];
    return this.#pending.splice(0, count);
  }

  clear(): void {
    this.#waitingForCommit = [];
    this.#pending = [];
    this.roundStarted = 0;
  }
}
