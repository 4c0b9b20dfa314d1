/**
 * Scripted membership scenarios on the simulated cluster at the default tick length: removing
 * the leader, a removed node partitioned and healed, a learner promoted while a voter dies, a
 * transfer to a lagging node, and transfers under client load.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { checkHistory, kvModel } from '../../src/check/index.js';
import {
  type ConfChangeResult,
  type ConfChangeStep,
  DEFAULT_CATCH_UP_LAG_ENTRIES,
  DEFAULT_ELECTION_TICKS,
  DEFAULT_HEARTBEAT_TICKS,
  DEFAULT_TICK_MS,
  isJoint,
  type Membership,
  type TransferResult,
} from '../../src/raft/index.js';
import { QUIET_NETWORK, SimCluster, type SimClusterOptions } from '../../src/sim/cluster.js';
import type { RequestOutcome, SimNode } from '../../src/sim/node.js';
import { HashChainStateMachine, KvStateMachine } from '../../src/sim/state-machine.js';
import { Workload } from '../../src/sim/workload.js';

const ELECTION_TIMEOUT_MS = DEFAULT_ELECTION_TICKS * DEFAULT_TICK_MS;

function options(overrides: Partial<SimClusterOptions>): SimClusterOptions {
  return {
    seed: 11,
    nodeCount: 3,
    poolSize: 4,
    tickMs: DEFAULT_TICK_MS,
    electionTicks: DEFAULT_ELECTION_TICKS,
    heartbeatTicks: DEFAULT_HEARTBEAT_TICKS,
    quiesce: false,
    preVote: true,
    checkQuorum: true,
    plantedBugs: [],
    network: QUIET_NETWORK,
    diskMs: [1, 3],
    slowDiskMs: [1, 3],
    tickSkew: 0.05,
    failureDetectionMs: [5, 20],
    stateMachine: () => new HashChainStateMachine(),
    ...overrides,
  };
}

function leaderOf(cluster: SimCluster): SimNode {
  assert.ok(
    cluster.runUntilTrue(() => cluster.leader() !== undefined, 2 * ELECTION_TIMEOUT_MS),
    'no leader within two election timeouts',
  );
  return cluster.leader()!;
}

function sortedVoters(membership: Membership): string[] {
  return [...membership.voters].sort();
}

/** Proposes `value` on the leader and runs until its outcome arrives. */
function write(cluster: SimCluster, value: number): RequestOutcome {
  let outcome: RequestOutcome | undefined;
  leaderOf(cluster).propose(Uint8Array.of(value), (result) => {
    outcome = result;
  });
  assert.ok(cluster.runUntilTrue(() => outcome !== undefined, 2 * ELECTION_TIMEOUT_MS));
  return outcome!;
}

function proposeChange(leader: SimNode, steps: ConfChangeStep[]): ConfChangeResult {
  let result: ConfChangeResult | undefined;
  leader.act((raw) => {
    result = raw.proposeConfChange(steps);
  });
  return result!;
}

/** Proposes a change that must be accepted. */
function change(leader: SimNode, steps: ConfChangeStep[]): void {
  const result = proposeChange(leader, steps);
  assert.ok(result.ok, `change rejected: ${JSON.stringify(result)}`);
}

function transfer(leader: SimNode, to: string): TransferResult {
  let result: TransferResult | undefined;
  leader.act((raw) => {
    result = raw.transferLeader(to);
  });
  return result!;
}

/** Runs until the leader's configuration is committed, not joint, and has `voters`. */
function awaitMembership(cluster: SimCluster, voters: string[], limitMs: number): SimNode {
  const done = (): boolean => {
    const raw = cluster.leader()?.raw;
    if (raw == null || isJoint(raw.membership)) return false;
    const status = raw.status();
    return (
      status.membershipIndex <= status.commit &&
      sortedVoters(raw.membership).join() === voters.join()
    );
  };
  assert.ok(cluster.runUntilTrue(done, limitMs), `no leader with voters ${voters}`);
  return cluster.leader()!;
}

function assertNoViolations(cluster: SimCluster): void {
  assert.deepEqual(cluster.violations, []);
}

