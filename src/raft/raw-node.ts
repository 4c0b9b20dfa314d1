/**
 * The Raft state machine: `step`, `tick`, `propose`, `readIndex` and a few driver reports in,
 * `Ready` batches out. It owns term, vote, role, elections, the follower's side of replication,
 * snapshot install requests and the Ready batches. The leader's side (progress, commit, reads)
 * is in `replication.ts`. It performs no I/O and reads no clock. The driver contract is in
 * `index.ts`.
 *
 * Every message passes one term prelude (`step`), then goes to the handler of the node's role.
 * Stale or unexpected input is ignored with a debug line, never an error: the network may
 * delay, duplicate and reorder anything.
 *
 * Membership changes, learners and leadership transfer are driven from here too: the leader
 * appends configuration entries (`proposeConfChange`, and the entry that leaves a joint
 * configuration), and the configuration in effect is always the log's last one (see
 * `membership-history.ts`). Learners never campaign, nor does a removed node once it knows its
 * removal committed, and members ignore vote requests from non-voters with older logs, so a
 * removed node cannot disrupt the group.
 *
 * Invariants: the vote changes only from none to a node within a term, and is cleared only when
 * the term rises. A leader counts itself toward commit only up to its durable index. Committed
 * entries are handed out for apply only once persisted in the same or an earlier Ready. A leader
 * appends a configuration entry only when every earlier one is committed, the configuration is
 * not joint, and an entry of its own term is committed.
 */
import { assert } from './assert.js';
import {
  type ConfChangeStep,
  decodeMembership,
  encodeMembership,
  isJoint,
  isLearner,
  isMember,
  leaveJoint,
  planConfChange,
} from './conf-change.js';
import type { PlantedBug, RaftConfig, RaftOptions } from './config.js';
import { resolveConfig } from './config.js';
import { RaftLog } from './log.js';
import {
  allVoters,
  isVoter,
  jointVoteResult,
  majorityVoteResult,
  type VoteResult,
} from './quorum.js';
import { type MessageFields, Replication } from './replication.js';
import type { Storage } from './storage.js';
import type {
  ConfChangeResult,
  Entry,
  HardState,
  Membership,
  Message,
  MessageType,
  NodeId,
  ProgressStatus,
  ProposeResult,
  ReadIndexResult,
  ReadState,
  Ready,
  Role,
  SnapshotMeta,
  Status,
  TransferResult,
} from './types.js';
import { message, NO_NODE } from './types.js';

const EMPTY_DATA = new Uint8Array(0);

/**
 * Messages that only a leader sends. They are accepted at a higher term even from a node that is
 * not in this node's configuration: a node that joins learns the membership from its leader.
 */
const LEADER_MESSAGES: ReadonlySet<MessageType> = new Set<MessageType>([
  'append',
  'heartbeat',
  'snapshot',
  'read_index_response',
  'timeout_now',
]);

interface PendingSnapshot {
  readonly meta: SnapshotMeta;
  readonly from: NodeId;
  handedOut: boolean;
}

export class RawNode {
  readonly id: NodeId;
  readonly config: RaftConfig;
  readonly log: RaftLog;
  term = 0;
  vote: NodeId = NO_NODE;
  leader: NodeId = NO_NODE;
  role: Role = 'follower';
  /** Whether the group went quiet: no heartbeats, no election timer. */
  quiet = false;

  /** The leader's side: follower progress, commit, reads. Used only while leading. */
  readonly #replication: Replication;
  readonly #votes = new Map<NodeId, boolean>();
  #electionElapsed = 0;
  #heartbeatElapsed = 0;
  #randomizedElectionTicks = 0;
  #messages: Message[] = [];
  #messagesAfterPersist: Message[] = [];
  #readStates: ReadState[] = [];
  #pendingSnapshot: PendingSnapshot | null = null;
  #lastHardState: HardState;
  #readySequence = 0;
  #advancedSequence = 0;
  readonly #bugs: ReadonlySet<PlantedBug>;

