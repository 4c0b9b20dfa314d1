/**
 * The power-loss run in the CI suite: every node journals what it synced, and crashes of one
 * node and of the whole cluster cut each file back to that (tearing the tail). Every
 * acknowledged write must survive. The same run with followers that acknowledge before fsync
 * (`--unsafe-ack-before-fsync`) must report a violation, which proves the run can fail.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ViolationKind } from '../../src/chaos/checks.js';
import type { FaultKind } from '../../src/chaos/schedule.js';
import { assertVerdict, chaosRun } from './support.js';

const SEED = 7;
const DURATION_SEC = 25;
const FAULTS: FaultKind[] = ['power-loss', 'cluster-power-loss', 'fsync-failure'];

test('power loss keeps acknowledged writes', async (t) => {
  const run = await chaosRun(t, {
    seed: SEED,
    durationSec: DURATION_SEC,
    powerLoss: true,
    faults: FAULTS,
  });
  assertVerdict(run, 'pass');
});

test('power loss exposes ack before fsync', async (t) => {
  const run = await chaosRun(t, {
    seed: SEED,
    durationSec: DURATION_SEC,
    powerLoss: true,
    faults: ['cluster-power-loss'],
    unsafeAckBeforeFsync: true,
  });
  assertVerdict(run, 'violation');
  // Lost acknowledged entries show as a lost write or a stale read, or, when a majority lost
  // a committed entry, as replicas that no longer agree or never converge.
  const kinds = new Set(run.report.violations.map((violation) => violation.kind));
  const safetyKinds: ViolationKind[] = [
    'lost_write',
    'linearizability',
    'divergence',
    'no_convergence',
  ];
  assert.ok(
    safetyKinds.some((kind) => kinds.has(kind)),
    [...kinds].join(', '),
  );
});
