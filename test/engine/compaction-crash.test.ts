/**
 * A compaction killed at random points. A child process compacts a database file while it
 * keeps staging, through `DIVAN_FAULTS=power-loss-journal`. The test kills it with SIGKILL
 * after a random number of its reports (durable stages and compaction phases), then cuts or
 * tears what it had not synced. The recovered file must be complete (the old or the new one),
 * with every acknowledged stage, no compaction file left, and a log that applies to the
 * reference state.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { nodeFileSystem } from '../../src/storage/io.js';
import { applyPowerLossJournal, JOURNAL_NAME, seededRandom } from '../../src/storage/power-loss.js';
import { scaled } from '../support/scale.js';
import { tempDir } from '../support/tmp.js';
import type { Acknowledged } from './fixtures/crash-driver.js';
import { applyRest, verifyRecovered } from './fixtures/crash-verify.js';
import { ReferenceStates } from './fixtures/crash-workload.js';

const here = dirname(fileURLToPath(import.meta.url));
const COMMANDS = 160;
/** Commands applied before the child starts compacting. */
const START = 60;
const DELAY_MS = 2;
/** Reports after `compacting` within which the kill falls (a compaction makes about 60). */
const MAX_REPORTS = 70;
/** Every this many rounds, the kill comes at the report of the swap phase. */
const SWAP_KILL_EVERY = 3;

interface ChildRun {
  readonly acknowledged: Acknowledged;
  /** The last report before the kill, or `finished`. */
  readonly last: string;
}

/** Runs the child and kills it after `killAfter` reports following `compacting`, or at the swap. */
function runChild(path: string, seed: number, killAfter: number | 'swap'): Promise<ChildRun> {
  return new Promise((resolve, reject) => {
    const script = join(here, 'fixtures', 'compaction-child.js');
    const args = [script, path, String(COMMANDS), String(seed), String(START), String(DELAY_MS)];
    const child = spawn(process.execPath, args, {
      env: { ...process.env, DIVAN_FAULTS: 'power-loss-journal' },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const acknowledged: Acknowledged = { applied: 0, appended: 0 };
    let output = '';
    let reports = -1;
    let last = '';
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      const lines = output.split('\n');
      output = lines.pop()!;
      for (const line of lines) {
        const [kind, applied, appended] = line.split(' ');
        if (kind === 'durable') {
          acknowledged.applied = Number(applied);
          acknowledged.appended = Number(appended);
        }
        if (kind === 'compacting') reports = 0;
        else if (reports >= 0) reports += 1;
        last = line;
      }
      const due = killAfter === 'swap' ? last === 'phase swap' : reports >= killAfter;
      if (due) child.kill('SIGKILL');
    });
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      if (signal === 'SIGKILL') resolve({ acknowledged, last });
      else if (code === 0) resolve({ acknowledged, last: 'finished' });
      else reject(new Error(`child exited with code ${code}`));
    });
  });
}

test('SIGKILL at random points of a compaction', async (t) => {
  const dir = await tempDir(t);
  const states = await ReferenceStates.build(await tempDir(t), COMMANDS);
  const rounds = scaled(6, 30);
  const random = seededRandom(17);
  const kills: string[] = [];
  for (let round = 0; round < rounds; round++) {
    const roundDir = join(dir, `round-${round}`);
    await nodeFileSystem.mkdir(roundDir);
    const path = join(roundDir, 'compacted.couch');
    const killAfter =
      round % SWAP_KILL_EVERY === SWAP_KILL_EVERY - 1 ? 'swap' : Math.floor(random() * MAX_REPORTS);
    const run = await runChild(path, round + 1, killAfter);
    kills.push(run.last);
    await applyPowerLossJournal(roundDir, { seed: round, fileSystem: nodeFileSystem });
    const context = `round ${round}, killed after ${killAfter} reports at "${run.last}"`;
    const file = await verifyRecovered(
      path,
      nodeFileSystem,
      'raft',
      run.acknowledged,
      states,
      context,
    );
    const left = (await readdir(roundDir)).filter((name) => name !== JOURNAL_NAME);
    const creating = left.filter((name) => name.endsWith('.creating'));
    assert.deepEqual(
      left.filter((name) => !creating.includes(name)),
      ['compacted.couch'],
      `${context}: no compaction file is left`,
    );
    await applyRest(file, states, context);
    if (creating.length > 0) {
      // A kill while the worker created its file leaves the block file's temporary file,
      // which the next compaction deletes.
      await file.compact();
      const after = (await readdir(roundDir)).filter((name) => name !== JOURNAL_NAME);
      assert.deepEqual(after, ['compacted.couch'], `${context}: the next compaction cleans up`);
    }
    await file.close();
  }
  t.diagnostic(`killed at: ${kills.join('; ')}`);
});