test('removing the leader hands over without an election timeout', () => {
  const cluster = new SimCluster(options({ poolSize: 3 }));
  const first = leaderOf(cluster);
  for (const value of [1, 2, 3]) assert.equal(write(cluster, value).kind, 'ok');
  const committedAt = cluster.now;
  change(first, [{ type: 'remove_voter', node: first.id }]);
  const remaining = cluster.nodes.map((node) => node.id).filter((id) => id !== first.id);
  const second = awaitMembership(cluster, remaining.sort(), ELECTION_TIMEOUT_MS);
  assert.notEqual(second.id, first.id);
  assert.ok(cluster.now - committedAt < ELECTION_TIMEOUT_MS, 'the hand-over waited for a timeout');
  const stepDownTerm = second.raw!.term - 1;
  assert.equal(write(cluster, 4).kind, 'ok');
  // The removed leader never campaigns again: it never votes for itself in a later term.
  for (let round = 0; round < 5; round++) {
    cluster.runUntil(cluster.now + ELECTION_TIMEOUT_MS);
    const hardState = first.storage.hardState();
    assert.ok(hardState.term <= stepDownTerm || hardState.vote !== first.id, 'it campaigned');
    assert.equal(first.raw?.role, 'follower');
  }
  assert.equal(cluster.leader(), second, 'leadership moved after the removal');
  assertNoViolations(cluster);
});

for (const preVote of [true, false]) {
  test(`removed node partitioned and healed (pre-vote ${preVote ? 'on' : 'off'})`, () => {
    const cluster = new SimCluster(options({ poolSize: 3, preVote, seed: 12 }));
    const leader = leaderOf(cluster);
    assert.equal(write(cluster, 0).kind, 'ok');
    const removed = cluster.nodes.find((node) => node !== leader)!;
    cluster.isolate(removed.id);
    change(leader, [{ type: 'remove_voter', node: removed.id }]);
    const members = cluster.nodes.filter((node) => node !== removed).map((node) => node.id);
    awaitMembership(cluster, members.sort(), ELECTION_TIMEOUT_MS);
    // The removed node missed the change and campaigns for a while, then rejoins the network.
    cluster.runUntil(cluster.now + 5 * ELECTION_TIMEOUT_MS);
    const term = leader.raw!.term;
    if (!preVote) assert.ok(removed.raw!.term > term, 'the removed node did not campaign');
    cluster.heal();
    for (let value = 1; value <= 5; value++) {
      assert.equal(write(cluster, value).kind, 'ok');
      cluster.runUntil(cluster.now + ELECTION_TIMEOUT_MS);
    }
    assert.equal(cluster.leader(), leader, 'the removed node deposed the leader');
    assert.equal(leader.raw!.term, term, 'the removed node raised the term');
    assert.notEqual(removed.raw?.role, 'leader');
    assertNoViolations(cluster);
  });
}

for (const victim of ['follower', 'leader'] as const) {
  test(`learner promoted while a voter dies (${victim})`, () => {
    const cluster = new SimCluster(options({ seed: 13 }));
    const leader = leaderOf(cluster);
    for (const value of [1, 2, 3]) assert.equal(write(cluster, value).kind, 'ok');
    cluster.provision('n4');
    change(leader, [{ type: 'add_learner', node: 'n4' }]);
    const promotable = () => {
      const status = leader.raw!.status();
      const settled = status.membershipIndex <= status.commit;
      return settled && leader.raw!.promotableLearners().includes('n4');
    };
    assert.ok(cluster.runUntilTrue(promotable, ELECTION_TIMEOUT_MS), 'n4 never caught up');
    change(leader, [{ type: 'promote_learner', node: 'n4' }]);
    const dying =
      victim === 'leader' ? leader : cluster.nodes.find((node) => node.raw?.role === 'follower')!;
    // The joint entry reaches the followers, then a voter dies in the joint phase.
    cluster.runUntil(cluster.now + 10);
    cluster.crash(dying);
    const next = awaitMembership(cluster, ['n1', 'n2', 'n3', 'n4'], 3 * ELECTION_TIMEOUT_MS);
    assert.equal(write(cluster, 4).kind, 'ok', 'three of four voters must commit');
    cluster.restart(dying);
    const converged = () =>
      cluster.nodes.every((node) => node.up && node.applied === next.raw!.log.committed);
    assert.ok(cluster.runUntilTrue(converged, ELECTION_TIMEOUT_MS));
    const digests = new Set(cluster.nodes.map((node) => node.stateMachine.digest()));
    assert.equal(digests.size, 1);
    assertNoViolations(cluster);
  });
}

