/**
 * The leader's side of Raft: per-member progress, sending appends, snapshots and heartbeats,
 * handling their acknowledgements, advancing the commit index, the ReadIndex queue, and the
 * state of a leadership transfer. `RawNode` owns one instance and calls it only while it leads;
 * the state is reset on each election (`reset`).
 *
 * Progress is kept for every voter and learner, and for peers that the latest configuration
 * entry removed until they report that entry committed (so they learn that they were removed
 * and stop campaigning). Those retiring peers never count toward a quorum, are not reported in
 * `status()`, and are dropped when they stay silent for an election timeout or would need a
 * snapshot.
 *
 * Invariants: the leader's own match (`selfMatch`) is at most its durable index, so the leader
 * counts itself toward commit only once its append is durable. The commit index advances only
 * to an entry of the current term, unless the planted bug `commit_previous_term` is set.
 */
import { assert } from './assert.js';
import type { PlantedBug, RaftConfig } from './config.js';
import type { RaftLog } from './log.js';
import { Progress, type ProgressState } from './progress.js';
import { jointCommitIndex, jointVoteResult } from './quorum.js';
import { type PendingRead, ReadQueue } from './read-queue.js';
import { entrySizeBytes } from './storage.js';
import type { Membership, Message, NodeId, ProgressStatus, ReadState } from './types.js';
import { NO_NODE } from './types.js';

export type MessageFields = Partial<Message> & Pick<Message, 'type' | 'to'>;

/**
 * Heartbeat responses without progress after which a streaming follower is probed again. The
 * transport may lose an append or its acknowledgement in a connection reset, and without new
 * proposals nothing else would resend it.
 */
const STALLED_HEARTBEATS_BEFORE_PROBE = 2;
/** A follower in snapshot state gets the snapshot again after this many election timeouts. */
const SNAPSHOT_RETRY_ELECTION_TIMEOUTS = 5;

/** What the leader's side needs from its node. */
export interface ReplicationHost {
  readonly id: NodeId;
  readonly config: RaftConfig;
  readonly log: RaftLog;
  readonly bugs: ReadonlySet<PlantedBug>;
  term(): number;
  membership(): Membership;
  send(fields: MessageFields): void;
  readState(state: ReadState): void;
  /** Called after the commit index advanced. */
  committed(): void;
}

/** A leadership transfer in progress. */
export interface LeaderTransfer {
  readonly target: NodeId;
  elapsedTicks: number;
  /** Whether TimeoutNow was sent; each heartbeat response sends it again until a new leader. */
  timeoutNowSent: boolean;
}

export class Replication {
  /** Per-peer progress: voters and learners other than this node, and retiring peers. */
  readonly progress = new Map<NodeId, Progress>();
  readonly reads = new ReadQueue();
  /** Invariant: the highest index of this term's log that is durable on this node. */
  selfMatch = 0;
  /** New entries or a new commit index wait to be sent at the next `flush()`. */
  broadcastPending = false;
  /** Whether a commit index held back by `lazyCommit` waits for the next tick. */
  commitPending = false;
  /** The leadership transfer in progress, or null. Proposals are held while it is set. */
  transfer: LeaderTransfer | null = null;

  constructor(readonly host: ReplicationHost) {}

  /** Resets the progress of `peers` for a new leader whose log ends at `lastIndex`. */
  reset(lastIndex: number, durableIndex: number, peers: readonly NodeId[]): void {
    this.progress.clear();
    for (const id of peers) this.progress.set(id, this.#newProgress(lastIndex + 1));
    this.selfMatch = durableIndex;
    this.reads.clear();
    this.transfer = null;
    this.broadcastPending = true;
    this.commitPending = false;
  }

  #newProgress(next: number): Progress {
    const { maxInflightMessages, maxInflightBytes } = this.host.config;
    const progress = new Progress(next, maxInflightMessages, maxInflightBytes);
    progress.resetForLeader(next);
    return progress;
  }

