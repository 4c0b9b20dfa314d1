/**
 * One simulator run from one seed. A cluster runs a client workload while a nemesis injects
 * faults, and the invariants are checked after every event. In membership runs a second
 * nemesis changes the membership and transfers leadership over a pool of seven node ids. Then
 * every fault is healed and the cluster must converge to equal state on every member, in the
 * last committed configuration. Last, the client history is checked for linearizability.
 */
import {
  checkHistory,
  type KvInput,
  type KvOutput,
  kvModel,
  type Operation,
} from '../check/index.js';
import {
  isJoint,
  isMember,
  type Membership,
  NO_NODE,
  type PlantedBug,
  type Ready,
} from '../raft/index.js';
import { type NetworkSettings, SimCluster } from './cluster.js';
import { describe } from './config-invariants.js';
import { MembershipNemesis } from './membership-nemesis.js';
import type { SimNode } from './node.js';
import { SimRandom } from './random.js';
import { KvStateMachine } from './state-machine.js';
import { Workload } from './workload.js';

export interface RunOptions {
  readonly seed: number;
  readonly nodeCount: number;
  /** Virtual time during which clients run and faults happen. */
  readonly durationMs: number;
  readonly plantedBugs: readonly PlantedBug[];
  /** Whether idle groups go quiet; by default every other seed. */
  readonly quiesce?: boolean;
  readonly faults?: boolean;
  /** The nemesis: `mixed` faults or leader `churn`; by default chosen per seed. */
  readonly nemesis?: 'mixed' | 'churn';
  /** Whether membership changes and transfers run too; by default chosen per seed. */
  readonly membership?: boolean;
  readonly checkBudgetMs?: number;
}

export interface RunResult {
  readonly seed: number;
  readonly traceHash: string;
  readonly acknowledged: number;
  readonly operations: number;
  readonly faults: ReadonlyMap<string, number>;
  readonly lossyCrashes: number;
  readonly elections: number;
  readonly violations: readonly string[];
  readonly history: readonly Operation<KvInput, KvOutput>[];
}

/** Simulator timing: a short tick so that a few seconds of virtual time see many elections. */
export const SIM_TICK_MS = 10;
export const SIM_ELECTION_TICKS = 20;
export const SIM_HEARTBEAT_TICKS = 4;
const CONVERGENCE_LIMIT_MS = 30_000;
const FAULT_INTERVAL_MS: readonly [number, number] = [100, 600];
/** Seeds that run the leader churn nemesis (see Nemesis) instead of the mixed one. */
const CHURN_RATE = 0.3;
const CHURN_INTERVAL_MS: readonly [number, number] = [40, 200];
const CHURN_ISOLATION_RATE = 0.7;
const CHURN_ISOLATION_MS: readonly [number, number] = [30, 400];
const DEFAULT_CHECK_BUDGET_MS = 20_000;
const SETTINGS_SEED_MASK = 0x5eed;
const PRE_VOTE_RATE = 0.7;
const CHECK_QUORUM_RATE = 0.7;
/** Seeds that run the membership nemesis, drawn from their own stream of the seed. */
const MEMBERSHIP_RATE = 0.4;
const MEMBERSHIP_SEED_MASK = 0x3e3b;
/** Node ids available to membership runs: n1 to n7. */
export const SIM_POOL_SIZE = 7;
/** Probability that a node crashes right after persisting a vote for another node. */
const VOTE_CRASH_RATE = 0.5;

export const FAULTY_NETWORK: NetworkSettings = {
  minDelayMs: 1,
  maxDelayMs: 8,
  lossRate: 0.02,
  duplicateRate: 0.02,
  reorderRate: 0.03,
  reorderDelayMs: 60,
};

