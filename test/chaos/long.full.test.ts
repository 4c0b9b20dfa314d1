/**
 * Longer chaos runs for `npm run test:full`: five nodes under the whole default mix, three
 * nodes with power loss, and the second planted bug (reads served without ReadIndex), which
 * only the linearizability check can see.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { defaultFaults } from '../../src/chaos/options.js';
import { assertVerdict, chaosRun } from './support.js';

// NOTE: transfers are left out of the long runs for the reason given in chaos.test.ts; the
// last test here runs them alone as a to-do.
const withoutTransfer = (powerLoss: boolean) =>
  defaultFaults(powerLoss).filter((kind) => kind !== 'transfer');

test('five nodes pass a long run', async (t) => {
  const run = await chaosRun(t, {
    seed: 31,
    nodes: 5,
    durationSec: 180,
    faults: withoutTransfer(false),
  });
  assertVerdict(run, 'pass');
});

test('power loss passes a long run', async (t) => {
  assertVerdict(
    await chaosRun(t, { seed: 32, nodes: 3, durationSec: 120, powerLoss: true }),
    'pass',
  );
});

test('reads without ReadIndex are caught', async (t) => {
  const run = await chaosRun(t, {
    seed: 33,
    durationSec: 30,
    faults: ['partition', 'isolate-leader', 'fsync-delay', 'network-delay'],
    plantedBugs: ['read_without_read_index'],
  });
  assertVerdict(run, 'violation');
  assert.ok(run.report.violations.some((violation) => violation.kind === 'linearizability'));
});

test('leadership transfers under load complete', {
  todo: 'a leader busy-loops on writes while a transfer is in progress (docs/reliability.md)',
}, async (t) => {
  assertVerdict(await chaosRun(t, { seed: 6, durationSec: 30, faults: ['transfer'] }), 'pass');
});
