/**
 * Online compaction of a database file (compaction.ts, `DatabaseFile.compact`), on real files:
 * - the file shrinks. Every document (winning and conflicting leaves), attachment, `_local/`
 *   document and purge request survives, in the handle and after reopening. So does the Raft
 *   state: hard state, membership, applied and discard points, hash chain, request ids, and
 *   the retained log byte for byte;
 * - stages keep landing while the compactor is slowed down midway, a vote staged during the
 *   compaction survives the swap, and progress is reported;
 * - a pin and a read snapshot taken before the swap still read their bytes, `durablePoint()`
 *   describes the new file after it, and `installSnapshot` refuses a snapshot older than the
 *   live file;
 * - the power goes at a random operation of a compaction while stages are in flight: the
 *   recovered file is complete (the old or the new one), with everything acknowledged.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdir, stat, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { test } from 'node:test';
import type { CompactionPhase } from '../../src/engine/compaction.js';
import { DatabaseFile } from '../../src/engine/database-file.js';
import { installSnapshot, pinDurable, StaleSnapshotError } from '../../src/engine/snapshot-file.js';
import type { HardState, Membership } from '../../src/raft/types.js';
import { DEFAULT_PREALLOCATE_BYTES } from '../../src/storage/block-file.js';
import { FsyncDelayFileSystem } from '../../src/storage/fault-layers.js';
import { nodeFileSystem } from '../../src/storage/io.js';
import { PowerLossFileSystem, seededRandom } from '../../src/storage/power-loss.js';
import { scaled } from '../support/scale.js';
import { tempDir } from '../support/tmp.js';
import { CrashDriver } from './fixtures/crash-driver.js';
import { applyRest, verifyRecovered } from './fixtures/crash-verify.js';
import { entryFor, ReferenceStates, UUID } from './fixtures/crash-workload.js';
import { TripwireFileSystem } from './fixtures/tripwire.js';
import { canonicalDump } from './support.js';

const COMMANDS = scaled(160, 500);
const MEMBERSHIP: Membership = { voters: ['n1', 'n2', 'n3'], learners: ['n4'], votersOutgoing: [] };
/** Slows the worker down so that stages land during the copy. */
const SLOW_DELAY_MS = 3;
/** Highest operation number at which the power-loss test cuts the power during the copy. */
const MAX_COPY_TRIP = 30;
/** Highest operation number, from the swap's opening of the new file, for a cut in the swap. */
const MAX_SWAP_TRIP = 7;
/** Highest operation number, from the swap's first rename, for a cut between its renames. */
const MAX_RENAME_TRIP = 4;

let referencePromise: Promise<ReferenceStates> | undefined;

function reference(dir: string): Promise<ReferenceStates> {
  referencePromise ??= ReferenceStates.build(dir, COMMANDS);
  return referencePromise;
}

/** Everything a compaction must keep, without file positions. */
function fullState(file: DatabaseFile) {
  const snapshot = file.snapshot();
  const dump = createHash('sha256').update(canonicalDump(snapshot)).digest('hex');
  snapshot.close();
  const extent = file.logExtent();
  const log = file.readLogEntries(extent.firstIndex, extent.lastIndex).map((entry) => ({
    index: entry.index,
    term: entry.term,
    type: entry.type,
    data: createHash('sha256').update(entry.data).digest('hex'),
  }));
  return {
    dump,
    hardState: file.hardState,
    membership: file.membership,
    applied: file.applied,
    discarded: file.discarded,
    hashChain: file.hashChain.toString('hex'),
    updateSeq: file.updateSeq,
    extent,
    log,
  };
}

async function createFile(path: string, options: { fileSystem?: TripwireFileSystem } = {}) {
  return DatabaseFile.create(path, {
    name: 'crash',
    uuid: UUID,
    membership: MEMBERSHIP,
    ...options,
  });
}

