/**
 * Divan's Raft core: a pure state machine that any driver can embed with any state machine. It
 * imports nothing else of Divan and performs no I/O: no timers, sockets, disk, clock or
 * Math.random. Randomness comes from the injected `random`, time from `tick()`.
 *
 * Inputs: `step(message)`, `tick()`, `propose(data)`, `readIndex(context)`, `campaign()`,
 * `forgetLeader()`, `proposeConfChange(steps)`, `transferLeader(to)`, and the reports
 * `snapshotInstalled`, `snapshotFailed`, `reportSnapshot`, `reportUnreachable`. Output: `Ready`
 * batches, acknowledged with `advance(ready)`. `status()` and `promotableLearners()` read state.
 *
 * The driver contract, and why each rule exists:
 *
 * 1. Take a Ready whenever `hasReady()`; more may be taken before earlier ones are durable
 *    (pipelining). Persist them strictly in order, each as one atomic write that contains its
 *    entries (the first entry overwrites the log from its index on), its hard state, and the
 *    apply of its committed entries with the new applied index. Then call `advance(ready)`, in
 *    the same order. Why: the core reasons about "durable up to Ready k"; a later write landing
 *    first would make that false after a crash.
 * 2. Term and vote are persisted together, atomically, in the hard state. Why: a restarted
 *    node that kept a new term but lost its vote could vote twice in that term.
 * 3. Send `messages` at once. Send `messagesAfterPersist` only once that Ready is durable: they
 *    are vote and pre-vote requests and answers (which depend on a persisted term and vote) and
 *    append acknowledgements (which promise the entries survive a crash).
 * 4. A leader may send AppendEntries before its own append is durable: the core counts the
 *    leader toward commit only from the `advance` of the Ready that carried the entries. Why:
 *    the leader's disk write then overlaps the followers' round trip.
 * 5. Apply `committedEntries` in order. They never include an entry that is not persisted in
 *    the same or an earlier Ready, so applying them in the same write as the append is safe.
 *    A driver may also apply them in a later write, after `advance`. The order must hold, and
 *    entries that change the membership must be applied with their own Ready. The applied index
 *    it persists is then its own, and the core replays every committed entry after it on
 *    restart. The cluster's followers do this to apply a tick's entries in one write.
 * 6. Serve a read state `{ index, context }` once the applied index reaches `index` (the
 *    driver's own applied index, when it applies later than `advance`).
 * 7. `Ready.snapshot` asks to install a snapshot. After persisting that Ready, fetch a snapshot
 *    from `snapshotFrom` (its index may be newer than requested, never older), install it
 *    durably, reset the storage to it, then call `snapshotInstalled(meta)`; on failure call
 *    `snapshotFailed()`. The core hands out no committed entries while the install is pending,
 *    so the snapshot is installed before any entry that follows it is applied.
 * 8. Storage reads are synchronous and must reflect only durable state. The driver discards a
 *    prefix of the log up to an index it chooses, at most the applied index, and records that
 *    point as the snapshot metadata; followers that need discarded entries get a snapshot.
 * 9. When the connection to the leader's node closes, call `forgetLeader()` and then
 *    `campaign()` (with a small random delay when several nodes may notice at once). Why:
 *    elections then start at once instead of after an election timeout, which the defaults
 *    make long so that a busy process does not trigger spurious elections.
 * 10. Proposals are never forwarded by the core. `propose` returns `{ index, term }`; the
 *    proposal succeeded when the entry applied at `index` has `term`. If another term is
 *    applied there, or leadership is lost before apply, the outcome is unknown (the entry may
 *    still commit). `not_leader` and `transfer_in_progress` mean the entry was never appended.
 * 11. Membership changes are proposals too: `proposeConfChange(steps)` appends a configuration
 *    entry and returns its `{ index, term }`, or a typed rejection with nothing appended. When
 *    the voters change, the entry is joint, and the core itself appends the entry that leaves
 *    the joint configuration once the first commits. The change is complete when a
 *    configuration entry that is not joint is applied. The configuration in effect is the log's
 *    last one, committed or not (`status().membership`); connect to all its voters and learners.
 * 12. Persist `Ready.appliedMembership`, when it is not null, in the same write as the apply:
 *    it is the membership as of the new applied index. Pass it back as `membership`, with
 *    `applied`, on restart; a fresh group passes its initial membership, and a node that joins
 *    a group passes `EMPTY_MEMBERSHIP` with an empty log. Why: configuration entries after the
 *    applied index are read from the log at start, so only the applied one must be kept.
 *    A snapshot carries the membership as of its index (for a snapshot at the applied index,
 *    the applied membership); the membership of a discard point at or below the applied index
 *    is not read.
 * 13. Carry `timeout_now` messages, the `transfer` flag of vote requests and the `commit` of
 *    heartbeat responses on the transport. Why: without the flag a transfer's campaign stops at
 *    the leader lease, and without the commit an idle group never goes quiet.
 * 14. A node that lost its disk rejoins under a new id, or with a restored disk. Why: with an
 *    empty log and no vote under an old id, it would grant its vote to a stale candidate of a
 *    configuration in which that id was a voter.
 */
export { RaftInvariantError } from './assert.js';
export {
  CONFIG_FORMAT_VERSION,
  type ConfChangePlan,
  type ConfChangeStep,
  type ConfChangeType,
  decodeMembership,
  encodeMembership,
  isJoint,
  isLearner,
  isMember,
  type MembershipTarget,
  membershipProblem,
  planConfChange,
  stepsToTarget,
} from './conf-change.js';
export type { PlantedBug, RaftConfig, RaftOptions, ReadMode } from './config.js';
export {
  DEFAULT_CATCH_UP_LAG_ENTRIES,
  DEFAULT_ELECTION_TICKS,
  DEFAULT_HEARTBEAT_TICKS,
  DEFAULT_MAX_APPLY_BYTES,
  DEFAULT_MAX_INFLIGHT_BYTES,
  DEFAULT_MAX_INFLIGHT_MESSAGES,
  DEFAULT_MAX_MESSAGE_BYTES,
  DEFAULT_TICK_MS,
  PLANTED_BUGS,
  resolveConfig,
} from './config.js';
export type { RaftLogger } from './logger.js';
export { silentRaftLogger } from './logger.js';
export {
  allVoters,
  isVoter,
  jointCommitIndex,
  jointVoteResult,
  majorityCommitIndex,
  majorityVoteResult,
  type VoteResult,
} from './quorum.js';
export { RawNode } from './raw-node.js';
export type { Storage } from './storage.js';
export { ENTRY_OVERHEAD_BYTES, entrySizeBytes, MemoryStorage } from './storage.js';
export type {
  ConfChangeResult,
  Entry,
  EntryType,
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
export { EMPTY_MEMBERSHIP, membershipOf, message, NO_NODE } from './types.js';