  /**
   * Follows a configuration entry at `configIndex` that made `peers` the leader's peers: new
   * members get progress, and removed ones retire until they acknowledge the entry.
   */
  syncPeers(peers: readonly NodeId[], configIndex: number): void {
    for (const id of peers) {
      const progress = this.progress.get(id);
      if (progress === undefined) this.progress.set(id, this.#newProgress(configIndex));
      else progress.retiringAt = 0;
    }
    for (const [id, progress] of this.progress) {
      if (!peers.includes(id)) progress.retiringAt = configIndex;
    }
  }

  /** Records that this node's log is durable up to (index, term). */
  persisted(index: number, term: number): void {
    if (!this.host.log.matchTerm(index, term)) return;
    if (index > this.selfMatch) this.selfMatch = index;
    this.maybeCommit();
  }

  handleAppendResponse(m: Message, progress: Progress): void {
    const log = this.host.log;
    if (m.reject) {
      if (progress.state === 'snapshot') return;
      const hintIndex =
        m.hintTerm > 0 ? log.findConflictByTerm(m.hintIndex, m.hintTerm).index : m.hintIndex;
      if (progress.maybeDecreaseTo(m.index, hintIndex)) {
        if (progress.state === 'replicate') progress.becomeProbe();
        this.broadcastPending = true;
      }
      return;
    }
    if (progress.state === 'replicate') progress.inflights.freeTo(m.index);
    this.broadcastPending = true;
    const updated = progress.maybeUpdate(m.index);
    // A probe answered at the current match also proves where the logs agree.
    const probeConfirmed = progress.state === 'probe' && progress.match === m.index;
    if (!updated && !probeConfirmed) return;
    if (progress.state === 'probe') {
      progress.becomeReplicate();
    } else if (progress.state === 'snapshot' && progress.match >= progress.pendingSnapshot) {
      progress.becomeProbe();
      progress.becomeReplicate();
    }
    this.#maybeSendTimeoutNow(m.from, progress, false);
    this.maybeCommit();
  }

  handleHeartbeatResponse(m: Message, progress: Progress): void {
    if (progress.heartbeatAnswered(STALLED_HEARTBEATS_BEFORE_PROBE)) progress.becomeProbe();
    if (m.commit > progress.commitAcked) progress.commitAcked = m.commit;
    if (progress.retiringAt > 0 && progress.commitAcked >= progress.retiringAt) {
      // The removed peer learned that its removal is committed, so it will not campaign again.
      this.progress.delete(m.from);
      return;
    }
    if (progress.match < this.host.log.lastIndex()) this.broadcastPending = true;
    this.#maybeSendTimeoutNow(m.from, progress, true);
    if (m.context > progress.readRoundAcked) {
      progress.readRoundAcked = m.context;
      this.#confirmReads();
    }
  }

  /** Handles a follower's report that it failed to install the snapshot. */
  handleSnapshotStatus(m: Message, progress: Progress): void {
    if (!m.reject || progress.state !== 'snapshot') return;
    progress.pendingSnapshot = 0;
    progress.becomeProbe();
    this.broadcastPending = true;
  }

  maybeCommit(): void {
    const log = this.host.log;
    const index = jointCommitIndex(this.host.membership(), (id) =>
      id === this.host.id ? this.selfMatch : (this.progress.get(id)?.match ?? 0),
    );
    if (index <= log.committed) return;
    // Entries of earlier terms commit only under an entry of this term: a majority holding an
    // older entry could still be overwritten by a leader with a newer last term.
    const ofThisTerm = log.term(index) === this.host.term();
    if (!ofThisTerm && !this.host.bugs.has('commit_previous_term')) return;
    const hadCommitInTerm = this.committedInTerm();
    log.commitTo(index);
    this.broadcastPending = true;
    if (!hadCommitInTerm && this.committedInTerm()) {
      this.reads.releaseWaiting(log.committed);
      this.#confirmReads();
    }
    this.host.committed();
  }

  committedInTerm(): boolean {
    const log = this.host.log;
    return log.term(log.committed) === this.host.term();
  }

  /** Sends what followers lack: read rounds, new entries, probes and commit advances. */
  flush(): void {
    if (this.reads.needsRound()) this.broadcastHeartbeat(this.reads.startRound(), false);
    if (this.broadcastPending) {
      this.broadcastPending = false;
      for (const [id, progress] of this.progress) {
        this.#sendAppends(id, progress);
        if (this.#lacksCommit(progress)) {
          if (this.host.config.lazyCommit) this.commitPending = true;
          else this.#sendHeartbeat(id, progress, this.reads.roundStarted, false);
        }
      }
    }
    // A lone voter is its own quorum: its new round is confirmed here, as no reply will come.
    this.#confirmReads();
  }

  #sendAppends(to: NodeId, progress: Progress): void {
    const log = this.host.log;
    const lastIndex = log.lastIndex();
    while (!progress.paused()) {
      if (progress.state === 'replicate' && progress.next > lastIndex) return;
      const prevIndex = progress.next - 1;
      const prevTerm = log.term(prevIndex);
      const entries =
        prevTerm === undefined
          ? null
          : log.slice(progress.next, lastIndex + 1, this.host.config.maxMessageBytes);
      if (prevTerm === undefined || entries === null) {
        this.#sendSnapshot(to, progress);
        return;
      }
      let sizeBytes = 0;
      for (const entry of entries) sizeBytes += entrySizeBytes(entry);
      const commit = log.committed;
      this.host.send({ type: 'append', to, index: prevIndex, logTerm: prevTerm, entries, commit });
      const lastSent = entries.length > 0 ? entries[entries.length - 1]!.index : prevIndex;
      progress.sentEntries(entries.length, lastSent, sizeBytes);
      if (commit > progress.sentCommit) progress.sentCommit = Math.min(commit, lastSent);
      if (progress.state === 'probe') return;
    }
  }

