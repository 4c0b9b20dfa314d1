/**
 * Scripted scenarios on the simulated cluster: the original change's hash chain test at the
 * default tick length, and a quiet group that recovers from a leader crash through the
 * transport's failure report.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import {
  DEFAULT_ELECTION_TICKS,
  DEFAULT_HEARTBEAT_TICKS,
  DEFAULT_TICK_MS,
} from '../../src/raft/index.js';
import { QUIET_NETWORK, SimCluster, type SimClusterOptions } from '../../src/sim/cluster.js';
import type { RequestOutcome, SimNode } from '../../src/sim/node.js';
import { HashChainStateMachine, KvStateMachine } from '../../src/sim/state-machine.js';

const ELECTION_TIMEOUT_MS = DEFAULT_ELECTION_TICKS * DEFAULT_TICK_MS;

function options(overrides: Partial<SimClusterOptions>): SimClusterOptions {
  return {
    seed: 7,
    nodeCount: 3,
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

/** Proposes `data` on the leader and runs until its outcome arrives. */
function proposeAndWait(cluster: SimCluster, leader: SimNode, data: Uint8Array): RequestOutcome {
  let outcome: RequestOutcome | undefined;
  leader.propose(data, (result) => {
    outcome = result;
  });
  assert.ok(cluster.runUntilTrue(() => outcome !== undefined, ELECTION_TIMEOUT_MS));
  assert.deepEqual(cluster.violations, []);
  return outcome!;
}

function leaders(cluster: SimCluster): SimNode[] {
  return cluster.nodes.filter((node) => node.raw?.role === 'leader');
}

function chain(values: readonly number[]): string[] {
  let hash = Buffer.from([0]);
  return values.map((value) => {
    hash = createHash('sha256')
      .update(hash)
      .update(Buffer.from([value]))
      .digest();
    return hash.toString('hex');
  });
}

for (const seed of [1, 2, 3, 4, 5, 6, 7, 8]) {
  test(`hash chain survives a leader stop (seed ${seed})`, () => {
    const cluster = new SimCluster(options({ seed }));
    const expected = chain([1, 2, 3, 4]);
    // Defaults were raised above 500 ms, so the bound is two election timeouts.
    cluster.runUntil(2 * ELECTION_TIMEOUT_MS);
    assert.equal(leaders(cluster).length, 1, 'exactly one leader within two election timeouts');
    const first = leaders(cluster)[0]!;
    for (const [i, value] of [1, 2, 3].entries()) {
      const outcome = proposeAndWait(cluster, first, Uint8Array.of(value));
      assert.equal(outcome.kind, 'ok');
      assert.equal(outcome.kind === 'ok' && outcome.result, expected[i]);
    }
    cluster.crash(first);
    const elected = cluster.runUntilTrue(
      () => leaders(cluster).length === 1,
      2 * ELECTION_TIMEOUT_MS,
    );
    assert.ok(elected, 'no new leader after the first stopped');
    const second = leaders(cluster)[0]!;
    assert.notEqual(second.id, first.id);
    const outcome = proposeAndWait(cluster, second, Uint8Array.of(4));
    assert.equal(outcome.kind, 'ok');
    assert.equal(outcome.kind === 'ok' && outcome.result, expected[3]);
    assert.deepEqual(cluster.violations, []);
  });
}

test('quiet group elects after the leader crashes', () => {
  const cluster = new SimCluster(
    options({ quiesce: true, stateMachine: () => new KvStateMachine() }),
  );
  cluster.runUntil(2 * ELECTION_TIMEOUT_MS);
  const first = leaders(cluster)[0];
  assert.ok(first !== undefined);
  const command = new TextEncoder().encode(JSON.stringify({ op: 'put', key: 'k', value: 'v' }));
  assert.equal(proposeAndWait(cluster, first, command).kind, 'ok');
  // Idle: the group goes quiet and stops sending, for many election timeouts.
  cluster.runUntil(cluster.now + ELECTION_TIMEOUT_MS);
  for (const node of cluster.nodes) assert.equal(node.raw?.quiet, true, `${node.id} is not quiet`);
  const sent = cluster.messagesSent;
  cluster.runUntil(cluster.now + 5 * ELECTION_TIMEOUT_MS);
  assert.equal(cluster.messagesSent, sent, 'a quiet group sent messages');
  assert.equal(leaders(cluster).length, 1);
  // The leader's node dies; the transport reports it and a follower campaigns at once.
  const crashedAt = cluster.now;
  cluster.crash(first);
  const elected = cluster.runUntilTrue(
    () => leaders(cluster).length === 1,
    2 * ELECTION_TIMEOUT_MS,
  );
  assert.ok(elected);
  assert.ok(
    cluster.now - crashedAt < ELECTION_TIMEOUT_MS,
    'the election waited for a timeout instead of the failure report',
  );
  const second = leaders(cluster)[0]!;
  assert.equal(proposeAndWait(cluster, second, command).kind, 'ok');
  assert.deepEqual(cluster.violations, []);
});