  constructor(options: RaftOptions, storage: Storage) {
    this.config = resolveConfig(options);
    this.id = this.config.id;
    this.#bugs = new Set(this.config.plantedBugs);
    this.log = new RaftLog(storage, this.config.applied, this.config.membership);
    const hardState = storage.hardState();
    this.term = hardState.term;
    this.vote = this.#bugs.has('forget_vote_on_restart') ? NO_NODE : hardState.vote;
    this.#lastHardState = { term: this.term, vote: this.vote, commit: this.log.committed };
    this.#replication = new Replication({
      id: this.id,
      config: this.config,
      log: this.log,
      bugs: this.#bugs,
      term: () => this.term,
      membership: () => this.membership,
      send: (fields) => this.#send(fields),
      readState: (state) => this.#readStates.push(state),
      committed: () => this.#afterCommit(),
    });
    this.#resetElectionTimer();
    this.config.logger.info(
      { term: this.term, commit: this.log.committed, lastIndex: this.log.lastIndex() },
      'raft node started',
    );
  }

  /** The membership in effect: that of the last configuration entry in the log. */
  get membership(): Membership {
    return this.log.configs.current();
  }

  // ---------------------------------------------------------------------------------------
  // Driver input

  /** Advances logical time by one tick: election timeouts, heartbeats, check-quorum. */
  tick(): void {
    if (this.role === 'leader') this.#tickLeader();
    else this.#tickElection();
  }

  /** Appends `data` as a new entry if this node leads; never forwards. */
  propose(data: Uint8Array): ProposeResult {
    if (this.role !== 'leader') return { ok: false, reason: 'not_leader', leader: this.leader };
    if (this.#replication.transfer !== null) {
      return { ok: false, reason: 'transfer_in_progress', leader: this.id };
    }
    this.#wake('proposal');
    const entry: Entry = { index: this.log.lastIndex() + 1, term: this.term, type: 'normal', data };
    this.log.appendOne(entry);
    this.#replication.broadcastPending = true;
    return { ok: true, index: entry.index, term: entry.term };
  }

  /**
   * Proposes a membership change made of `steps`, applied in order. When the voters change, the
   * leader appends the joint configuration. Once that commits, it appends the new configuration
   * alone. A change of learners only is one entry. Each configuration is in effect from its
   * append. The returned `index` and `term` are those of the first entry, and the change is
   * complete once a configuration entry that is not joint is applied (see
   * `Ready.appliedMembership`). Rejections are values, with nothing appended.
   */
  proposeConfChange(steps: readonly ConfChangeStep[]): ConfChangeResult {
    if (this.role !== 'leader') return { ok: false, reason: 'not_leader', leader: this.leader };
    if (this.#replication.transfer !== null) {
      return { ok: false, reason: 'transfer_in_progress', leader: this.id };
    }
    // A new leader does not know the commit index of earlier terms until an entry of its own
    // term commits, so it cannot tell whether an earlier configuration is committed.
    const termCommitted = this.#replication.committedInTerm();
    if (!termCommitted && !this.#bugs.has('change_before_term_commit')) {
      return { ok: false, reason: 'no_commit_in_term' };
    }
    if (this.#changeInFlight() && !this.#bugs.has('second_change_in_flight')) {
      return { ok: false, reason: 'change_in_progress' };
    }
    const plan = planConfChange(this.membership, steps);
    if (!plan.ok) return { ok: false, reason: 'invalid_change', detail: plan.detail };
    const lagging = this.#laggingPromotion(steps);
    if (lagging !== null) return lagging;
    this.#wake('membership change');
    const entry = this.#appendConfig(plan.membership);
    this.config.logger.info(
      { term: this.term, index: entry.index, steps, membership: plan.membership },
      'membership change proposed',
    );
    return { ok: true, index: entry.index, term: entry.term, membership: plan.membership };
  }

  /**
   * Leader only: returns the learners whose log is within `promotionLagEntries` of the leader's
   * last index, which `proposeConfChange` accepts for `promote_learner`.
   */
  promotableLearners(): NodeId[] {
    if (this.role !== 'leader') return [];
    const lastIndex = this.log.lastIndex();
    const membership = this.membership;
    return membership.learners.filter((id) => {
      if (!isLearner(membership, id)) return false;
      const match = this.#replication.progress.get(id)?.match ?? 0;
      return lastIndex - match <= this.config.promotionLagEntries;
    });
  }

  /**
   * Hands leadership to `to`, a voter of the incoming configuration that is within
   * `transferLagEntries` of the leader's last index. Until the transfer ends, the leader rejects
   * proposals with `transfer_in_progress`. It replicates until the target has every entry, then
   * sends it TimeoutNow, and the target campaigns at once. The transfer is abandoned after an
   * election timeout without a new leader.
   */
  transferLeader(to: NodeId): TransferResult {
    if (this.role !== 'leader') return { ok: false, reason: 'not_leader', leader: this.leader };
    const current = this.#replication.transfer;
    if (current !== null)
      return { ok: false, reason: 'transfer_in_progress', target: current.target };
    if (to === this.id) return { ok: false, reason: 'already_leader' };
    const membership = this.membership;
    if (!membership.voters.includes(to)) {
      return { ok: false, reason: 'not_a_voter', learner: isLearner(membership, to) };
    }
    const progress = this.#replication.progress.get(to);
    assert(progress !== undefined, () => `voter ${to} has no progress on the leader`);
    const lastIndex = this.log.lastIndex();
    if (
      progress.state === 'snapshot' ||
      lastIndex - progress.match > this.config.transferLagEntries
    ) {
      return { ok: false, reason: 'lagging', match: progress.match, lastIndex };
    }
    this.#wake('leadership transfer');
    this.config.logger.info(
      { term: this.term, to, match: progress.match },
      'leadership transfer started',
    );
    this.#replication.startTransfer(to);
    return { ok: true };
  }

  /**
   * Requests a linearizable read point for `context`. The result arrives as a read state in a
   * later Ready. A lost response is never reported, so the driver times reads out.
   */
  readIndex(context: string): ReadIndexResult {
    if (this.#bugs.has('read_without_read_index')) {
      this.#readStates.push({ index: this.log.committed, context });
      return { ok: true };
    }
    if (this.role === 'leader') {
      this.#wake('read');
      this.#replication.queueRead(context, this.id);
      return { ok: true };
    }
    if (this.leader === NO_NODE) return { ok: false, reason: 'no_leader', leader: NO_NODE };
    this.#send({ type: 'read_index', to: this.leader, readContext: context });
    return { ok: true };
  }

  /** Starts a pre-vote (or an election without pre-vote) now. */
  campaign(): void {
    this.#wake('campaign');
    this.#hup('campaign requested');
  }

  /**
   * Drops the known leader, because the driver learned that its node is gone. The follower then
   * grants pre-votes at once and runs its election timer even if the group was quiet.
   */
  forgetLeader(): void {
    if (this.role !== 'follower' || this.leader === NO_NODE) return;
    this.config.logger.info({ term: this.term, leader: this.leader }, 'forgetting leader');
    this.leader = NO_NODE;
    this.quiet = false;
  }

  /** Leader only: the driver reports the outcome of sending a snapshot to `peer`. */
  reportSnapshot(peer: NodeId, ok: boolean): void {
    if (this.role === 'leader') this.#replication.reportSnapshot(peer, ok);
  }

  /** Leader only: the driver could not reach `peer`; stop streaming to it optimistically. */
  reportUnreachable(peer: NodeId): void {
    if (this.role === 'leader') this.#replication.reportUnreachable(peer);
  }

  /**
   * Follower only: the driver installed the snapshot requested in a Ready (possibly a newer one
   * from the same leader). The log restarts after it, and the leader gets an acknowledgement.
   */
  snapshotInstalled(meta: SnapshotMeta): void {
    const pending = this.#pendingSnapshot;
    assert(pending?.handedOut, 'snapshotInstalled without a requested snapshot');
    assert(
      meta.index >= pending.meta.index,
      () => `installed snapshot ${meta.index} is older than requested ${pending.meta.index}`,
    );
    this.#pendingSnapshot = null;
    this.log.restore(meta.index, meta.membership);
    this.config.logger.info({ term: this.term, index: meta.index }, 'snapshot installed');
    this.#send({ type: 'append_response', to: pending.from, index: meta.index });
  }

  /** Follower only: fetching or installing the requested snapshot failed. */
  snapshotFailed(): void {
    const pending = this.#pendingSnapshot;
    assert(pending?.handedOut, 'snapshotFailed without a requested snapshot');
    this.#pendingSnapshot = null;
    this.#send({ type: 'snapshot_status', to: pending.from, reject: true });
  }

  // ---------------------------------------------------------------------------------------
  // Ready

  /** Returns whether `ready()` has anything for the driver. */
  hasReady(): boolean {
    if (this.role === 'leader') this.#replication.flush();
    if (this.#messages.length > 0 || this.#messagesAfterPersist.length > 0) return true;
    if (this.#readStates.length > 0 || this.log.hasUnstableToHandOut()) return true;
    if (this.#pendingSnapshot !== null && !this.#pendingSnapshot.handedOut) return true;
    if (this.#pendingSnapshot === null && this.log.hasEntriesToApply()) return true;
    return this.#hardStateChanged();
  }

  /** Takes the next batch of work. Batches may be taken before earlier ones are advanced. */
  ready(): Ready {
    if (this.role === 'leader') this.#replication.flush();
    const entries = this.log.takeUnstable();
    let hardState: HardState | null = null;
    if (this.#hardStateChanged()) {
      hardState = { term: this.term, vote: this.vote, commit: this.log.committed };
      this.#lastHardState = hardState;
    }
    const committedEntries =
      this.#pendingSnapshot === null ? this.log.takeEntriesToApply(this.config.maxApplyBytes) : [];
    const appliedMembership = lastMembershipOf(committedEntries);
    let snapshot: SnapshotMeta | null = null;
    let snapshotFrom = NO_NODE;
    if (this.#pendingSnapshot !== null && !this.#pendingSnapshot.handedOut) {
      this.#pendingSnapshot.handedOut = true;
      snapshot = this.#pendingSnapshot.meta;
      snapshotFrom = this.#pendingSnapshot.from;
    }
    const ready: Ready = {
      sequence: ++this.#readySequence,
      hardState,
      entries,
      messages: this.#messages,
      messagesAfterPersist: this.#messagesAfterPersist,
      committedEntries,
      appliedMembership,
      readStates: this.#readStates,
      snapshot,
      snapshotFrom,
    };
    this.#messages = [];
    this.#messagesAfterPersist = [];
    this.#readStates = [];
    return ready;
  }

  /** Acknowledges that `ready` was persisted, its messages sent and its entries applied. */
  advance(ready: Ready): void {
    assert(
      ready.sequence === this.#advancedSequence + 1,
      () => `advance(${ready.sequence}) out of order after ${this.#advancedSequence}`,
    );
    this.#advancedSequence = ready.sequence;
    const last = ready.entries[ready.entries.length - 1];
    if (last !== undefined) {
      this.log.stableTo(last.index, last.term);
      if (this.role === 'leader') this.#replication.persisted(last.index, last.term);
    }
    const lastApplied = ready.committedEntries[ready.committedEntries.length - 1];
    if (lastApplied !== undefined) this.log.appliedTo(lastApplied.index);
  }

  status(): Status {
    const progress: ReadonlyMap<NodeId, ProgressStatus> =
      this.role === 'leader' ? this.#replication.status() : new Map();
    return {
      id: this.id,
      role: this.role,
      term: this.term,
      vote: this.vote,
      leader: this.leader,
      commit: this.log.committed,
      applied: this.log.applied,
      firstIndex: this.log.firstIndex(),
      lastIndex: this.log.lastIndex(),
      membership: this.membership,
      membershipIndex: this.log.configs.latest().index,
      transferTarget:
        this.role === 'leader' ? (this.#replication.transfer?.target ?? NO_NODE) : NO_NODE,
      quiet: this.quiet,
      progress,
    };
  }

  // ---------------------------------------------------------------------------------------
  // Messages

  /** Processes one message from a peer. */
  step(m: Message): void {
    if (m.to !== this.id || m.from === this.id) {
      this.#ignore(m, 'not addressed to this node');
      return;
    }
    const senderProblem = this.#senderProblem(m);
    if (senderProblem !== null) {
      this.#ignore(m, senderProblem);
      return;
    }
    if (this.quiet && this.#wakesQuietNode(m)) this.#wake(`message ${m.type}`);
    if (m.term > this.term && !this.#stepHigherTerm(m)) return;
    if (m.term < this.term) {
      this.#stepLowerTerm(m);
      return;
    }
    if (m.type === 'vote' || m.type === 'pre_vote') {
      this.#handleVoteRequest(m);
      return;
    }
    switch (this.role) {
      case 'leader':
        this.#stepLeader(m);
        return;
      case 'candidate':
      case 'pre_candidate':
        this.#stepCandidate(m);
        return;
      case 'follower':
        this.#stepFollower(m);
        return;
    }
  }

  /**
   * Returns why a message must be dropped because of who sent it, or null. A member is a voter
   * or learner of its own configuration. It ignores vote requests from nodes that are not voters
   * of that configuration and whose log is older than its own. It lets a node outside the
   * configuration raise its term only as a leader. So a removed node, which may not know that
   * it was removed, cannot disrupt the group: it lacks at least the entry that removed it.
   * Ignoring a request is always safe, since it is the same as not granting it.
   *
   * NB: the exceptions keep the group live. A candidate whose log is at least as new may know a
   * newer configuration than this node: a voter that fell far behind still has an old one, and
   * ignoring the new voters would leave no leader able to win its vote. A node that does not
   * count itself a member answers everyone. A node that joins knows no configuration until its
   * first append, and a new voter's vote may be needed before then.
   */
  #senderProblem(m: Message): string | null {
    if (!isMember(this.membership, this.id)) return null;
    if (m.type === 'vote' || m.type === 'pre_vote') {
      if (isVoter(this.membership, m.from) || this.log.isUpToDate(m.index, m.logTerm)) return null;
      return 'vote request from a node that is not a voter, with an older log';
    }
    if (m.term <= this.term || LEADER_MESSAGES.has(m.type)) return null;
    if (isMember(this.membership, m.from)) return null;
    return 'higher term from a node outside the configuration';
  }

  /** Handles a message of a higher term. Returns false when the message is dropped. */
  #stepHigherTerm(m: Message): boolean {
    const isVoteRequest = m.type === 'vote' || m.type === 'pre_vote';
    if (isVoteRequest && !m.transfer && this.#inLease()) {
      // A node that heard from its leader within the election timeout neither grants nor
      // adopts a higher term: a partitioned node rejoining cannot depose a healthy leader. A
      // campaign that the leader itself started with a transfer is let through.
      this.#ignore(m, 'vote request while the leader lease holds');
      return false;
    }
    if (m.type === 'pre_vote') return true;
    if (m.type === 'pre_vote_response' && !m.reject) return true;
    const fromLeader =
      m.type === 'append' ||
      m.type === 'heartbeat' ||
      m.type === 'snapshot' ||
      m.type === 'timeout_now';
    this.#becomeFollower(m.term, fromLeader ? m.from : NO_NODE, `${m.type} from ${m.from}`);
    return true;
  }

  #stepLowerTerm(m: Message): void {
    const fromLeader = m.type === 'append' || m.type === 'heartbeat';
    if (fromLeader) {
      // Tell a stale leader about the newer term. Otherwise a leader cut off by a partition,
      // whose followers moved on under pre-vote, would never learn that it was deposed. And a
      // node whose vote requests the members ignore (a learner or a re-added node that raised
      // its term while it believed it was a voter) could never rejoin: this response is the
      // only way its term reaches the leader.
      this.#send({ type: 'append_response', to: m.from });
      return;
    }
    if (m.type === 'pre_vote') {
      this.#sendAfterPersist({ type: 'pre_vote_response', to: m.from, reject: true });
      return;
    }
    this.#ignore(m, 'lower term');
  }

  #handleVoteRequest(m: Message): void {
    const responseType: MessageType = m.type === 'vote' ? 'vote_response' : 'pre_vote_response';
    const canVote =
      this.vote === m.from ||
      (this.vote === NO_NODE && this.leader === NO_NODE) ||
      (m.type === 'pre_vote' && m.term > this.term);
    if (canVote && this.log.isUpToDate(m.index, m.logTerm)) {
      // A granted pre-vote carries the term of the request, so the pre-candidate can
      // tell it apart from a rejection at a higher term.
      this.#sendAfterPersist({ type: responseType, to: m.from, term: m.term });
      if (m.type === 'vote') {
        this.vote = m.from;
        this.#electionElapsed = 0;
      }
      return;
    }
    this.#sendAfterPersist({ type: responseType, to: m.from, reject: true });
  }

  #stepFollower(m: Message): void {
    switch (m.type) {
      case 'append':
        this.#heardFromLeader(m.from);
        this.#handleAppend(m);
        return;
      case 'heartbeat':
        this.#heardFromLeader(m.from);
        this.#handleHeartbeat(m);
        return;
      case 'snapshot':
        this.#heardFromLeader(m.from);
        this.#handleSnapshot(m);
        return;
      case 'read_index_response':
        if (!m.reject) this.#readStates.push({ index: m.index, context: m.readContext });
        return;
      case 'read_index':
        this.#send({
          type: 'read_index_response',
          to: m.from,
          reject: true,
          readContext: m.readContext,
        });
        return;
      case 'timeout_now':
        this.#handleTimeoutNow(m);
        return;
      default:
        this.#ignore(m, 'not expected by a follower');
    }
  }

  #stepCandidate(m: Message): void {
    if (m.type === 'append' || m.type === 'heartbeat' || m.type === 'snapshot') {
      this.#becomeFollower(this.term, m.from, `${m.type} from the leader of this term`);
      this.#stepFollower(m);
      return;
    }
    const expected = this.role === 'candidate' ? 'vote_response' : 'pre_vote_response';
    if (m.type !== expected) {
      this.#ignore(m, `not expected by a ${this.role}`);
      return;
    }
    this.#votes.set(m.from, !m.reject);
    const result = this.#electionResult();
    if (result === 'won' && this.role === 'pre_candidate') this.#becomeCandidate();
    else if (result === 'won') this.#becomeLeader();
    else if (result === 'lost') this.#becomeFollower(this.term, NO_NODE, `${expected}s lost`);
  }

  #stepLeader(m: Message): void {
    const progress = this.#replication.progress.get(m.from);
    if (progress === undefined) {
      this.#ignore(m, 'from a node outside the membership');
      return;
    }
    switch (m.type) {
      case 'append_response':
        progress.recentActive = true;
        this.#replication.handleAppendResponse(m, progress);
        return;
      case 'heartbeat_response':
        progress.recentActive = true;
        this.#replication.handleHeartbeatResponse(m, progress);
        return;
      case 'snapshot_status':
        progress.recentActive = true;
        this.#replication.handleSnapshotStatus(m, progress);
        return;
      case 'read_index':
        this.#replication.queueRead(m.readContext, m.from);
        return;
      default:
        // NB: an append or heartbeat of this term from another node would mean two leaders in
        // one term. The election rules exclude that, and the simulator checks it separately.
        this.#ignore(m, 'not expected by a leader');
    }
  }

  // ---------------------------------------------------------------------------------------
  // Follower handlers

  #heardFromLeader(leader: NodeId): void {
    this.#electionElapsed = 0;
    this.leader = leader;
  }

  #handleAppend(m: Message): void {
    if (this.#pendingSnapshot !== null) {
      this.#ignore(m, 'snapshot install pending');
      return;
    }
    if (m.index < this.log.committed) {
      this.#acknowledge(m.from, this.log.committed);
      return;
    }
    const truncateEverything = this.#bugs.has('truncate_on_stale_append');
    const lastNewIndex = this.log.maybeAppend(
      m.index,
      m.logTerm,
      m.commit,
      m.entries,
      truncateEverything,
    );
    if (lastNewIndex >= 0) {
      this.#acknowledge(m.from, lastNewIndex);
      return;
    }
    const hint = this.log.findConflictByTerm(Math.min(m.index, this.log.lastIndex()), m.logTerm);
    this.#send({
      type: 'append_response',
      to: m.from,
      index: m.index,
      reject: true,
      hintIndex: hint.index,
      hintTerm: hint.term,
    });
  }

  /** Acknowledges entries up to `index`. The response waits until they are durable. */
  #acknowledge(to: NodeId, index: number): void {
    const response: MessageFields = { type: 'append_response', to, index };
    if (this.#bugs.has('ack_before_durable')) this.#send(response);
    else this.#sendAfterPersist(response);
  }

  #handleHeartbeat(m: Message): void {
    // The leader caps the commit index at this follower's match, which is durable here.
    this.log.commitTo(Math.min(m.commit, this.log.lastIndex()));
    this.quiet = m.quiesce;
    const commit = this.log.committed;
    this.#send({ type: 'heartbeat_response', to: m.from, context: m.context, commit });
  }

  /** Campaigns at once, skipping pre-vote, because the leader hands over leadership. */
  #handleTimeoutNow(m: Message): void {
    if (!this.#mayCampaign()) {
      this.#ignore(m, 'timeout_now to a node that is not a voter');
      return;
    }
    this.config.logger.info({ term: this.term, from: m.from }, 'leadership transfer: campaigning');
    this.#becomeCandidate(true);
  }

  #handleSnapshot(m: Message): void {
    const meta = m.snapshot;
    assert(meta !== null, 'snapshot message without metadata');
    if (this.#pendingSnapshot !== null) {
      this.#ignore(m, 'snapshot install already pending');
      return;
    }
    if (meta.index <= this.log.committed) {
      // Stale or duplicate: applied state never moves backwards.
      this.#acknowledge(m.from, this.log.committed);
      return;
    }
    if (this.log.matchTerm(meta.index, meta.term)) {
      this.log.commitTo(meta.index);
      this.#acknowledge(m.from, meta.index);
      return;
    }
    this.config.logger.info({ term: this.term, index: meta.index }, 'snapshot requested');
    this.#pendingSnapshot = { meta, from: m.from, handedOut: false };
  }

  // ---------------------------------------------------------------------------------------
  // Time

  #tickElection(): void {
    if (this.quiet) return;
    this.#electionElapsed++;
    if (this.#electionElapsed < this.#randomizedElectionTicks) return;
    // Learners and removed nodes do not campaign. Their elapsed time keeps growing, so the
    // leader lease lapses for them as for voters.
    if (!this.#mayCampaign()) return;
    this.#electionElapsed = 0;
    this.#hup('election timeout');
  }

  #tickLeader(): void {
    if (this.quiet) return;
    this.#electionElapsed++;
    if (this.#electionElapsed >= this.config.electionTicks) {
      this.#electionElapsed = 0;
      this.#replication.dropSilentRetiring();
      if (this.config.checkQuorum && !this.#replication.quorumActive()) {
        this.#becomeFollower(this.term, NO_NODE, 'check quorum: no contact with a quorum');
        return;
      }
    }
    if (this.#replication.tickTransfer()) {
      this.config.logger.info(
        { term: this.term },
        'leadership transfer abandoned after an election timeout',
      );
    }
    this.#replication.tickSnapshotRetries();
    this.#heartbeatElapsed++;
    if (this.#heartbeatElapsed < this.config.heartbeatTicks) {
      this.#replication.sendPendingCommit();
      return;
    }
    this.#heartbeatElapsed = 0;
    const quiesce = this.config.quiesce && this.#replication.canQuiesce();
    this.#replication.broadcastHeartbeat(this.#replication.reads.roundStarted, quiesce);
    if (quiesce) {
      this.quiet = true;
      this.config.logger.debug({ term: this.term }, 'group going quiet');
    }
  }

  /** Leaves the quiet state because of activity. */
  #wake(reason: string): void {
    if (!this.quiet) return;
    this.quiet = false;
    this.#electionElapsed = 0;
    this.config.logger.debug({ term: this.term, reason }, 'group waking');
    if (this.role !== 'leader') return;
    this.#replication.markAllActive();
    this.#heartbeatElapsed = 0;
    this.#replication.broadcastHeartbeat(this.#replication.reads.roundStarted, false);
  }

  /**
   * Whether `m` ends the quiet state. A quiet leader keeps sleeping through acknowledgements,
   * which arrive in answer to its own quiesce heartbeats; anything else needs it awake.
   */
  #wakesQuietNode(m: Message): boolean {
    if (this.role !== 'leader') return true;
    if (m.type === 'heartbeat_response') return false;
    return !(m.type === 'append_response' && !m.reject);
  }

  /**
   * Whether this node may campaign: it is a voter of the configuration in effect, or that
   * configuration is not committed yet and the node votes in the one before it. A voter that a
   * change removes may still be needed to elect a leader under the joint configuration. Take a
   * removed leader that appended the final configuration and stepped down before anyone else
   * stored it: its log is then the most up to date, so no other node can win without its vote.
   */
  #mayCampaign(): boolean {
    if (isVoter(this.membership, this.id)) return true;
    const configs = this.log.configs;
    if (configs.latest().index <= this.log.committed) return false;
    return isVoter(configs.previous().membership, this.id);
  }

  /** Whether a vote request must be ignored because a leader was heard from recently. */
  #inLease(): boolean {
    return (
      this.config.checkQuorum &&
      this.leader !== NO_NODE &&
      this.#electionElapsed < this.config.electionTicks
    );
  }

  // ---------------------------------------------------------------------------------------
  // Role changes

  #hup(reason: string): void {
    if (this.role === 'leader') return;
    if (!this.#mayCampaign()) {
      this.config.logger.info({ term: this.term, reason }, 'not a voter, not campaigning');
      return;
    }
    this.config.logger.info({ term: this.term, reason }, 'starting campaign');
    if (this.config.preVote) this.#becomePreCandidate();
    else this.#becomeCandidate();
  }

  #becomeFollower(term: number, leader: NodeId, reason: string): void {
    const changed = term !== this.term || this.role !== 'follower' || leader !== this.leader;
    if (term > this.term) {
      this.term = term;
      this.vote = NO_NODE;
    }
    const wasLeader = this.role === 'leader';
    this.role = 'follower';
    this.leader = leader;
    this.#resetForRole();
    if (wasLeader) {
      this.#replication.reads.clear();
      this.#replication.transfer = null;
    }
    if (changed) {
      this.config.logger.info({ term, leader, reason }, 'became follower');
    }
  }

  #becomePreCandidate(): void {
    this.role = 'pre_candidate';
    this.leader = NO_NODE;
    this.#resetForRole();
    this.config.logger.info({ term: this.term }, 'became pre-candidate');
    this.#requestVotes('pre_vote', this.term + 1);
  }

  /** Starts an election; `transfer` marks a campaign that the leader asked for. */
  #becomeCandidate(transfer = false): void {
    this.term++;
    this.vote = this.id;
    this.role = 'candidate';
    this.leader = NO_NODE;
    this.#resetForRole();
    this.config.logger.info({ term: this.term, transfer }, 'became candidate');
    this.#requestVotes('vote', this.term, transfer);
  }

  #requestVotes(type: 'vote' | 'pre_vote', term: number, transfer = false): void {
    this.#votes.set(this.id, true);
    if (this.#electionResult() === 'won') {
      if (type === 'pre_vote') this.#becomeCandidate();
      else this.#becomeLeader();
      return;
    }
    const index = this.log.lastIndex();
    const logTerm = this.log.lastTerm();
    const recipients = allVoters(this.membership);
    if (this.#bugs.has('learner_votes')) recipients.push(...this.membership.learners);
    for (const id of recipients) {
      if (id === this.id) continue;
      this.#sendAfterPersist({ type, to: id, term, index, logTerm, transfer });
    }
  }

  /**
   * The election's result under the configuration in effect. The planted bug `learner_votes`
   * counts a learner's grant toward the incoming voters' majority.
   */
  #electionResult(): VoteResult {
    const membership = this.membership;
    if (!this.#bugs.has('learner_votes') || membership.learners.length === 0) {
      return jointVoteResult(membership, this.#votes);
    }
    const incoming = countingLearnersResult(membership, this.#votes);
    if (!isJoint(membership)) return incoming;
    const outgoing = majorityVoteResult(membership.votersOutgoing, this.#votes);
    if (incoming === 'lost' || outgoing === 'lost') return 'lost';
    return incoming === 'won' && outgoing === 'won' ? 'won' : 'pending';
  }

  #becomeLeader(): void {
    assert(this.role === 'candidate', () => `becomeLeader from ${this.role}`);
    this.role = 'leader';
    this.leader = this.id;
    this.#resetForRole();
    const lastIndex = this.log.lastIndex();
    const durableIndex = this.log.unstable.length > 0 ? this.log.offset - 1 : lastIndex;
    this.#replication.reset(lastIndex, durableIndex, this.#peers());
    this.config.logger.info({ term: this.term, lastIndex }, 'became leader');
    // A no-op of this term lets entries of earlier terms commit, and the read queue start. The
    // planted bug commits earlier terms by counting replicas, so it appends none.
    if (!this.#bugs.has('commit_previous_term')) {
      this.log.appendOne({
        index: lastIndex + 1,
        term: this.term,
        type: 'normal',
        data: EMPTY_DATA,
      });
    }
    this.#replication.maybeCommit();
  }

  #resetForRole(): void {
    this.#votes.clear();
    this.#electionElapsed = 0;
    this.#heartbeatElapsed = 0;
    this.quiet = false;
    this.#replication.broadcastPending = false;
    this.#resetElectionTimer();
  }

  #resetElectionTimer(): void {
    const ticks = this.config.electionTicks;
    this.#randomizedElectionTicks = ticks + Math.floor(this.config.random() * ticks);
  }

  // ---------------------------------------------------------------------------------------
  // Membership changes

  /** Whether a change is in flight: the last configuration is uncommitted, or joint. */
  #changeInFlight(): boolean {
    return isJoint(this.membership) || this.log.configs.latest().index > this.log.committed;
  }

  /** Returns the rejection for a step that promotes a learner still catching up, or null. */
  #laggingPromotion(steps: readonly ConfChangeStep[]): ConfChangeResult | null {
    const lastIndex = this.log.lastIndex();
    for (const step of steps) {
      if (step.type !== 'promote_learner') continue;
      const match = this.#replication.progress.get(step.node)?.match ?? 0;
      if (lastIndex - match > this.config.promotionLagEntries) {
        return { ok: false, reason: 'learner_lagging', node: step.node, match, lastIndex };
      }
    }
    return null;
  }

  /** Appends a configuration entry on the leader; it is in effect from now on. */
  #appendConfig(membership: Membership): Entry {
    const entry: Entry = {
      index: this.log.lastIndex() + 1,
      term: this.term,
      type: 'config',
      data: encodeMembership(membership),
    };
    this.log.appendOne(entry);
    this.#replication.syncPeers(this.#peers(), entry.index);
    this.#replication.broadcastPending = true;
    return entry;
  }

  /**
   * Runs on the leader whenever its commit index advances. A committed joint configuration is
   * left by appending the new configuration alone, and a leader that is not a voter of the
   * committed configuration steps down.
   */
  #afterCommit(): void {
    const latest = this.log.configs.latest();
    if (latest.index > this.log.committed) return;
    if (isJoint(latest.membership)) {
      if (!this.#replication.committedInTerm()) return;
      const entry = this.#appendConfig(leaveJoint(latest.membership));
      this.config.logger.info(
        { term: this.term, index: entry.index, joint: latest.index },
        'leaving the joint configuration',
      );
      return;
    }
    if (!isVoter(latest.membership, this.id)) this.#stepDownRemoved();
  }

  /**
   * Steps down after the configuration that removed this leader committed. The voter with the
   * highest match gets TimeoutNow, so the group does not wait an election timeout for a new
   * leader. This node never campaigns again while it is not a voter.
   */
  #stepDownRemoved(): void {
    const successor = this.#replication.successor();
    if (successor !== NO_NODE) this.#send({ type: 'timeout_now', to: successor });
    this.#becomeFollower(this.term, NO_NODE, 'removed from the configuration');
  }

  // ---------------------------------------------------------------------------------------
  // Helpers

  /** Voters and learners other than this node. */
  #peers(): NodeId[] {
    const ids = allVoters(this.membership);
    for (const id of this.membership.learners) if (!ids.includes(id)) ids.push(id);
    return ids.filter((id) => id !== this.id);
  }

  #hardStateChanged(): boolean {
    const last = this.#lastHardState;
    return last.term !== this.term || last.vote !== this.vote || last.commit !== this.log.committed;
  }

  #send(fields: MessageFields): void {
    this.#messages.push(message({ from: this.id, term: this.term, ...fields }));
  }

  #sendAfterPersist(fields: MessageFields): void {
    this.#messagesAfterPersist.push(message({ from: this.id, term: this.term, ...fields }));
  }

  #ignore(m: Message, reason: string): void {
    const logger = this.config.logger;
    if (!logger.isDebugEnabled()) return;
    logger.debug(
      { term: this.term, role: this.role, type: m.type, from: m.from, messageTerm: m.term, reason },
      'message ignored',
    );
  }
}

/** Returns the membership set by the last configuration entry of `entries`, or null. */
function lastMembershipOf(entries: readonly Entry[]): Membership | null {
  for (let i = entries.length - 1; i >= 0; i--) {
    const entry = entries[i]!;
    if (entry.type === 'config') return decodeMembership(entry.data);
  }
  return null;
}

/** Returns the election result under the planted bug `learner_votes`: learners count. */
function countingLearnersResult(
  membership: Membership,
  votes: ReadonlyMap<NodeId, boolean>,
): VoteResult {
  let granted = 0;
  let missing = 0;
  for (const id of [...membership.voters, ...membership.learners]) {
    const vote = votes.get(id);
    if (vote === undefined) missing++;
    else if (vote) granted++;
  }
  const needed = (membership.voters.length >> 1) + 1;
  if (granted >= needed) return 'won';
  return granted + missing >= needed ? 'pending' : 'lost';
}
