/**
 * The simulator end to end. A fixed set of seeds must pass every check, with and without
 * membership changes, and a seed must replay to the same trace hash. Each planted bug must be
 * reported within a bounded number of seeds. The command line must print its summary and the
 * replay command.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { PLANTED_BUGS, type PlantedBug } from '../../src/raft/index.js';
import { runSeed } from '../../src/sim/run.js';
import { scaled } from '../support/scale.js';
import { tempDir } from '../support/tmp.js';

const DURATION_MS = 4000;

function runSeeds(nodeCount: number, first: number, count: number, membership?: boolean): void {
  let flag = '';
  if (membership === true) flag = ' --membership';
  if (membership === false) flag = ' --no-membership';
  for (let seed = first; seed < first + count; seed++) {
    const result = runSeed({
      seed,
      nodeCount,
      durationMs: DURATION_MS,
      plantedBugs: [],
      membership,
    });
    assert.deepEqual(
      result.violations,
      [],
      `seed ${seed} failed; replay: npm run sim -- --seed ${seed} --nodes ${nodeCount}${flag}`,
    );
    assert.ok(result.operations > 0, `seed ${seed} ran no operation`);
  }
}

test('three-node seeds pass every check', () => {
  runSeeds(3, 1, scaled(500, 5000));
});

test('five-node seeds pass every check', () => {
  runSeeds(5, 10_001, scaled(300, 3000));
});

test('membership seeds from three voters pass every check', () => {
  runSeeds(3, 100_001, scaled(2000, 20_000), true);
});

test('membership seeds from five voters pass every check', () => {
  runSeeds(5, 200_001, scaled(1000, 10_000), true);
});

test('a seed replays to the same trace hash', () => {
  const first = runSeed({ seed: 42, nodeCount: 5, durationMs: DURATION_MS, plantedBugs: [] });
  const second = runSeed({ seed: 42, nodeCount: 5, durationMs: DURATION_MS, plantedBugs: [] });
  const other = runSeed({ seed: 43, nodeCount: 5, durationMs: DURATION_MS, plantedBugs: [] });
  assert.equal(first.traceHash, second.traceHash);
  assert.deepEqual(first.history, second.history);
  assert.notEqual(first.traceHash, other.traceHash);
});

/**
 * Seeds each planted bug may take before the simulator must have reported it. The rarest bugs
 * show in about one seed in 40 under their settings below, so missing one in 600 seeds has a
 * probability far below one in a million.
 *
 * NB: the bugs of membership changes are reported by the checks of the change rules (one
 * change at a time, a leader's first commit) and of elections (learners never counted).
 * Measured with the rule checks switched off (600 seeds each): a second change in flight shows
 * as lost committed entries in about one seed in 13, and a change before the first commit
 * showed no safety violation. With joint consensus and one change at a time, the quorums of
 * any two configurations that can be in effect at once still intersect, so that rule guards
 * against a future single-step change more than against a present failure.
 */
const BUG_SEED_LIMIT = 600;

/**
 * Cluster size and nemesis that expose each bug fastest. Leader churn builds the diverging logs
 * of Figure 8; a double vote needs two candidates in one term, which five nodes make likelier.
 * The bugs of membership changes need the membership nemesis, and churn makes the new leaders
 * and elections that two of them need.
 */
const BUG_SETTINGS: Record<
  PlantedBug,
  { nodeCount: number; nemesis?: 'mixed' | 'churn'; membership?: boolean }
> = {
  commit_previous_term: { nodeCount: 3, nemesis: 'churn', membership: false },
  forget_vote_on_restart: { nodeCount: 5, nemesis: 'churn', membership: false },
  truncate_on_stale_append: { nodeCount: 3, membership: false },
  ack_before_durable: { nodeCount: 3, membership: false },
  read_without_read_index: { nodeCount: 3, membership: false },
  second_change_in_flight: { nodeCount: 3, membership: true },
  change_before_term_commit: { nodeCount: 3, nemesis: 'churn', membership: true },
  learner_votes: { nodeCount: 3, nemesis: 'churn', membership: true },
};

for (const bug of PLANTED_BUGS) {
  test(`planted bug ${bug} is reported`, () => {
    for (let seed = 1; seed <= BUG_SEED_LIMIT; seed++) {
      const result = runSeed({
        seed,
        durationMs: DURATION_MS,
        plantedBugs: [bug],
        ...BUG_SETTINGS[bug],
      });
      if (result.violations.length > 0) return;
    }
    assert.fail(`${bug} went unreported for ${BUG_SEED_LIMIT} seeds`);
  });
}

test('command line prints the summary', () => {
  const run = spawnSync(process.execPath, ['dist/src/sim/cli.js', '--seeds', '3', '--nodes', '3'], {
    encoding: 'utf8',
  });
  assert.equal(run.status, 0, run.stderr);
  const lines = run.stdout.split('\n');
  for (const prefix of [
    'seeds: 3',
    'acknowledged: ',
    'faults: ',
    'lossy crashes: ',
    'elections: ',
    'violations: 0',
  ]) {
    assert.ok(
      lines.some((line) => line.startsWith(prefix)),
      `no line starting ${prefix}`,
    );
  }
  assert.ok(
    lines.some((line) => /^ {2}crash: \d+$/.test(line)),
    'no per-kind fault line',
  );
});

test('command line fails and prints the replay command', () => {
  const args = [
    'dist/src/sim/cli.js',
    '--seeds',
    '30',
    '--nodes',
    '3',
    '--bug',
    'read_without_read_index',
  ];
  const run = spawnSync(process.execPath, args, { encoding: 'utf8' });
  assert.equal(run.status, 1);
  const replay = /replay: npm run sim -- (.*)$/m.exec(run.stdout);
  assert.ok(replay !== null, run.stdout);
  const replayArgs = replay[1]!.split(' ');
  const once = spawnSync(process.execPath, ['dist/src/sim/cli.js', ...replayArgs], {
    encoding: 'utf8',
  });
  const twice = spawnSync(process.execPath, ['dist/src/sim/cli.js', ...replayArgs], {
    encoding: 'utf8',
  });
  assert.equal(once.status, 1);
  const hash = /trace hash: ([0-9a-f]{16})/.exec(once.stdout)?.[1];
  assert.ok(hash !== undefined, once.stdout);
  assert.equal(/trace hash: ([0-9a-f]{16})/.exec(twice.stdout)?.[1], hash);
});

test('history file passes the checker command line', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'history.json');
  const sim = spawnSync(
    process.execPath,
    ['dist/src/sim/cli.js', '--seed', '5', '--history', path],
    {
      encoding: 'utf8',
    },
  );
  assert.equal(sim.status, 0, sim.stdout);
  const check = spawnSync(process.execPath, ['dist/src/check/cli.js', path, '--model', 'kv'], {
    encoding: 'utf8',
  });
  assert.equal(check.status, 0, check.stdout);
  assert.match(check.stdout, /^linearizable: \d+ operations in \d+ keys/);
});
