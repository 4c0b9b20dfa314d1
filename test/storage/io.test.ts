/**
 * File system stack selection through DIVAN_FAULTS, and fault layer settings changed while
 * files are open.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  FsyncDelayFileSystem,
  FsyncFailureFileSystem,
  InjectedFsyncError,
} from '../../src/storage/fault-layers.js';
import { fileSystemFromEnv, nodeFileSystem } from '../../src/storage/io.js';
import { PowerLossFileSystem, PowerLossJournalFileSystem } from '../../src/storage/power-loss.js';
import { tempDir } from '../support/tmp.js';

test('empty DIVAN_FAULTS gives the real file system', () => {
  assert.equal(fileSystemFromEnv({}).fileSystem, nodeFileSystem);
  assert.equal(fileSystemFromEnv({ DIVAN_FAULTS: ' ' }).fileSystem, nodeFileSystem);
});

test('DIVAN_FAULTS stacks every layer', () => {
  const stack = fileSystemFromEnv({
    DIVAN_FAULTS: 'fsync-delay-ms=3,power-loss,fsync-fail-after=2,power-loss-journal',
  });
  assert.ok(stack.fileSystem instanceof FsyncDelayFileSystem, 'delay is the top layer');
  assert.ok(stack.powerLoss instanceof PowerLossFileSystem);
  assert.ok(stack.powerLossJournal instanceof PowerLossJournalFileSystem);
  assert.deepEqual(stack.fsyncDelay, { delayMs: 3 });
  assert.deepEqual(stack.fsyncFailure, { failAfterSyncs: 2, syncCount: 0 });
  assert.deepEqual(fileSystemFromEnv({ DIVAN_FAULTS: 'fsync-fail' }).fsyncFailure, {
    failAfterSyncs: 0,
    syncCount: 0,
  });
});

test('DIVAN_FAULTS rejects bad items', () => {
  assert.throws(
    () => fileSystemFromEnv({ DIVAN_FAULTS: 'slow-disk' }),
    /unknown layer "slow-disk"/,
  );
  assert.throws(() => fileSystemFromEnv({ DIVAN_FAULTS: 'fsync-delay-ms' }), /invalid item/);
  assert.throws(() => fileSystemFromEnv({ DIVAN_FAULTS: 'power-loss=1' }), /invalid item/);
  assert.throws(() => fileSystemFromEnv({ DIVAN_FAULTS: 'fsync-fail-after=-1' }), /invalid value/);
});

test('fsync failure follows settings changed at run time', async (t) => {
  const dir = await tempDir(t);
  const layer = new FsyncFailureFileSystem(nodeFileSystem, { failAfterSyncs: null });
  const file = await layer.create(join(dir, 'file'));
  await file.write(Buffer.from('abc'), 0);
  await file.datasync();
  await file.datasync();
  layer.settings.failAfterSyncs = layer.settings.syncCount;
  await assert.rejects(file.datasync(), InjectedFsyncError);
  await assert.rejects(file.datasync(), InjectedFsyncError);
  layer.settings.failAfterSyncs = null;
  await file.datasync();
  assert.equal(layer.settings.syncCount, 5);
  await file.close();
});

test('fsync delay follows settings changed at run time', async (t) => {
  const dir = await tempDir(t);
  const layer = new FsyncDelayFileSystem(nodeFileSystem, { delayMs: 0 });
  const file = await layer.create(join(dir, 'file'));
  layer.settings.delayMs = 200;
  let settled = false;
  const slow = file.datasync().then(() => {
    settled = true;
  });
  for (let turn = 0; turn < 20; turn++) await new Promise((resolve) => setImmediate(resolve));
  assert.equal(settled, false, 'a delayed fsync is still pending');
  layer.settings.delayMs = 0;
  await file.datasync();
  assert.equal(settled, false, 'a later fsync with no delay completes first');
  await slow;
  assert.equal(settled, true);
  await file.close();
});