export function runSeed(options: RunOptions): RunResult {
  const quiesce = options.quiesce ?? options.seed % 2 === 0;
  // Independent of quiesce: seeds equal to 2 or 3 modulo 4 run with lazy commit.
  const lazyCommit = options.seed % 4 >= 2;
  // Both settings are valid; most seeds run the defaults (on), the rest cover the others.
  const settingsRandom = new SimRandom(options.seed ^ SETTINGS_SEED_MASK);
  const preVote = settingsRandom.chance(PRE_VOTE_RATE);
  const checkQuorum = settingsRandom.chance(CHECK_QUORUM_RATE);
  const membership =
    options.membership ??
    new SimRandom(options.seed ^ MEMBERSHIP_SEED_MASK).chance(MEMBERSHIP_RATE);
  const cluster = new SimCluster({
    seed: options.seed,
    nodeCount: options.nodeCount,
    poolSize: membership ? SIM_POOL_SIZE : options.nodeCount,
    tickMs: SIM_TICK_MS,
    electionTicks: SIM_ELECTION_TICKS,
    heartbeatTicks: SIM_HEARTBEAT_TICKS,
    quiesce,
    lazyCommit,
    preVote,
    checkQuorum,
    plantedBugs: options.plantedBugs,
    network: FAULTY_NETWORK,
    diskMs: [1, 4],
    slowDiskMs: [20, 120],
    tickSkew: 0.1,
    failureDetectionMs: [5, 60],
    maxMessageBytes: 512,
    stateMachine: () => new KvStateMachine(),
  });
  const workload = new Workload(cluster, cluster.random.fork(3), {
    clients: 4,
    keys: 3,
    stopAtMs: options.durationMs,
    timeoutMs: 800,
    idleRate: 0.02,
    idleMs: [200, 800],
  });
  workload.start();
  const churn =
    options.nemesis === undefined ? settingsRandom.chance(CHURN_RATE) : options.nemesis === 'churn';
  if (options.faults !== false) new Nemesis(cluster, options.durationMs, churn).start();
  if (membership) {
    new MembershipNemesis(cluster, options.durationMs, cluster.random.fork(5)).start();
  }
  cluster.runUntil(options.durationMs);
  workload.finish();
  if (cluster.violations.length === 0) healAndConverge(cluster);
  if (cluster.violations.length === 0) {
    // After convergence every node applied every index, and state machine safety held on each.
    for (const { index, term } of workload.acknowledgedAt) {
      cluster.invariants.checkAcknowledged(index, term);
    }
  }
  if (cluster.violations.length === 0) {
    const result = checkHistory(
      kvModel,
      { ops: workload.history },
      {
        budgetMs: options.checkBudgetMs ?? DEFAULT_CHECK_BUDGET_MS,
      },
    );
    if (result.outcome !== 'linearizable') cluster.invariants.fail(result.report);
  }
  return {
    seed: options.seed,
    traceHash: cluster.trace.hex(),
    acknowledged: workload.acknowledged,
    operations: workload.history.length,
    faults: cluster.faults,
    lossyCrashes: cluster.lossyCrashes,
    elections: cluster.invariants.elections,
    violations: cluster.violations,
    history: workload.history,
  };
}

/**
 * Ends every fault and requires one leader, a configuration that is committed and not joint,
 * and equal applied state on every member. Nodes that were removed may lag behind.
 */
function healAndConverge(cluster: SimCluster): void {
  cluster.heal();
  for (const node of cluster.provisionedNodes()) {
    node.pausedUntil = 0;
    node.slowDiskUntil = 0;
    cluster.restart(node);
  }
  const members = (): SimNode[] => {
    const membership = cluster.leader()?.raw?.membership;
    if (membership === undefined) return [];
    return cluster.nodes.filter((node) => isMember(membership, node.id));
  };
  const converged = (): boolean => {
    const raw = cluster.leader()?.raw;
    if (raw == null) return false;
    const commit = raw.log.committed;
    if (commit !== raw.log.lastIndex() || isJoint(raw.membership)) return false;
    return members().every((node) => node.up && node.applied === commit);
  };
  if (!cluster.runUntilTrue(converged, CONVERGENCE_LIMIT_MS)) {
    if (cluster.violations.length > 0) return;
    const states = cluster
      .provisionedNodes()
      .map((node) => describeNode(node))
      .join('; ');
    cluster.invariants.fail(`no convergence ${CONVERGENCE_LIMIT_MS} ms after healing: ${states}`);
    return;
  }
  const digests = new Set(members().map((node) => node.stateMachine.digest()));
  if (digests.size !== 1)
    cluster.invariants.fail('replicas applied the same index but differ in state');
  checkFinalMembership(cluster, members());
}

/**
 * No committed configuration is lost: after convergence every member is in the leader's
 * configuration, which is the last committed one (or the initial one if none committed).
 */
function checkFinalMembership(cluster: SimCluster, members: readonly SimNode[]): void {
  const leader = cluster.leader()!;
  const expected: Membership =
    cluster.invariants.configs.latestCommitted()?.membership ?? cluster.initialMembership;
  const final = describe(leader.raw!.membership);
  if (final !== describe(expected)) {
    cluster.invariants.fail(
      `configuration: the leader ends in ${final}, the last committed is ${describe(expected)}`,
    );
  }
  for (const node of members) {
    const own = describe(node.raw!.membership);
    if (own !== final) {
      cluster.invariants.fail(`configuration: ${node.id} ends in ${own}, the leader in ${final}`);
    }
  }
}

function describeNode(node: SimNode): string {
  const raw = node.raw;
  if (raw === null) return `${node.id} down`;
  const status = raw.status();
  return (
    `${node.id} ${status.role} term ${status.term} commit ${status.commit} ` +
    `applied ${node.applied} last ${status.lastIndex} ${describe(status.membership)}`
  );
}

/** Injects one fault at a time at random intervals and undoes each after a random while. */
class Nemesis {
  readonly #random;
  /** The last persisted term and vote of each node, to notice a new vote. */
  readonly #votes = new Map<string, string>();

  constructor(
    readonly cluster: SimCluster,
    readonly stopAtMs: number,
    /** Leader churn: frequent short isolations of the leader. */
    readonly churn: boolean,
  ) {
    this.#random = cluster.random.fork(4);
  }

  start(): void {
    this.#scheduleNext();
    this.cluster.afterWrite = (node, ready) => this.#afterWrite(node, ready);
  }

