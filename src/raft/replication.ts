/**
 * The leader's side of Raft: per-follower progress, sending appends, snapshots and heartbeats,
 * handling their acknowledgements, advancing the commit index, and the ReadIndex queue.
 * `RawNode` owns one instance and calls it only while it leads; the state is reset on each
 * election (`reset`).
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
}

export class Replication {
  /** Per-peer progress: voters and learners other than this node. */
  readonly progress = new Map<NodeId, Progress>();
  readonly reads = new ReadQueue();
  /** Invariant: the highest index of this term's log that is durable on this node. */
  selfMatch = 0;
  /** New entries or a new commit index wait to be sent at the next `flush()`. */
  broadcastPending = false;

  constructor(
    readonly host: ReplicationHost,
    peers: readonly NodeId[],
  ) {
    const { maxInflightMessages, maxInflightBytes } = host.config;
    for (const id of peers) {
      const next = host.log.lastIndex() + 1;
      this.progress.set(id, new Progress(next, maxInflightMessages, maxInflightBytes));
    }
  }

  /** Resets every follower for a new leader whose log ends at `lastIndex`. */
  reset(lastIndex: number, durableIndex: number): void {
    for (const progress of this.progress.values()) progress.resetForLeader(lastIndex + 1);
    this.selfMatch = durableIndex;
    this.reads.clear();
    this.broadcastPending = true;
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
    this.maybeCommit();
  }

  handleHeartbeatResponse(m: Message, progress: Progress): void {
    if (progress.heartbeatAnswered(STALLED_HEARTBEATS_BEFORE_PROBE)) progress.becomeProbe();
    if (progress.match < this.host.log.lastIndex()) this.broadcastPending = true;
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
  }

  committedInTerm(): boolean {
    const log = this.host.log;
    return log.term(log.committed) === this.host.term();
  }

  /** Sends what followers lack: read rounds, new entries, probes and commit advances. */
  flush(): void {
    if (this.reads.needsRound()) this.broadcastHeartbeat(this.reads.startRound(), false);
    if (!this.broadcastPending) return;
    this.broadcastPending = false;
    const committed = this.host.log.committed;
    for (const [id, progress] of this.progress) {
      this.#sendAppends(id, progress);
      if (Math.min(committed, progress.match) > progress.sentCommit) {
        this.#sendHeartbeat(id, progress, this.reads.roundStarted, false);
      }
    }
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

  /** Returns whether the leader has nothing to send and every follower is caught up. */
  canQuiesce(): boolean {
    const log = this.host.log;
    const lastIndex = log.lastIndex();
    if (log.committed !== lastIndex || this.selfMatch !== lastIndex) return false;
    if (this.reads.size > 0 || this.broadcastPending) return false;
    for (const progress of this.progress.values()) {
      if (progress.match !== lastIndex || progress.sentCommit < lastIndex) return false;
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
}