/** Drives `driver` until it has applied `upTo` commands, one durable stage at a time. */
async function driveTo(driver: CrashDriver, upTo: number, random: () => number): Promise<void> {
  while (driver.applied < upTo && !driver.done) await driver.step(random);
}

test('compaction shrinks the file and keeps every state', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'db.couch');
  const file = await createFile(path);
  const driver = new CrashDriver(file, 'raft', COMMANDS);
  await driveTo(driver, COMMANDS, seededRandom(7));
  const vote: HardState = { term: 99, vote: 'n3', commit: driver.applied };
  await file.stage({ hardState: vote }).durable;
  const before = fullState(file);
  assert.ok(before.log.length > 0, 'the log retains entries');
  assert.ok(before.discarded.index > 0, 'the log was discarded from');

  const result = await file.compact();
  assert.ok(
    result.sizeAfter < result.sizeBefore * 0.8,
    `${result.sizeBefore} -> ${result.sizeAfter} bytes`,
  );
  const onDisk = (await stat(path)).size;
  assert.ok(onDisk >= result.sizeAfter, 'the file holds the compacted data');
  assert.ok(
    onDisk - result.sizeAfter <= DEFAULT_PREALLOCATE_BYTES * 1.5,
    'at most a step and a half of zeros follows the data',
  );
  assert.deepEqual(await readdir(dir), ['db.couch'], 'no compaction file is left');
  assert.deepEqual(fullState(file), before, 'the handle reads the same state');
  assert.deepEqual(file.hardState, vote);

  // Stages after the swap go to the new file.
  const next = entryFor(driver.appended + 1);
  await file.stage({
    append: [next],
    apply: [{ index: next.index, term: next.term }],
    hardState: { ...vote, commit: next.index },
  }).durable;
  const extended = fullState(file);
  await file.close();
  const reopened = await DatabaseFile.open(path);
  t.after(() => reopened.close());
  assert.deepEqual(fullState(reopened), extended, 'the reopened file holds the same state');
});

test('stages land while the compactor runs, and a vote survives the swap', async (t) => {
  const dir = await tempDir(t);
  const states = await reference(await tempDir(t));
  const path = join(dir, 'db.couch');
  const file = await createFile(path);
  const random = seededRandom(11);
  const driver = new CrashDriver(file, 'raft', COMMANDS);
  await driveTo(driver, COMMANDS / 2, random);

  const compaction = file.compact({ delayPerDocumentMs: SLOW_DELAY_MS, finalCatchUpUnits: 5 });
  let finished = false;
  const markFinished = () => {
    finished = true;
  };
  compaction.then(markFinished, markFinished);
  const phases = new Set<CompactionPhase>();
  let stagesDuringCopy = 0;
  let vote: HardState = file.hardState;
  let term = 1_000;
  while (!finished) {
    const progress = file.compaction;
    const during = progress?.phase;
    if (progress !== null) {
      phases.add(progress.phase);
      assert.ok(progress.changesDone <= progress.totalChanges || progress.totalChanges === 0);
    }
    if (!driver.done) await driver.step(random);
    term += 1;
    vote = { term, vote: `n${1 + (term % 3)}`, commit: driver.applied };
    const staged = file.stage({ hardState: vote });
    if (random() < 0.5) await staged.durable;
    if (during === 'document_copy' && file.compaction?.phase === 'document_copy') {
      stagesDuringCopy += 1;
    }
  }
  const result = await compaction;
  assert.ok(stagesDuringCopy > 0, `stages landed during the copy (phases ${[...phases]})`);
  assert.ok(phases.has('document_copy'));
  assert.ok(result.rounds >= 2, 'writes made during the first copy needed a catch-up round');
  assert.equal(file.compaction, null, 'no progress once finished');
  assert.deepEqual(file.hardState, vote, 'the last vote, staged during the compaction');
  await file.stage({}).durable;

  const snapshot = file.snapshot();
  assert.equal(
    createHash('sha256').update(canonicalDump(snapshot)).digest('hex'),
    states.digest(file.applied.index),
  );
  snapshot.close();
  const state = fullState(file);
  await file.close();
  const reopened = await DatabaseFile.open(path);
  t.after(() => reopened.close());
  assert.deepEqual(fullState(reopened), state);
  assert.deepEqual(reopened.hardState, vote);
});