  /**
   * Crashes a node right after it persisted and sent a vote, now and then, and restarts it at
   * once: the vote request of a competing candidate then meets the restarted node.
   */
  #afterWrite(node: SimNode, ready: Ready): void {
    const hardState = ready.hardState;
    if (this.cluster.now >= this.stopAtMs || hardState === null) return;
    const vote = `${hardState.term}:${hardState.vote}`;
    if (this.#votes.get(node.id) === vote) return;
    this.#votes.set(node.id, vote);
    if (hardState.vote === NO_NODE || hardState.vote === node.id) return;
    if (!this.#random.chance(VOTE_CRASH_RATE)) return;
    this.cluster.schedule(0, () => this.#crash(node, [1, 5], 'crash after vote'));
  }

  #scheduleNext(): void {
    const [min, max] = this.churn ? CHURN_INTERVAL_MS : FAULT_INTERVAL_MS;
    this.cluster.schedule(this.#random.int(min, max), () => {
      if (this.cluster.now >= this.stopAtMs) return;
      if (this.churn && this.#random.chance(CHURN_ISOLATION_RATE)) this.#isolateLeaderBriefly();
      else this.#inject();
      this.#scheduleNext();
    });
  }

  /**
   * Cuts the leader off for a moment: it keeps appending client writes that never replicate,
   * and a new leader takes over. Repeated, this builds logs that diverge over several terms, as
   * in Figure 8 of the Raft paper (Ongaro and Ousterhout, 2014), where an entry of an earlier
   * term on a majority can still be overwritten.
   */
  #isolateLeaderBriefly(): void {
    const leader = this.cluster.leader();
    if (leader === undefined) return;
    this.cluster.countFault('leader isolation');
    this.cluster.isolate(leader.id);
    const [min, max] = CHURN_ISOLATION_MS;
    this.cluster.schedule(this.#random.int(min, max), () => this.cluster.heal());
  }

  #inject(): void {
    const random = this.#random;
    const cluster = this.cluster;
    const leader = cluster.leader();
    // Half the node faults hit the leader, where most of the interesting transitions start.
    const nodes = cluster.provisionedNodes();
    const node = leader !== undefined && random.chance(0.5) ? leader : random.pick(nodes);
    const roll = random.next();
    if (roll < 0.25) this.#crash(node);
    else if (roll < 0.35) this.#isolate(node);
    else if (roll < 0.5) this.#partition();
    else if (roll < 0.6) this.#oneWay();
    else if (roll < 0.75) {
      cluster.countFault('slow disk');
      node.slowDiskUntil = cluster.now + random.int(200, 1500);
    } else if (roll < 0.9) {
      cluster.countFault('pause');
      node.pausedUntil = cluster.now + random.int(20, 600);
    } else {
      // A node that crashed and comes back at once: votes and acknowledgements in flight meet
      // the restarted node.
      this.#crash(node, [1, 20], 'quick restart');
    }
  }

  #crash(node: SimNode, downMs: readonly [number, number] = [50, 1500], kind = 'crash'): void {
    const cluster = this.cluster;
    if (!node.up || !this.#keepsQuorum(node)) return;
    cluster.crash(node, kind);
    cluster.schedule(this.#random.int(downMs[0], downMs[1]), () => cluster.restart(node));
  }

  /**
   * Returns whether a majority of each voter set stays up after `node` crashes, so that the
   * group can still make progress. Voters are those of the leader's configuration, or the
   * initial ones.
   */
  #keepsQuorum(node: SimNode): boolean {
    const cluster = this.cluster;
    const membership = cluster.leader()?.raw?.membership ?? cluster.initialMembership;
    const sets = isJoint(membership)
      ? [membership.voters, membership.votersOutgoing]
      : [membership.voters];
    for (const voters of sets) {
      let down = voters.filter((id) => !cluster.node(id).up).length;
      if (voters.includes(node.id)) down++;
      if (down > (voters.length - 1) / 2) return false;
    }
    return true;
  }

  #isolate(node: SimNode): void {
    this.cluster.countFault('isolation');
    this.cluster.isolate(node.id);
    this.cluster.schedule(this.#random.int(100, 1500), () => this.cluster.heal());
  }

  #partition(): void {
    const cluster = this.cluster;
    cluster.countFault('partition');
    const ids = cluster.provisionedNodes().map((node) => node.id);
    const side = new Set(ids.filter(() => this.#random.chance(0.5)));
    for (const from of ids) {
      for (const to of ids) {
        if (from !== to && side.has(from) !== side.has(to)) cluster.cutLink(from, to);
      }
    }
    cluster.schedule(this.#random.int(100, 1500), () => cluster.heal());
  }

  #oneWay(): void {
    const cluster = this.cluster;
    cluster.countFault('one-way partition');
    const nodes = cluster.provisionedNodes();
    const from = this.#random.pick(nodes).id;
    const to = this.#random.pick(nodes.filter((node) => node.id !== from)).id;
    cluster.cutLink(from, to);
    cluster.schedule(this.#random.int(100, 1500), () => cluster.heal());
  }
}
