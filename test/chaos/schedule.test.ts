/**
 * The seeded fault schedule: the same seed gives the same schedule, faults never overlap and
 * end within the fault phase, the first round fires every chosen kind once, and node faults
 * aim at the leader more often than not.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { chaosOptions, defaultFaults, replayCommand } from '../../src/chaos/options.js';
import { buildSchedule, FAULT_KINDS, type FaultKind } from '../../src/chaos/schedule.js';

const kindsArbitrary = fc.subarray([...FAULT_KINDS], { minLength: 1 });

test('schedule replays from its seed', () => {
  fc.assert(
    fc.property(
      fc.nat(),
      kindsArbitrary,
      fc.integer({ min: 5, max: 600 }),
      (seed, kinds, seconds) => {
        const options = { seed, kinds, durationMs: seconds * 1000 };
        assert.deepEqual(buildSchedule(options), buildSchedule(options));
      },
    ),
  );
});

test('schedule faults are sequential and bounded', () => {
  fc.assert(
    fc.property(
      fc.nat(),
      kindsArbitrary,
      fc.integer({ min: 5, max: 600 }),
      (seed, kinds, seconds) => {
        const durationMs = seconds * 1000;
        const schedule = buildSchedule({ seed, kinds, durationMs });
        let end = 0;
        for (const fault of schedule) {
          assert.ok(kinds.includes(fault.kind), `${fault.kind} was not asked for`);
          assert.ok(fault.atMs >= end, 'faults do not overlap');
          end = fault.atMs + fault.durationMs;
          assert.ok(end <= durationMs, 'faults end within the fault phase');
        }
      },
    ),
  );
});

test('schedule fires every kind first', () => {
  fc.assert(
    fc.property(fc.nat(), kindsArbitrary, (seed, kinds) => {
      const schedule = buildSchedule({ seed, kinds, durationMs: 3_600_000 });
      const firstRound = schedule.slice(0, kinds.length).map((fault) => fault.kind);
      assert.deepEqual([...firstRound].sort(), [...kinds].sort());
    }),
  );
});

test('schedule aims at the leader mostly', () => {
  const schedule = buildSchedule({ seed: 11, kinds: ['kill'], durationMs: 3_600_000 });
  const atLeader = schedule.filter((fault) => fault.targetLeader).length;
  assert.ok(
    atLeader > schedule.length / 2,
    `${atLeader} of ${schedule.length} kills aim at the leader`,
  );
});

test('default faults fit in a 60 s run', () => {
  for (const powerLoss of [false, true]) {
    const kinds: FaultKind[] = defaultFaults(powerLoss);
    for (let seed = 0; seed < 50; seed++) {
      const schedule = buildSchedule({ seed, kinds, durationMs: 60_000 });
      const fired = new Set(schedule.map((fault) => fault.kind));
      assert.equal(
        fired.size,
        kinds.length,
        `seed ${seed}, power loss ${powerLoss}: ${[...fired].join(',')}`,
      );
    }
  }
});

test('replay command names every non-default option', () => {
  const options = chaosOptions({
    seed: 9,
    nodes: 5,
    durationSec: 30,
    powerLoss: true,
    faults: ['kill', 'power-loss'],
    plantedBugs: ['read_without_read_index'],
    unsafeAckBeforeFsync: true,
  });
  assert.equal(
    replayCommand(options),
    'npm run chaos -- --nodes 5 --duration 30 --seed 9 --power-loss --faults kill,power-loss --unsafe-ack-before-fsync --planted-bug read_without_read_index',
  );
  assert.throws(() => chaosOptions({ seed: 1, faults: ['power-loss'] }), /need --power-loss/);
});