  #sendSnapshot(to: NodeId, progress: Progress): void {
    if (progress.retiringAt > 0) {
      // A removed peer that fell this far behind learns nothing useful from a snapshot.
      this.progress.delete(to);
      return;
    }
    const snapshot = this.host.log.storage.snapshotMeta();
    assert(snapshot.index > 0, 'a follower needs discarded entries but no snapshot exists');
    this.host.send({ type: 'snapshot', to, snapshot });
    progress.becomeSnapshot(snapshot.index);
    const fields = { term: this.host.term(), to, index: snapshot.index };
    this.host.config.logger.info(fields, 'sending snapshot');
  }

  #sendHeartbeat(to: NodeId, progress: Progress, round: number, quiesce: boolean): void {
    const commit = Math.min(this.host.log.committed, progress.match);
    this.host.send({ type: 'heartbeat', to, commit, context: round, quiesce });
    if (commit > progress.sentCommit) progress.sentCommit = commit;
  }

  broadcastHeartbeat(round: number, quiesce: boolean): void {
    for (const [id, progress] of this.progress) this.#sendHeartbeat(id, progress, round, quiesce);
    this.commitPending = false;
  }

  /** Sends a commit index held back by `lazyCommit` to the followers that lack it. */
  sendPendingCommit(): void {
    if (!this.commitPending) return;
    this.commitPending = false;
    for (const [id, progress] of this.progress) {
      if (this.#lacksCommit(progress)) {
        this.#sendHeartbeat(id, progress, this.reads.roundStarted, false);
      }
    }
  }

  /** Whether the follower was not yet sent the commit index, up to the entries it has. */
  #lacksCommit(progress: Progress): boolean {
    return Math.min(this.host.log.committed, progress.match) > progress.sentCommit;
  }

  /** Queues a read from `from` (this node or a follower that forwarded it). */
  queueRead(context: string, from: NodeId): void {
    if (!this.committedInTerm()) {
      this.reads.addWaiting(context, from);
      return;
    }
    const committed = this.host.log.committed;
    if (this.host.config.readMode === 'lease') {
      this.#serveRead({ context, from, index: committed, round: 0 });
      return;
    }
    this.reads.add(context, from, committed);
  }

  /** Serves the reads whose round a quorum (this node included) has answered. */
  #confirmReads(): void {
    if (this.reads.size === 0) return;
    const confirmed = jointCommitIndex(this.host.membership(), (id) =>
      id === this.host.id ? this.reads.roundStarted : (this.progress.get(id)?.readRoundAcked ?? 0),
    );
    for (const read of this.reads.confirm(confirmed)) this.#serveRead(read);
  }

  #serveRead(read: PendingRead): void {
    if (read.from === this.host.id) {
      this.host.readState({ index: read.index, context: read.context });
      return;
    }
    this.host.send({
      type: 'read_index_response',
      to: read.from,
      index: read.index,
      readContext: read.context,
    });
  }

  /** Sends the snapshot again to followers that have waited too long for its install. */
  tickSnapshotRetries(): void {
    const retryTicks = SNAPSHOT_RETRY_ELECTION_TIMEOUTS * this.host.config.electionTicks;
    for (const progress of this.progress.values()) {
      if (progress.state !== 'snapshot') continue;
      progress.snapshotElapsedTicks++;
      if (progress.snapshotElapsedTicks < retryTicks) continue;
      progress.pendingSnapshot = 0;
      progress.becomeProbe();
      this.broadcastPending = true;
    }
  }

  /** Returns whether a quorum was heard from since the last check, and resets the marks. */
  quorumActive(): boolean {
    const active = new Map<NodeId, boolean>([[this.host.id, true]]);
    for (const [id, progress] of this.progress) {
      active.set(id, progress.recentActive);
      progress.recentActive = false;
    }
    return jointVoteResult(this.host.membership(), active) === 'won';
  }

  /**
   * Returns whether the leader has nothing to send and every follower is caught up, the commit
   * index included. The follower must have reported that commit index: a learner that missed
   * it would never learn it in a quiet group, because it has no election timer to wake the
   * group with.
   */
  canQuiesce(): boolean {
    const log = this.host.log;
    const lastIndex = log.lastIndex();
    if (log.committed !== lastIndex || this.selfMatch !== lastIndex) return false;
    if (this.reads.size > 0 || this.broadcastPending) return false;
    for (const progress of this.progress.values()) {
      if (progress.retiringAt > 0) continue;
      if (progress.match !== lastIndex || progress.commitAcked < lastIndex) return false;
    }
    return true;
  }

  /** Marks every follower active, so check-quorum restarts fresh after a quiet period. */
  markAllActive(): void {
    for (const progress of this.progress.values()) progress.recentActive = true;
  }

  /** Moves a follower out of optimistic streaming. */
  reportUnreachable(peer: NodeId): void {
    const progress = this.progress.get(peer);
    if (progress?.state === 'replicate') progress.becomeProbe();
  }

  /** Records the outcome of sending a snapshot to `peer`, as reported by the driver. */
  reportSnapshot(peer: NodeId, ok: boolean): void {
    const progress = this.progress.get(peer);
    if (progress?.state !== 'snapshot') return;
    if (!ok) progress.pendingSnapshot = 0;
    progress.becomeProbe();
    this.broadcastPending = true;
  }

  status(): Map<NodeId, ProgressStatus> {
    const statuses = new Map<NodeId, ProgressStatus>();
    for (const [id, progress] of this.progress) {
      if (progress.retiringAt > 0) continue;
      const state: ProgressState = progress.state;
      statuses.set(id, {
        match: progress.match,
        next: progress.next,
        state,
        recentActive: progress.recentActive,
        pendingSnapshot: progress.pendingSnapshot,
      });
    }
    return statuses;
  }

  // -------------------------------------------------------------------------------------
  // Membership and leadership transfer

  /** Drops retiring peers that did not answer since the last check, once per election timeout. */
  dropSilentRetiring(): void {
    for (const [id, progress] of this.progress) {
      if (progress.retiringAt === 0) continue;
      if (!progress.recentActive) this.progress.delete(id);
      else progress.recentActive = false;
    }
  }

  /**
   * Returns the voter with the highest match if it has every committed entry, or NO_NODE: the
   * successor a removed leader hands over to.
   */
  successor(): NodeId {
    const membership = this.host.membership();
    let best: NodeId = NO_NODE;
    let bestMatch = this.host.log.committed - 1;
    for (const id of membership.voters) {
      const match = this.progress.get(id)?.match ?? 0;
      if (id !== this.host.id && match > bestMatch) {
        best = id;
        bestMatch = match;
      }
    }
    return best;
  }

  /** Starts a leadership transfer to `target`, a voter with progress. */
  startTransfer(target: NodeId): void {
    const progress = this.progress.get(target);
    assert(progress !== undefined, () => `transfer target ${target} has no progress`);
    this.transfer = { target, elapsedTicks: 0, timeoutNowSent: false };
    this.broadcastPending = true;
    this.#maybeSendTimeoutNow(target, progress, false);
  }

  /** Counts a tick of the transfer; returns true when it is abandoned after an election timeout. */
  tickTransfer(): boolean {
    const transfer = this.transfer;
    if (transfer === null) return false;
    transfer.elapsedTicks++;
    if (transfer.elapsedTicks < this.host.config.electionTicks) return false;
    this.transfer = null;
    return true;
  }

  /**
   * Sends TimeoutNow to the transfer target once it has every entry: at the first
   * acknowledgement that shows it, and again with each heartbeat response in case it was lost.
   */
  #maybeSendTimeoutNow(id: NodeId, progress: Progress, resend: boolean): void {
    const transfer = this.transfer;
    if (transfer === null || transfer.target !== id) return;
    if (progress.match !== this.host.log.lastIndex()) return;
    if (transfer.timeoutNowSent && !resend) return;
    transfer.timeoutNowSent = true;
    this.host.send({ type: 'timeout_now', to: id });
  }
}
