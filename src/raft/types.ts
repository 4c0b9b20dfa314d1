/**
 * The values that cross the boundary between the Raft core and its driver: log entries, hard
 * state, membership, snapshot metadata, messages, read states and the `Ready` batch. They are
 * plain data, so the driver can encode them for disk and wire in any format. The core never
 * mutates a value after handing it out, and the driver must not mutate what it hands in.
 */

/** A node's id, such as `n1`. */
export type NodeId = string;

/** The id the core uses for "no node" (no vote, no known leader). */
export const NO_NODE: NodeId = '';

/**
 * The kind of a log entry. `normal` carries driver data (an empty one is a leader's no-op);
 * `config` carries a whole membership, encoded by `encodeMembership` (see `conf-change.ts`).
 */
export type EntryType = 'normal' | 'config';

export interface Entry {
  readonly index: number;
  readonly term: number;
  readonly type: EntryType;
  readonly data: Uint8Array;
}

/** The state that must be durable before any message that depends on it leaves the node. */
export interface HardState {
  readonly term: number;
  /** The node voted for in `term`, or NO_NODE. Persisted atomically with `term`. */
  readonly vote: NodeId;
  readonly commit: number;
}

/**
 * The voters and learners of a group. A joint configuration (during a membership change) has a
 * non-empty `votersOutgoing`; decisions then need a majority of both voter sets. Learners receive
 * the log but never vote and never count toward a quorum. `voters` and `learners` are disjoint;
 * a voter that a change demotes to a learner stays in `votersOutgoing` until the change ends.
 */
export interface Membership {
  readonly voters: readonly NodeId[];
  readonly learners: readonly NodeId[];
  readonly votersOutgoing: readonly NodeId[];
}

/** What the core knows of a snapshot: the bytes live with the driver. */
export interface SnapshotMeta {
  readonly index: number;
  readonly term: number;
  readonly membership: Membership;
}

export type MessageType =
  | 'append'
  | 'append_response'
  | 'heartbeat'
  | 'heartbeat_response'
  | 'vote'
  | 'vote_response'
  | 'pre_vote'
  | 'pre_vote_response'
  | 'snapshot'
  | 'snapshot_status'
  | 'read_index'
  | 'read_index_response'
  | 'timeout_now';

/**
 * One Raft message. Every field but `transfer` is present on every type so that messages have
 * one shape; the fields that a type does not use hold zero values. What each field means per type:
 *
 * - `append`: `index`/`logTerm` are the previous entry, `entries` follow it, `commit` is the
 *   leader's commit index.
 * - `append_response`: on success `index` is the last index the follower verified and persisted;
 *   on rejection `index` is the rejected previous index and `hintIndex`/`hintTerm` point at where
 *   the leader should look for the follower's last matching entry.
 * - `heartbeat`: `commit` is the commit index capped at the follower's match, `context` is the
 *   latest read round, `quiesce` tells the follower that the leader goes quiet.
 * - `heartbeat_response`: `context` echoes the round, `commit` is the follower's commit index.
 * - `vote`/`pre_vote`: `index`/`logTerm` are the candidate's last entry; `transfer` tells that a
 *   leadership transfer started the campaign, so voters grant it despite the leader lease.
 * - `*_response` of votes: `reject` tells whether the vote was refused.
 * - `snapshot`: `snapshot` is the metadata of the snapshot to install.
 * - `snapshot_status`: `reject` tells that the follower failed to install.
 * - `read_index`/`read_index_response`: `readContext` is the driver's read id, `index` the read
 *   index in the response; `reject` tells that the leader could not serve it.
 * - `timeout_now`: the leader asks the target of a leadership transfer to campaign at once.
 */
export interface Message {
  readonly type: MessageType;
  readonly from: NodeId;
  readonly to: NodeId;
  readonly term: number;
  readonly logTerm: number;
  readonly index: number;
  readonly entries: readonly Entry[];
  readonly commit: number;
  readonly reject: boolean;
  readonly hintIndex: number;
  readonly hintTerm: number;
  readonly context: number;
  readonly quiesce: boolean;
  readonly readContext: string;
  readonly snapshot: SnapshotMeta | null;
  /**
   * Optional so that messages built before leadership transfer existed stay valid; absent
   * means false. A transport must carry it for transfers to get past the leader lease.
   */
  readonly transfer?: boolean;
}

/** A linearizable read point: once the driver has applied `index`, it may serve `context`. */
export interface ReadState {
  readonly index: number;
  readonly context: string;
}

export type Role = 'leader' | 'follower' | 'candidate' | 'pre_candidate';

/**
 * A batch of work for the driver, taken by `RawNode.ready()` and acknowledged with
 * `RawNode.advance(ready)`. See the driver contract in `index.ts` for the order of the steps.
 */
export interface Ready {
  /** Sequence number of this batch; batches must be persisted and advanced in this order. */
  readonly sequence: number;
  /** Hard state to persist, or null when it has not changed since the previous batch. */
  readonly hardState: HardState | null;
  /** Entries to append to the log; the first may overwrite (truncate) the log from its index. */
  readonly entries: readonly Entry[];
  /** Messages that may be sent at once. */
  readonly messages: readonly Message[];
  /** Messages to send only after this batch's entries and hard state are durable. */
  readonly messagesAfterPersist: readonly Message[];
  /** Committed entries to apply, in log order, in the same commit as this batch's append. */
  readonly committedEntries: readonly Entry[];
  /**
   * The membership as of the last entry of `committedEntries` when one of them is a
   * configuration entry, else null. The driver persists it in the same write as the apply, as
   * the membership of its applied index, and hands it back as `membership` on restart.
   */
  readonly appliedMembership: Membership | null;
  readonly readStates: readonly ReadState[];
  /**
   * A request to install a snapshot, or null. The driver fetches the bytes from `snapshotFrom`
   * after persisting this batch, then calls `snapshotInstalled` or `snapshotFailed`.
   */
  readonly snapshot: SnapshotMeta | null;
  readonly snapshotFrom: NodeId;
}

