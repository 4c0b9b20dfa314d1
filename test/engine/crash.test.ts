/**
 * Crash consistency of the database file, at random points of write batches and of the
 * combined Raft commit (append, hard state, apply, discard in one stage):
 * - in process, under the power-loss layer with random fsync delays, with several stages in
 *   flight when the power goes. Each file crashes three times, each recovery continuing;
 * - across processes, a child writing through `DIVAN_FAULTS=power-loss-journal` is killed with
 *   SIGKILL and the journal then cuts or tears what it had not synced.
 *
 * After every crash:
 * - the file reopens, and its applied index is at least the last acknowledged one;
 * - its whole state equals the reference state of exactly that applied index, so the trees and
 *   the applied index agree;
 * - in Raft mode, its log contains every acknowledged entry byte for byte, and applying the
 *   rest of the log reaches the reference state of the last entry: nothing is applied twice
 *   or skipped.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { DatabaseFile } from '../../src/engine/database-file.js';
import { FsyncDelayFileSystem } from '../../src/storage/fault-layers.js';
import { nodeFileSystem } from '../../src/storage/io.js';
import {
  applyPowerLossJournal,
  PowerLossFileSystem,
  seededRandom,
} from '../../src/storage/power-loss.js';
import { scaled } from '../support/scale.js';
import { tempDir } from '../support/tmp.js';
import { type Acknowledged, CrashDriver, type CrashMode } from './fixtures/crash-driver.js';
import { applyRest, verifyRecovered } from './fixtures/crash-verify.js';
import { ReferenceStates, UUID } from './fixtures/crash-workload.js';

const here = dirname(fileURLToPath(import.meta.url));
const COMMANDS = scaled(200, 600);
const MODES: CrashMode[] = ['raft', 'standalone'];

let referencePromise: Promise<ReferenceStates> | undefined;

function reference(dir: string): Promise<ReferenceStates> {
  referencePromise ??= ReferenceStates.build(dir, COMMANDS);
  return referencePromise;
}

for (const mode of MODES) {
  test(`power loss during ${mode} commits`, async (t) => {
    const dir = await tempDir(t);
    const states = await reference(await tempDir(t));
    const seeds = scaled(10, 60);
    for (let seed = 1; seed <= seeds; seed++) {
      const random = seededRandom(seed);
      const powerLoss = new PowerLossFileSystem(nodeFileSystem);
      const fileSystem = new FsyncDelayFileSystem(powerLoss, { delayMs: 1 });
      const path = join(dir, `${mode}-${seed}.couch`);
      let file = await DatabaseFile.create(path, { name: 'crash', uuid: UUID, fileSystem });
      for (let crash = 0; crash < 3; crash++) {
        const driver = new CrashDriver(file, mode, COMMANDS);
        const stages: Array<Promise<void>> = [];
        const stop = 3 + Math.floor(random() * 25);
        for (let step = 0; step < stop && !driver.done; step++) {
          stages.push(driver.step(random).catch(() => undefined));
          fileSystem.settings.delayMs = Math.floor(random() * 3);
          if (random() < 0.4) await stages.at(-1);
        }
        for (let turns = Math.floor(random() * 4); turns > 0; turns--) {
          await new Promise((resolve) => setImmediate(resolve));
        }
        await powerLoss.crash({ seed: seed * 10 + crash });
        await Promise.all(stages);
        await file.close();
        const context = `${mode} seed ${seed} crash ${crash}`;
        file = await verifyRecovered(path, fileSystem, mode, driver.acknowledged, states, context);
      }
      if (mode === 'raft') await applyRest(file, states, `${mode} seed ${seed}`);
      await file.close();
    }
  });
}

/** Runs the child until it acknowledges `target` applied commands, kills it, returns what it acknowledged. */
function runChildUntil(
  path: string,
  mode: CrashMode,
  target: number,
  seed: number,
): Promise<Acknowledged> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [join(here, 'fixtures', 'crash-child.js'), path, mode, String(COMMANDS), String(seed)],
      {
        env: { ...process.env, DIVAN_FAULTS: 'power-loss-journal' },
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    const acknowledged: Acknowledged = { applied: 0, appended: 0 };
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      const lines = output.split('\n');
      output = lines.pop()!;
      for (const line of lines) {
        const [, applied, appended] = line.split(' ');
        acknowledged.applied = Number(applied);
        acknowledged.appended = Number(appended);
      }
      if (acknowledged.applied >= target) child.kill('SIGKILL');
    });
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      if (signal === 'SIGKILL') resolve(acknowledged);
      else reject(new Error(`child exited with code ${code} before applying ${target} commands`));
    });
  });
}

for (const mode of MODES) {
  test(`SIGKILL during ${mode} commits`, async (t) => {
    const dir = await tempDir(t);
    const states = await reference(await tempDir(t));
    const rounds = scaled(4, 20);
    for (let round = 0; round < rounds; round++) {
      const roundDir = join(dir, `round-${round}`);
      await nodeFileSystem.mkdir(roundDir);
      const path = join(roundDir, 'killed.couch');
      const target = 10 + Math.floor(((round + 1) * (COMMANDS - 40)) / (rounds + 1));
      const acknowledged = await runChildUntil(path, mode, target, round + 1);
      const actions = await applyPowerLossJournal(roundDir, {
        seed: round,
        fileSystem: nodeFileSystem,
      });
      assert.ok(
        actions.some((action) => action.path === path),
        'the journal names the database file',
      );
      const context = `${mode} round ${round}`;
      const file = await verifyRecovered(path, nodeFileSystem, mode, acknowledged, states, context);
      if (mode === 'raft') await applyRest(file, states, context);
      await file.close();
    }
  });
}
