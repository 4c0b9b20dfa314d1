/**
 * Configuration of a Raft node and its defaults, in ticks. The driver calls `tick()` every
 * `DEFAULT_TICK_MS` milliseconds unless it chooses another tick length.
 *
 * The defaults favour a busy Node.js process. A leader must miss heartbeats for a whole election
 * timeout (2 to 4 s at the default tick) before a follower campaigns. So a GC pause or a large
 * request parsed synchronously does not depose it. Failover stays fast because the driver
 * calls `forgetLeader()` and `campaign()` as soon as the connection to the leader's node closes,
 * which does not wait for any timeout.
 */
import { assert } from './assert.js';
import type { RaftLogger } from './logger.js';
import { silentRaftLogger } from './logger.js';
import type { Membership, NodeId } from './types.js';

/** Default tick length; the core itself never reads a clock. */
export const DEFAULT_TICK_MS = 100;
/** Election timeout: a follower campaigns after 20 to 40 ticks (2 to 4 s) without a leader. */
export const DEFAULT_ELECTION_TICKS = 20;
/** Heartbeat interval: 5 ticks (500 ms), four heartbeats within the shortest election timeout. */
export const DEFAULT_HEARTBEAT_TICKS = 5;
export const DEFAULT_MAX_INFLIGHT_MESSAGES = 64;
export const DEFAULT_MAX_INFLIGHT_BYTES = 16 * 1024 * 1024;
export const DEFAULT_MAX_MESSAGE_BYTES = 1024 * 1024;
export const DEFAULT_MAX_APPLY_BYTES = 16 * 1024 * 1024;
/**
 * How far behind the leader's last index a learner may be and still be promoted, and a voter
 * still receive leadership. An estimate: at 1,000 writes/s and a 100 ms round trip a healthy
 * follower trails by about 100 entries, and it catches up on the rest within one AppendEntries
 * of the default 1 MiB cap unless entries are large.
 */
export const DEFAULT_CATCH_UP_LAG_ENTRIES = 100;

/**
 * Faults that the simulator plants to prove its checks can fail. Each one breaks a single rule;
 * production code never sets any.
 */
export type PlantedBug =
  | 'commit_previous_term'
  | 'forget_vote_on_restart'
  | 'truncate_on_stale_append'
  | 'ack_before_durable'
  | 'read_without_read_index'
  | 'second_change_in_flight'
  | 'change_before_term_commit'
  | 'learner_votes';

export const PLANTED_BUGS: readonly PlantedBug[] = [
  'commit_previous_term',
  'forget_vote_on_restart',
  'truncate_on_stale_append',
  'ack_before_durable',
  'read_without_read_index',
  'second_change_in_flight',
  'change_before_term_commit',
  'learner_votes',
];

/** The way a leader confirms a linearizable read. */
export type ReadMode = 'read_index' | 'lease';

export interface RaftConfig {
  readonly id: NodeId;
  /**
   * The membership as of `applied`: the one the driver persisted with its applied index (from
   * `Ready.appliedMembership`), or on a node that never applied anything, the group's initial
   * membership (`EMPTY_MEMBERSHIP` for a node that joins an existing group). A snapshot newer
   * than `applied` brings its own membership.
   */
  readonly membership: Membership;
  /** The highest index the driver has applied durably; committed entries after it are replayed. */
  readonly applied: number;
  /** A uniform number in [0, 1) from a seeded generator; the core never calls Math.random. */
  readonly random: () => number;
  readonly electionTicks: number;
  readonly heartbeatTicks: number;
  readonly preVote: boolean;
  readonly checkQuorum: boolean;
  /**
   * `read_index` (default) confirms leadership with a heartbeat round. `lease` serves reads from
   * the leader's lease without a round, so it is only as safe as the clocks are close.
   */
  readonly readMode: ReadMode;
  /** Whether an idle leader with caught-up followers stops its heartbeats. */
  readonly quiesce: boolean;
  /**
   * Whether a new commit index waits for a message that goes anyway: the next append, a read
   * round's heartbeat, or at the latest the next tick. Without it the leader sends a heartbeat
   * of its own for each advance, and each follower applies in a round of its own. With it a
   * follower applies up to a tick later, usually together with its next append.
   */
  readonly lazyCommit: boolean;
  readonly maxInflightMessages: number;
  readonly maxInflightBytes: number;
  /** Byte cap on the entries of one AppendEntries; one entry is always allowed. */
  readonly maxMessageBytes: number;
  /** Byte cap on the committed entries of one Ready. */
  readonly maxApplyBytes: number;
  /** Entries a learner may trail the leader's last index by and still be promoted. */
  readonly promotionLagEntries: number;
  /** Entries a voter may trail the leader's last index by and still receive leadership. */
  readonly transferLagEntries: number;
  readonly logger: RaftLogger;
  readonly plantedBugs: readonly PlantedBug[];
}

export type RaftOptions = Partial<RaftConfig> & Pick<RaftConfig, 'id' | 'membership' | 'random'>;

/** Fills in defaults and validates the relationships between the tick counts. */
export function resolveConfig(options: RaftOptions): RaftConfig {
  const config: RaftConfig = {
    applied: 0,
    electionTicks: DEFAULT_ELECTION_TICKS,
    heartbeatTicks: DEFAULT_HEARTBEAT_TICKS,
    preVote: true,
    checkQuorum: true,
    readMode: 'read_index',
    quiesce: false,
    lazyCommit: false,
    maxInflightMessages: DEFAULT_MAX_INFLIGHT_MESSAGES,
    maxInflightBytes: DEFAULT_MAX_INFLIGHT_BYTES,
    maxMessageBytes: DEFAULT_MAX_MESSAGE_BYTES,
    maxApplyBytes: DEFAULT_MAX_APPLY_BYTES,
    promotionLagEntries: DEFAULT_CATCH_UP_LAG_ENTRIES,
    transferLagEntries: DEFAULT_CATCH_UP_LAG_ENTRIES,
    logger: silentRaftLogger,
    plantedBugs: [],
    ...options,
  };
  assert(config.id !== '', 'config.id must not be empty');
  assert(config.heartbeatTicks > 0, 'heartbeatTicks must be positive');
  assert(
    config.electionTicks > config.heartbeatTicks,
    () =>
      `electionTicks (${config.electionTicks}) must exceed heartbeatTicks (${config.heartbeatTicks})`,
  );
  assert(config.maxInflightMessages > 0, 'maxInflightMessages must be positive');
  assert(config.promotionLagEntries >= 0, 'promotionLagEntries must not be negative');
  assert(config.transferLagEntries >= 0, 'transferLagEntries must not be negative');
  assert(
    config.readMode !== 'lease' || config.checkQuorum,
    'lease reads need checkQuorum, or a deposed leader could serve stale reads indefinitely',
  );
  return config;
}