test('a pin and a snapshot taken before the swap keep their bytes', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'db.couch');
  const file = await createFile(path);
  t.after(() => file.close());
  const random = seededRandom(3);
  const driver = new CrashDriver(file, 'raft', COMMANDS);
  await driveTo(driver, COMMANDS / 2, random);
  await file.stage({}).durable;

  const pin = pinDurable(file);
  const pinned = pin.read(0, pin.size);
  const oldPoint = file.durablePoint();
  const snapshot = file.snapshot();
  const seen = canonicalDump(snapshot);
  assert.deepEqual(pin.meta, oldPoint.meta);
  await file.compact();
  await driveTo(driver, COMMANDS / 2 + 10, random);
  assert.ok(pin.read(0, pin.size).equals(pinned), 'the pin reads the old file');
  assert.ok(canonicalDump(snapshot).equals(seen), 'the snapshot reads the old file');
  snapshot.close();
  const shipped = join(dir, 'shipped.couch');
  await writeFile(shipped, pinned);
  const copy = await DatabaseFile.open(shipped);
  assert.equal(copy.applied.index, pin.meta.index, 'the pinned bytes are a whole database file');
  await copy.close();
  await pin.release();

  await file.stage({}).durable;
  const point = file.durablePoint();
  assert.equal(point.meta.index, file.applied.index, 'the durable point is the new state');
  assert.ok(point.size < oldPoint.size, 'and lies in the smaller, compacted file');
  const after = pinDurable(file);
  const received = join(dir, 'received.couch');
  await writeFile(received, after.read(0, after.size));
  await after.release();
  const newCopy = await DatabaseFile.open(received);
  assert.equal(newCopy.applied.index, point.meta.index);
  await newCopy.close();
});

test('a stale snapshot is refused, a newer one installed', async (t) => {
  const dir = await tempDir(t);
  const random = seededRandom(5);
  const leaderPath = join(dir, 'leader.couch');
  const leader = await createFile(leaderPath);
  t.after(() => leader.close());
  const driver = new CrashDriver(leader, 'raft', COMMANDS);
  await driveTo(driver, 40, random);
  await leader.stage({}).durable;
  const old = pinDurable(leader);
  const oldBytes = old.read(0, old.size);
  await old.release();
  await driveTo(driver, 80, random);
  await leader.compact();
  await leader.stage({}).durable;
  const fresh = pinDurable(leader);
  const freshBytes = fresh.read(0, fresh.size);
  const freshMeta = fresh.meta;
  await fresh.release();

  // The follower has applied 80 from its own log; the old snapshot would move it back.
  const followerPath = join(dir, 'follower.couch');
  await writeFile(followerPath, freshBytes);
  const receivedPath = join(dir, 'follower.couch.snapshot');
  await writeFile(receivedPath, oldBytes);
  const own: HardState = { term: 500, vote: 'n2', commit: 0 };
  await assert.rejects(
    installSnapshot(receivedPath, followerPath, { hardState: own }),
    (error: unknown) =>
      error instanceof StaleSnapshotError &&
      error.appliedIndex === freshMeta.index &&
      error.snapshotIndex < freshMeta.index,
  );
  assert.deepEqual((await readdir(dir)).sort(), [
    'follower.couch',
    'follower.couch.snapshot',
    'leader.couch',
  ]);
  const unchanged = await DatabaseFile.open(followerPath);
  assert.equal(unchanged.applied.index, freshMeta.index, 'the follower did not move back');
  await unchanged.close();

  // A follower behind the snapshot installs it and keeps its own term and vote, even when a
  // compaction of its file was interrupted at the swap and left the compacted file aside.
  await writeFile(followerPath, oldBytes);
  await writeFile(`${followerPath}.compact`, oldBytes);
  await writeFile(receivedPath, freshBytes);
  const installed = await installSnapshot(receivedPath, followerPath, { hardState: own });
  t.after(() => installed.close());
  assert.equal(installed.applied.index, freshMeta.index);
  assert.deepEqual(installed.hardState, own);
  assert.deepEqual(installed.logExtent(), {
    firstIndex: freshMeta.index + 1,
    lastIndex: freshMeta.index,
    lastTerm: freshMeta.term,
  });
  assert.equal(basename(installed.path), 'follower.couch');
  assert.deepEqual((await readdir(dir)).sort(), ['follower.couch', 'leader.couch']);
});