/** The leader's view of one follower, as reported by `status()`. */
export interface ProgressStatus {
  readonly match: number;
  readonly next: number;
  readonly state: 'probe' | 'replicate' | 'snapshot';
  readonly recentActive: boolean;
  readonly pendingSnapshot: number;
}

export interface Status {
  readonly id: NodeId;
  readonly role: Role;
  readonly term: number;
  readonly vote: NodeId;
  /** The known leader of `term`, or NO_NODE. */
  readonly leader: NodeId;
  readonly commit: number;
  readonly applied: number;
  readonly firstIndex: number;
  readonly lastIndex: number;
  /** The membership in effect: that of the log's last configuration entry, committed or not. */
  readonly membership: Membership;
  /**
   * The index of the configuration entry that set `membership`, or the index of the snapshot
   * or applied point it was recovered from. A change is in flight while this is above `commit`
   * or `membership` is joint.
   */
  readonly membershipIndex: number;
  /** The target of a leadership transfer in progress on this leader, or NO_NODE. */
  readonly transferTarget: NodeId;
  readonly quiet: boolean;
  /** Per-member progress (voters and learners); empty unless this node leads. */
  readonly progress: ReadonlyMap<NodeId, ProgressStatus>;
}

/** The outcome of `propose`: where the entry went, or why it was not appended. */
export type ProposeResult =
  | { readonly ok: true; readonly index: number; readonly term: number }
  | { readonly ok: false; readonly reason: 'not_leader'; readonly leader: NodeId }
  | { readonly ok: false; readonly reason: 'transfer_in_progress'; readonly leader: NodeId };

/**
 * The outcome of `proposeConfChange`: the configuration entry appended (joint when voters
 * change), or why nothing was appended.
 *
 * - `not_leader`: this node does not lead; `leader` is the known leader.
 * - `transfer_in_progress`: a leadership transfer is in progress, and proposals wait for its end.
 * - `no_commit_in_term`: this leader has not committed an entry of its own term yet.
 * - `change_in_progress`: an earlier configuration entry is not committed yet, or the joint
 *   configuration it created has not been left yet.
 * - `invalid_change`: a step does not fit the membership (`detail` says which and why).
 * - `learner_lagging`: a learner to promote is more than `promotionLagEntries` behind.
 */
export type ConfChangeResult =
  | {
      readonly ok: true;
      readonly index: number;
      readonly term: number;
      readonly membership: Membership;
    }
  | { readonly ok: false; readonly reason: 'not_leader'; readonly leader: NodeId }
  | { readonly ok: false; readonly reason: 'transfer_in_progress'; readonly leader: NodeId }
  | { readonly ok: false; readonly reason: 'no_commit_in_term' }
  | { readonly ok: false; readonly reason: 'change_in_progress' }
  | { readonly ok: false; readonly reason: 'invalid_change'; readonly detail: string }
  | {
      readonly ok: false;
      readonly reason: 'learner_lagging';
      readonly node: NodeId;
      readonly match: number;
      readonly lastIndex: number;
    };

/**
 * The outcome of `transferLeader`: started, or rejected at once.
 *
 * - `not_leader`: this node does not lead; `leader` is the known leader.
 * - `transfer_in_progress`: another transfer is running (`target`).
 * - `already_leader`: the target is this node.
 * - `not_a_voter`: the target is not a voter of the incoming configuration. It is a learner
 *   (then `learner` is true), a voter being removed, or not a member at all.
 * - `lagging`: the target is more than `transferLagEntries` behind, or needs a snapshot.
 */
export type TransferResult =
  | { readonly ok: true }
  | { readonly ok: false; readonly reason: 'not_leader'; readonly leader: NodeId }
  | { readonly ok: false; readonly reason: 'transfer_in_progress'; readonly target: NodeId }
  | { readonly ok: false; readonly reason: 'already_leader' }
  | { readonly ok: false; readonly reason: 'not_a_voter'; readonly learner: boolean }
  | {
      readonly ok: false;
      readonly reason: 'lagging';
      readonly match: number;
      readonly lastIndex: number;
    };

/** The outcome of `readIndex`: accepted (a read state follows) or rejected at once. */
export type ReadIndexResult =
  | { readonly ok: true }
  | { readonly ok: false; readonly reason: 'no_leader'; readonly leader: NodeId };

/** A single-voter-set membership with no learners. */
export function membershipOf(voters: readonly NodeId[]): Membership {
  return { voters: [...voters], learners: [], votersOutgoing: [] };
}

/** The membership of a node that joins a group: it learns the real one from the log. */
export const EMPTY_MEMBERSHIP: Membership = Object.freeze({
  voters: Object.freeze([]),
  learners: Object.freeze([]),
  votersOutgoing: Object.freeze([]),
});

const EMPTY_ENTRIES: readonly Entry[] = Object.freeze([]);

/** Builds a message with zero values in every field the caller leaves out. */
export function message(fields: Partial<Message> & Pick<Message, 'type' | 'to'>): Message {
  return {
    from: NO_NODE,
    term: 0,
    logTerm: 0,
    index: 0,
    entries: EMPTY_ENTRIES,
    commit: 0,
    reject: false,
    hintIndex: 0,
    hintTerm: 0,
    context: 0,
    quiesce: false,
    readContext: '',
    snapshot: null,
    transfer: false,
    ...fields,
  };
}