test('transfer to a lagging node', () => {
  const cluster = new SimCluster(options({ poolSize: 3, seed: 14 }));
  const leader = leaderOf(cluster);
  const target = cluster.nodes.find((node) => node !== leader)!;
  cluster.isolate(target.id);
  for (let value = 0; value <= DEFAULT_CATCH_UP_LAG_ENTRIES; value++) write(cluster, value % 256);
  const far = transfer(leader, target.id);
  assert.equal(far.ok, false);
  assert.equal(!far.ok && far.reason, 'lagging');
  // Unreachable but within the lag: accepted, proposals held, then abandoned.
  cluster.heal();
  const caughtUp = () => target.applied === leader.raw!.log.committed;
  assert.ok(cluster.runUntilTrue(caughtUp, ELECTION_TIMEOUT_MS));
  cluster.isolate(target.id);
  assert.deepEqual(transfer(leader, target.id), { ok: true });
  let heldProposal: RequestOutcome | undefined;
  leader.propose(Uint8Array.of(1), (outcome) => {
    heldProposal = outcome;
  });
  assert.deepEqual(heldProposal, { kind: 'rejected', leader: leader.id });
  cluster.runUntil(cluster.now + ELECTION_TIMEOUT_MS + 2 * DEFAULT_TICK_MS);
  assert.equal(leader.raw!.status().transferTarget, '', 'the transfer was not abandoned');
  assert.equal(cluster.leader(), leader);
  assert.equal(write(cluster, 7).kind, 'ok');
  // A few entries behind and reachable: caught up first, then it leads.
  for (const value of [8, 9, 10]) write(cluster, value);
  cluster.heal();
  assert.deepEqual(transfer(leader, target.id), { ok: true });
  assert.ok(cluster.runUntilTrue(() => cluster.leader() === target, ELECTION_TIMEOUT_MS));
  assert.equal(target.applied, target.raw!.log.committed);
  assert.equal(write(cluster, 11).kind, 'ok');
  assertNoViolations(cluster);
});

test('transfers under client load lose no write', () => {
  const cluster = new SimCluster(
    options({ seed: 15, poolSize: 3, stateMachine: () => new KvStateMachine() }),
  );
  const loadMs = 12 * ELECTION_TIMEOUT_MS;
  const workload = new Workload(cluster, cluster.random.fork(3), {
    clients: 4,
    keys: 3,
    stopAtMs: cluster.now + loadMs,
    timeoutMs: ELECTION_TIMEOUT_MS,
    idleRate: 0,
    idleMs: [0, 0],
  });
  workload.start();
  let transfers = 0;
  for (let round = 0; round < 8; round++) {
    cluster.runUntil(cluster.now + ELECTION_TIMEOUT_MS);
    const leader = leaderOf(cluster);
    const target = cluster.nodes.find((node) => node !== leader && node.up)!;
    const result = transfer(leader, target.id);
    assert.ok(result.ok, `transfer rejected: ${JSON.stringify(result)}`);
    assert.ok(
      cluster.runUntilTrue(() => cluster.leader() === target, ELECTION_TIMEOUT_MS),
      `leadership did not move to ${target.id}`,
    );
    transfers++;
  }
  cluster.runUntil(loadMs + ELECTION_TIMEOUT_MS);
  workload.finish();
  assert.equal(transfers, 8);
  assert.ok(workload.acknowledged > 100, `only ${workload.acknowledged} writes acknowledged`);
  for (const { index, term } of workload.acknowledgedAt) {
    cluster.invariants.checkAcknowledged(index, term);
  }
  assertNoViolations(cluster);
  const result = checkHistory(kvModel, { ops: workload.history }, { budgetMs: 20_000 });
  assert.equal(
    result.outcome,
    'linearizable',
    result.outcome === 'linearizable' ? '' : result.report,
  );
});