test('power loss at random points of a compaction', async (t) => {
  const dir = await tempDir(t);
  const states = await reference(await tempDir(t));
  const seeds = scaled(8, 60);
  const trips: string[] = [];
  for (let seed = 1; seed <= seeds; seed++) {
    const random = seededRandom(seed);
    const powerLoss = new PowerLossFileSystem(nodeFileSystem);
    const delayed = new FsyncDelayFileSystem(powerLoss, { delayMs: 1 });
    const tripwire = new TripwireFileSystem(delayed);
    const path = join(dir, `compact-${seed}.couch`);
    const file = await createFile(path, { fileSystem: tripwire });
    const driver = new CrashDriver(file, 'raft', COMMANDS);
    await driveTo(driver, 20 + Math.floor(random() * (COMMANDS / 2)), random);

    let crashed = false;
    // Odd seeds cut anywhere from the compaction's start. Even ones cut from the swap's
    // opening of the new file on, and every fourth from the swap's first rename on.
    const scratch = `${path}.compact.data`;
    const [maxTrip, from] =
      seed % 4 === 0
        ? [MAX_RENAME_TRIP, (operation: string) => operation.startsWith(`rename ${scratch}`)]
        : seed % 2 === 0
          ? [MAX_SWAP_TRIP, (operation: string) => operation === `open ${scratch}`]
          : [MAX_COPY_TRIP, undefined];
    const tripAt = 1 + Math.floor(random() * maxTrip);
    tripwire.arm(
      tripAt,
      async () => {
        crashed = true;
        await powerLoss.crash({ seed });
      },
      from,
    );
    const compaction = file.compact({
      delayPerDocumentMs: random() < 0.5 ? 0 : 1,
      finalCatchUpUnits: Math.floor(random() * 20),
    });
    const stages: Array<Promise<void>> = [];
    let finished = false;
    const markFinished = () => {
      finished = true;
    };
    compaction.then(markFinished, markFinished);
    // Stages in flight until the power goes; after a finished compaction, a few more.
    let after = 0;
    while (!crashed && after < 5) {
      if (finished) after += 1;
      if (driver.done) await new Promise((resolve) => setImmediate(resolve));
      else {
        stages.push(driver.step(random).catch(() => undefined));
        if (random() < 0.5) await stages.at(-1);
      }
    }
    const cut = crashed ? (tripwire.operations.at(-1) ?? '') : 'after the compaction';
    if (!crashed) {
      crashed = true;
      await powerLoss.crash({ seed });
    }
    trips.push(cut.replace(dir, ''));
    await Promise.all(stages);
    await compaction.catch(() => undefined);
    await file.close();
    const context = `seed ${seed}, power lost at ${cut}`;
    const recovered = await verifyRecovered(
      path,
      powerLoss,
      'raft',
      driver.acknowledged,
      states,
      context,
    );
    const left = (await readdir(dir)).filter((name) => name.startsWith(basename(path)));
    assert.deepEqual(left, [basename(path)], `${context}: no compaction file is left`);
    await applyRest(recovered, states, context);
    await recovered.close();
  }
  t.diagnostic(`power lost at: ${trips.join('; ')}`);
  assert.ok(
    trips.some((trip) => trip.startsWith('rename') || trip.startsWith('dirsync')),
    'some cuts fall between the renames of the swap',
  );
});
