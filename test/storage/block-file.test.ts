/**
 * Block file: record framing across block boundaries, reads of unwritten records, commit
 * order, corruption reports, fatal fsync failures, creation through a temporary name and
 * refusal to open (or overwrite) a file without a valid header.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { crc32c } from '@node-rs/crc32';
import fc from 'fast-check';
import { BlockFile, type CommitDiscipline } from '../../src/storage/block-file.js';
import {
  BLOCK_SIZE,
  encodeHeader,
  FORMAT_VERSION,
  HEADER_FIXED_BYTES,
  lengthChecksum,
  MARKER_HEADER,
  physicalIndex,
  physicalLength,
} from '../../src/storage/block-layout.js';
import {
  CorruptionError,
  FileExistsError,
  FileFailedError,
  UnsupportedFormatError,
} from '../../src/storage/errors.js';
import {
  ForwardingDbFile,
  ForwardingFileSystem,
  FsyncDelayFileSystem,
  FsyncFailureFileSystem,
} from '../../src/storage/fault-layers.js';
import { type DbFile, type FileSystem, nodeFileSystem } from '../../src/storage/io.js';
import { NodeCache } from '../../src/storage/node-cache.js';
import { PowerLossFileSystem, seededRandom } from '../../src/storage/power-loss.js';
import { scaled } from '../support/scale.js';
import { tempDir } from '../support/tmp.js';

const disciplines: CommitDiscipline[] = ['one-fsync', 'two-fsync'];

function payload(length: number, seed: number): Buffer {
  const bytes = Buffer.alloc(length);
  for (let i = 0; i < length; i++) bytes[i] = (seed * 31 + i * 7) & 0xff;
  // Header markers inside data must never confuse the header scan.
  if (length > 0) bytes[0] = MARKER_HEADER;
  return bytes;
}

for (const discipline of disciplines) {
  test(`records round-trip across blocks (${discipline})`, async (t) => {
    const dir = await tempDir(t);
    let run = 0;
    const operation = fc.oneof(
      {
        weight: 6,
        arbitrary: fc.integer({ min: 0, max: 3 * BLOCK_SIZE }).map((n) => ({ append: n })),
      },
      { weight: 1, arbitrary: fc.constant({ commit: true }) },
      { weight: 1, arbitrary: fc.constant({ reopen: true }) },
    );
    await fc.assert(
      fc.asyncProperty(fc.array(operation, { minLength: 1, maxLength: 40 }), async (operations) => {
        const path = join(dir, `round-trip-${run++}.db`);
        let file = await BlockFile.create(path, Buffer.from('g1'), { discipline });
        const committed: Array<[number, Buffer]> = [];
        let pending: Array<[number, Buffer]> = [];
        let commits = 1;
        try {
          for (const step of operations) {
            if ('append' in step) {
              const bytes = payload(step.append, pending.length + committed.length);
              pending.push([file.append(bytes), bytes]);
            } else if ('commit' in step) {
              commits += 1;
              await file.commit(Buffer.from(`g${commits}`));
              committed.push(...pending);
              pending = [];
            } else {
              await file.close();
              pending = [];
              file = await BlockFile.open(path, { discipline });
              assert.equal(Buffer.from(file.header).toString(), `g${commits}`);
            }
            for (const [pointer, bytes] of [...committed, ...pending]) {
              assert.ok(file.read(pointer).equals(bytes), `record at ${pointer}`);
            }
          }
        } finally {
          await file.close();
        }
      }),
      { numRuns: scaled(25, 250) },
    );
  });

  test(`appends during a commit join the next one (${discipline})`, async (t) => {
    const dir = await tempDir(t);
    const path = join(dir, 'in-flight.db');
    const fileSystem = new FsyncDelayFileSystem(nodeFileSystem, { delayMs: 5 });
    const file = await BlockFile.create(path, Buffer.from('h0'), { discipline, fileSystem });
    const order: number[] = [];
    const first = file.append(payload(100, 1));
    const commits = [file.commit(Buffer.from('h1')).then(() => order.push(1))];
    const late = file.append(payload(5000, 2));
    assert.ok(file.read(late).equals(payload(5000, 2)), 'a record is readable before its write');
    commits.push(file.commit(Buffer.from('h2')).then(() => order.push(2)));
    commits.push(file.commit(Buffer.from('h3')).then(() => order.push(3)));
    await commits[0];
    assert.equal(Buffer.from(file.header).toString(), 'h1');
    await Promise.all(commits);
    assert.deepEqual(order, [1, 2, 3], 'commits resolve in call order');
    await file.close();

    const reopened = await BlockFile.open(path);
    assert.equal(Buffer.from(reopened.header).toString(), 'h3');
    assert.ok(reopened.read(first).equals(payload(100, 1)));
    assert.ok(reopened.read(late).equals(payload(5000, 2)));
    await reopened.close();
  });

  test(`fsync failure closes the file for good (${discipline})`, async (t) => {
    const dir = await tempDir(t);
    const path = join(dir, 'fsync-failure.db');
    const fileSystem = new FsyncFailureFileSystem(nodeFileSystem, { failAfterSyncs: null });
    const file = await BlockFile.create(path, Buffer.from('h0'), { discipline, fileSystem });
    const pointer = file.append(payload(10, 1));
    await file.commit(Buffer.from('h1'));
    fileSystem.settings.failAfterSyncs = fileSystem.settings.syncCount;
    file.append(payload(10, 2));
    const failure = await file.commit(Buffer.from('h2')).then(
      () => assert.fail('commit must fail'),
      (error: unknown) => error,
    );
    assert.ok(failure instanceof FileFailedError, 'the fsync error surfaces as FileFailedError');
    assert.equal(failure.operation, 'fsync');
    assert.match(failure.message, /fsync-failure\.db/);
    const syncsAfterFailure = fileSystem.settings.syncCount;
    assert.throws(
      () => file.append(payload(1, 3)),
      (error) => error === failure,
    );
    assert.throws(
      () => file.read(pointer),
      (error) => error === failure,
    );
    await assert.rejects(file.commit(Buffer.from('h3')), (error) => error === failure);
    assert.equal(fileSystem.settings.syncCount, syncsAfterFailure, 'fsync is never retried');
    await file.close();

    // A failed commit is not acknowledged, but its header may have reached the disk anyway:
    // with one fsync the header was written before the failing fsync.
    const reopened = await BlockFile.open(path);
    const expected = discipline === 'two-fsync' ? ['h1'] : ['h1', 'h2'];
    assert.ok(expected.includes(Buffer.from(reopened.header).toString()));
    await reopened.close();
  });
}

test('bad checksum names the file and offset', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'checksum.db');
  const file = await BlockFile.create(path, Buffer.from('h0'));
  const pointer = file.append(payload(300, 1));
  await file.commit(Buffer.from('h1'));
  await file.close();
  const bytes = readFileSync(path);
  bytes[pointer + 20]! ^= 0x40;
  writeFileSync(path, bytes);
  const reopened = await BlockFile.open(path, { discipline: 'two-fsync', readOnly: true });
  assert.throws(
    () => reopened.read(pointer),
    (error) =>
      error instanceof CorruptionError &&
      error.path === path &&
      error.offset === pointer &&
      error.message.includes(path) &&
      error.message.includes(String(pointer)),
  );
  assert.throws(() => reopened.read(pointer + 1_000_000), CorruptionError);
  await reopened.close();
});

test('file without a valid header is never changed', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'no-header.db');
  const file = await BlockFile.create(path, Buffer.from('only header'));
  file.append(payload(9000, 3));
  await file.close();
  const original = readFileSync(path);
  const damaged = Buffer.from(original);
  damaged[10]! ^= 0xff;
  writeFileSync(path, damaged);
  await assert.rejects(
    BlockFile.open(path),
    (error) => error instanceof CorruptionError && error.path === path,
  );
  assert.ok(readFileSync(path).equals(damaged), 'the file is left as it was');
  writeFileSync(path, Buffer.alloc(3 * BLOCK_SIZE, 0x01));
  await assert.rejects(BlockFile.open(path), CorruptionError);
  await assert.rejects(BlockFile.create(path, Buffer.from('x')), FileExistsError);
  assert.ok(readFileSync(path).equals(Buffer.alloc(3 * BLOCK_SIZE, 0x01)));
});

test('newer format version is rejected', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'version.db');
  const fields = encodeHeader({
    discipline: 'two-fsync',
    generation: 1,
    regionStart: 0,
    regionChecksum: 0,
    payload: Buffer.from('h'),
  });
  fields.writeUInt16BE(FORMAT_VERSION + 1, 4);
  const checksum = crc32c(fields.subarray(HEADER_FIXED_BYTES), crc32c(fields.subarray(0, 32)));
  fields.writeUInt32BE(checksum >>> 0, 32);
  writeFileSync(path, Buffer.concat([Buffer.from([MARKER_HEADER]), fields]));
  await assert.rejects(BlockFile.open(path), UnsupportedFormatError);
});

test('failed creation leaves no file behind', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'created.db');
  const failing = new FsyncFailureFileSystem(nodeFileSystem, { failAfterSyncs: 0 });
  await assert.rejects(
    BlockFile.create(path, Buffer.from('h'), { fileSystem: failing }),
    FileFailedError,
  );
  assert.deepEqual(readdirSync(dir), [], 'neither the file nor its temporary name remains');
  const file = await BlockFile.create(path, Buffer.from('h'));
  await file.close();
  assert.deepEqual(readdirSync(dir), ['created.db']);
});

test('read-only open keeps the torn tail', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'tail.db');
  const file = await BlockFile.create(path, Buffer.from('h'));
  const committedEnd = file.committedEnd;
  await file.close();
  // The preallocated zeros and the bytes after them are all tail.
  const withTail = Buffer.concat([readFileSync(path), Buffer.alloc(100, 7)]);
  writeFileSync(path, withTail);
  const readOnly = await BlockFile.open(path, { readOnly: true });
  await readOnly.close();
  assert.equal(readFileSync(path).length, withTail.length);
  const writable = await BlockFile.open(path);
  await writable.close();
  assert.equal(readFileSync(path).length, committedEnd, 'opening for writing cuts the tail');
});

/** Holds each write's completion back 0-2 ms at random, so that writes finish out of order. */
class ShuffledCompletionFileSystem extends ForwardingFileSystem {
  constructor(
    inner: FileSystem,
    readonly random: () => number,
  ) {
    super(inner);
  }

  protected override wrap(file: DbFile): DbFile {
    return new ShuffledCompletionFile(file, this.random);
  }
}

class ShuffledCompletionFile extends ForwardingDbFile {
  constructor(
    inner: DbFile,
    readonly random: () => number,
  ) {
    super(inner);
  }

  override async write(source: Uint8Array, position: number): Promise<void> {
    const written = this.inner.write(source, position);
    const delayMs = Math.floor(this.random() * 3);
    await new Promise((resolve) => setTimeout(resolve, delayMs));
    await written;
  }
}

/** Bytes that force the append buffer to hand a chunk to the writer before the commit. */
const LARGE_RECORD_BYTES = 1100 * 1024;
/** Bytes of which a few records fill an append buffer, so that buffers get reused. */
const MEDIUM_RECORD_BYTES = 300 * 1024;

for (const discipline of disciplines) {
  test(`writes finishing out of order keep commits (${discipline})`, async (t) => {
    const dir = await tempDir(t);
    let run = 0;
    const operation = fc.oneof(
      { weight: 8, arbitrary: fc.integer({ min: 0, max: 3 * BLOCK_SIZE }) },
      { weight: 1, arbitrary: fc.constant(LARGE_RECORD_BYTES) },
      { weight: 3, arbitrary: fc.constant(MEDIUM_RECORD_BYTES) },
      { weight: 3, arbitrary: fc.constant('commit' as const) },
      { weight: 2, arbitrary: fc.constant('unsynced' as const) },
      { weight: 2, arbitrary: fc.constant('await' as const) },
      { weight: 4, arbitrary: fc.constant('read' as const) },
    );
    await fc.assert(
      fc.asyncProperty(
        fc.array(operation, { minLength: 1, maxLength: 60 }),
        fc.boolean(),
        fc.integer({ min: 1, max: 2 ** 31 - 1 }),
        async (operations, crash, seed) => {
          const random = seededRandom(seed);
          const powerLoss = new PowerLossFileSystem(nodeFileSystem);
          const fileSystem = new ShuffledCompletionFileSystem(powerLoss, random);
          const path = join(dir, `shuffled-${run++}.db`);
          const file = await BlockFile.create(path, Buffer.from('c0'), { discipline, fileSystem });
          // Records appended before each commit call: commit i contains the first counts[i].
          const records: Array<[number, Buffer]> = [];
          const counts = [0];
          const pending: Array<Promise<void>> = [];
          let acknowledged = 0;
          for (const step of operations) {
            if (typeof step === 'number') {
              const bytes = payload(step, records.length);
              records.push([file.append(bytes), bytes]);
            } else if (step === 'commit' || step === 'unsynced') {
              // An unsynced commit (two-fsync handles sync it anyway) is durable only once a
              // later commit syncs, so only a synced one raises what the crash must keep.
              const sync = step === 'commit' || discipline === 'two-fsync';
              const commit = counts.length;
              counts.push(records.length);
              const done = file.commit(Buffer.from(`c${commit}`), { sync }).then(() => {
                if (sync) acknowledged = Math.max(acknowledged, commit);
              });
              // A commit in flight at the crash fails; the recovered state is checked below.
              done.catch(() => undefined);
              pending.push(done);
            } else if (step === 'await') {
              await pending.shift();
            } else if (records.length > 0) {
              const [pointer, bytes] = records[Math.floor(random() * records.length)]!;
              assert.ok(file.read(pointer).equals(bytes), `record at ${pointer} before commit`);
            }
          }
          const called = counts.length - 1;
          if (crash) {
            await powerLoss.crash({ seed });
            await Promise.allSettled(pending);
          } else {
            await Promise.all(pending);
            assert.ok(acknowledged <= called, 'every commit resolves');
          }
          await file.close();

          const reopened = await BlockFile.open(path, { discipline });
          try {
            const commit = Number(Buffer.from(reopened.header).toString().slice(1));
            assert.ok(
              commit >= acknowledged && commit <= called,
              `recovered commit ${commit}, acknowledged ${acknowledged}, called ${called}`,
            );
            for (const [pointer, bytes] of records.slice(0, counts[commit])) {
              assert.ok(reopened.read(pointer).equals(bytes), `record at ${pointer} after reopen`);
            }
          } finally {
            await reopened.close();
          }
        },
      ),
      { numRuns: scaled(25, 250) },
    );
  });
}

test('length checksum matches crc32c', () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 2 ** 32 - 1 }), (length) => {
      const bytes = Buffer.alloc(4);
      bytes.writeUInt32BE(length, 0);
      assert.equal(lengthChecksum(length), crc32c(bytes) >>> 0);
    }),
  );
});

test('damaged marker or byte in a record is reported', async (t) => {
  const dir = await tempDir(t);
  let run = 0;
  await fc.assert(
    fc.asyncProperty(
      // Filler that puts the first block start inside the record's 8-byte prefix, after its
      // length field, right after the prefix, or anywhere. The file's first 46 bytes are the
      // header and the filler's prefix.
      fc.oneof(
        fc.integer({ min: BLOCK_SIZE - 46 - 12, max: BLOCK_SIZE - 46 }),
        fc.constantFrom(BLOCK_SIZE - 46 - 8, BLOCK_SIZE - 46 - 4),
        fc.integer({ min: 0, max: BLOCK_SIZE }),
      ),
      fc.integer({ min: 0, max: 3 * BLOCK_SIZE }),
      fc.nat({ max: 3 }),
      fc.boolean(),
      async (fillerBytes, recordBytes, choice, damageMarker) => {
        const path = join(dir, `damage-${run++}.db`);
        // Two-fsync headers carry no region checksum, so the damaged file opens at its header
        // and the read itself has to find the damage.
        const file = await BlockFile.create(path, Buffer.from('h'), { discipline: 'two-fsync' });
        file.append(payload(fillerBytes, 1));
        const pointer = file.append(payload(recordBytes, 2));
        await file.commit(Buffer.from('h'));
        await file.close();
        const bytes = readFileSync(path);
        const span = physicalLength(pointer, 8 + recordBytes);
        const markers: number[] = [];
        for (let block = BLOCK_SIZE; block < pointer + span; block += BLOCK_SIZE) {
          if (block > pointer) markers.push(block);
        }
        let offset: number;
        if (damageMarker && markers.length > 0) {
          offset = markers[choice % markers.length]!;
          bytes[offset] = MARKER_HEADER;
        } else {
          // A byte of the length, the checksum or the payload, near the start or anywhere.
          const logical = (choice * 997 + recordBytes) % (8 + recordBytes);
          offset = pointer + physicalIndex(pointer, logical);
          bytes[offset]! ^= 0x10;
        }
        writeFileSync(path, bytes);
        const reopened = await BlockFile.open(path, { readOnly: true });
        try {
          assert.equal(reopened.generation, 2, 'the damaged file opens at its last header');
          assert.throws(
            () => reopened.read(pointer),
            (error) => error instanceof CorruptionError && error.offset === pointer,
            `damage at ${offset} of the record at ${pointer}`,
          );
        } finally {
          await reopened.close();
        }
      },
    ),
    { numRuns: scaled(60, 600) },
  );
});

/** Holds back the first write after `closed` is set until `release()`; the rest pass through. */
class GatedWriteFileSystem extends ForwardingFileSystem {
  closed = false;
  readonly #waiting: Array<() => void> = [];

  protected override wrap(file: DbFile): DbFile {
    return new GatedWriteFile(file, this);
  }

  wait(): Promise<void> | undefined {
    if (!this.closed) return undefined;
    return new Promise((resolve) => this.#waiting.push(resolve));
  }

  release(): void {
    this.closed = false;
    for (const resolve of this.#waiting.splice(0)) resolve();
  }
}

class GatedWriteFile extends ForwardingDbFile {
  constructor(
    inner: DbFile,
    readonly gate: GatedWriteFileSystem,
  ) {
    super(inner);
  }

  override async write(source: Uint8Array, position: number): Promise<void> {
    const waiting = this.gate.wait();
    // Only the first write after the gate closes waits, so later ones finish before it.
    this.gate.closed = false;
    if (waiting !== undefined) await waiting;
    await this.inner.write(source, position);
  }
}

test('records stay readable while an early write is held back', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'held-back.db');
  const gate = new GatedWriteFileSystem(nodeFileSystem);
  const file = await BlockFile.create(path, Buffer.from('h0'), { fileSystem: gate });
  gate.closed = true;
  // Enough records to fill several append buffers while the first chunk's write waits.
  const records: Array<[number, Buffer]> = [];
  for (let index = 0; index < 30; index++) {
    const bytes = payload(MEDIUM_RECORD_BYTES + index, index);
    records.push([file.append(bytes), bytes]);
    await new Promise((resolve) => setImmediate(resolve));
    for (const [pointer, expected] of records) {
      assert.ok(file.read(pointer).equals(expected), `record ${pointer} while a write waits`);
    }
  }
  const committed = file.commit(Buffer.from('h1'));
  gate.release();
  await committed;
  await file.close();
  const reopened = await BlockFile.open(path);
  for (const [pointer, expected] of records) {
    assert.ok(reopened.read(pointer).equals(expected), `record ${pointer} after reopen`);
  }
  await reopened.close();
});

test('reads into a node cache equal plain reads', async (t) => {
  const dir = await tempDir(t);
  let run = 0;
  const record = fc.record({
    bytes: fc.oneof(fc.integer({ min: 0, max: 3000 }), fc.integer({ min: 0, max: 3 * BLOCK_SIZE })),
    // How the caller's size hint compares with the record: too small, exact or too large.
    hintDelta: fc.integer({ min: -200, max: 8000 }),
  });
  await fc.assert(
    fc.asyncProperty(
      fc.array(record, { minLength: 1, maxLength: 40 }),
      fc.constantFrom(64 * 1024, 8 * 1024 * 1024),
      fc.boolean(),
      async (records, budget, committed) => {
        const path = join(dir, `into-cache-${run++}.db`);
        const file = await BlockFile.create(path, Buffer.from('h'));
        const cache = new NodeCache(budget);
        try {
          const written = records.map(({ bytes }, index) => {
            const contents = payload(bytes, index);
            return { pointer: file.append(contents), contents };
          });
          if (committed) await file.commit(Buffer.from('h'));
          written.forEach(({ pointer, contents }, index) => {
            const hint = Math.max(0, contents.length + records[index]!.hintDelta);
            const node = file.read(pointer, hint, cache);
            assert.ok(node.equals(contents), `record ${index} read into the cache`);
            cache.set(file.id, pointer, node);
          });
          for (const [index, { pointer, contents }] of written.entries()) {
            const cached = cache.get(file.id, pointer);
            if (cached !== undefined) assert.ok(cached.equals(contents), `cached record ${index}`);
          }
          const stats = cache.stats;
          assert.ok(stats.sizeBytes <= budget, 'within the budget');
          // Payloads, their 8 prefix bytes and markers, plus the slab being filled at most.
          const recordBytes = written.reduce((sum, { contents }) => sum + contents.length + 12, 0);
          const slabBytes = Math.min(64 * 1024, budget / 32);
          assert.ok(
            stats.sizeBytes <= recordBytes + slabBytes,
            `unused read room goes back to the slab (${stats.sizeBytes} for ${recordBytes})`,
          );
        } finally {
          await file.close();
        }
      },
    ),
    { numRuns: scaled(40, 400) },
  );
});

test('a synced header never covers a lost unsynced region', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'unsynced.db');
  const file = await BlockFile.create(path, Buffer.from('c0'), { discipline: 'one-fsync' });
  file.append(payload(100, 1));
  await file.commit(Buffer.from('c1'));
  const lost = file.append(payload(3 * BLOCK_SIZE, 2));
  await file.commit(Buffer.from('c2'), { sync: false });
  assert.equal(Buffer.from(file.header).toString(), 'c1', 'an unsynced header is not durable yet');
  assert.equal(file.stats.unsyncedCommits, 1);
  file.append(payload(100, 3));
  await file.commit(Buffer.from('c3'));
  assert.equal(Buffer.from(file.header).toString(), 'c3');
  await file.close();

  // As if the unsynced region never reached the disk while the later header did.
  const bytes = readFileSync(path);
  bytes[lost + BLOCK_SIZE] = (bytes[lost + BLOCK_SIZE]! + 1) % 256;
  writeFileSync(path, bytes);
  const reopened = await BlockFile.open(path, { readOnly: true });
  try {
    assert.equal(Buffer.from(reopened.header).toString(), 'c1');
  } finally {
    await reopened.close();
  }
});

/** Counts the writes that reach the file, synchronous or not. */
class CountingWriteFileSystem extends ForwardingFileSystem {
  writes = 0;

  protected override wrap(file: DbFile): DbFile {
    return new CountingWriteFile(file, this);
  }
}

class CountingWriteFile extends ForwardingDbFile {
  constructor(
    inner: DbFile,
    readonly counter: CountingWriteFileSystem,
  ) {
    super(inner);
  }

  override write(source: Uint8Array, position: number): Promise<void> {
    this.counter.writes += 1;
    return this.inner.write(source, position);
  }

  override writeSync(source: Uint8Array, position: number): void {
    this.counter.writes += 1;
    this.inner.writeSync(source, position);
  }
}

test('writes per small commit', async (t) => {
  const dir = await tempDir(t);
  const rounds = 20;
  for (const discipline of disciplines) {
    const fileSystem = new CountingWriteFileSystem(nodeFileSystem);
    const path = join(dir, `${discipline}.couch`);
    const file = await BlockFile.create(path, Buffer.from('h0'), { discipline, fileSystem });
    const records: { pointer: number; bytes: Buffer }[] = [];
    for (let round = 1; round <= rounds; round++) {
      const before = fileSystem.writes;
      for (const bytes of [payload(100 + round * 150, round), payload(BLOCK_SIZE + round, round)]) {
        records.push({ pointer: file.append(bytes), bytes });
      }
      await file.commit(Buffer.from(`h${round}`), { sync: round % 3 !== 0 });
      assert.equal(fileSystem.writes - before, discipline === 'one-fsync' ? 1 : 2, discipline);
    }
    await file.close();

    const reopened = await BlockFile.open(path, { fileSystem });
    assert.equal(Buffer.from(reopened.header).toString(), `h${rounds}`);
    for (const { pointer, bytes } of records) assert.deepEqual(reopened.read(pointer), bytes);
    await reopened.close();
  }
});

test('commits write over preallocated zeros', async (t) => {
  const dir = await tempDir(t);
  const step = 16 * BLOCK_SIZE;
  const path = join(dir, 'ahead.couch');
  const file = await BlockFile.create(path, Buffer.from('h0'), { preallocateBytes: step });
  const records: { pointer: number; bytes: Buffer }[] = [];
  let grew = 0;
  let size = statSync(path).size;
  for (let round = 1; round <= 40; round++) {
    const bytes = payload(500 + round * 97, round);
    records.push({ pointer: file.append(bytes), bytes });
    await file.commit(Buffer.from(`h${round}`), { sync: round % 4 !== 0 });
    const now = statSync(path).size;
    assert.ok(now - file.end >= step / 2, 'at least half a step of zeros is left ahead');
    assert.ok(now - file.end <= step * 1.5, 'no more than a step and a half is allocated');
    if (now !== size) grew += 1;
    size = now;
  }
  // Each commit pads to a block, so 40 commits make about 180 KiB: in steps of 64 KiB the file
  // grows about three times, not with every commit.
  assert.ok(grew >= 1, 'the file grew');
  assert.ok(grew <= Math.ceil(file.end / step), `the file grew ${grew} times`);
  assert.equal(file.stats.bytesPreallocated, (grew + 1) * step);
  const zeros = readFileSync(path).subarray(file.end);
  assert.ok(
    zeros.every((byte) => byte === 0),
    'the space ahead is zeros',
  );
  await file.close();

  const readOnly = await BlockFile.open(path, { readOnly: true });
  assert.equal(Buffer.from(readOnly.header).toString(), 'h40');
  await readOnly.close();
  assert.equal(statSync(path).size, size, 'a read-only open allocates nothing and cuts nothing');
  const reopened = await BlockFile.open(path, { preallocateBytes: 0 });
  assert.equal(statSync(path).size, reopened.committedEnd, 'opening for writing cuts the zeros');
  assert.equal(Buffer.from(reopened.header).toString(), 'h40');
  for (const { pointer, bytes } of records) assert.deepEqual(reopened.read(pointer), bytes);
  reopened.append(payload(3000, 99));
  await reopened.commit(Buffer.from('h41'));
  assert.equal(statSync(path).size, reopened.end, 'preallocation 0 writes no zeros');
  assert.equal(reopened.stats.bytesPreallocated, 0);
  await reopened.close();
});

/** A file system whose every zero fill fails with `error`. */
class FailingFillFileSystem extends ForwardingFileSystem {
  constructor(
    inner: FileSystem,
    readonly error: Error,
  ) {
    super(inner);
  }

  protected override wrap(file: DbFile): DbFile {
    const failing = new ForwardingDbFile(file);
    failing.zeroFill = () => {
      throw this.error;
    };
    return failing;
  }
}

test('failed zero fill ends preallocation', async (t) => {
  const dir = await tempDir(t);
  const full = Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' });
  const path = join(dir, 'full.couch');
  const file = await BlockFile.create(path, Buffer.from('h0'), {
    fileSystem: new FailingFillFileSystem(nodeFileSystem, full),
  });
  const pointer = file.append(payload(2000, 1));
  await file.commit(Buffer.from('h1'));
  assert.equal(file.stats.bytesPreallocated, 0);
  assert.equal(statSync(path).size, file.end, 'no zeros after the data');
  assert.deepEqual(file.read(pointer), payload(2000, 1));
  await file.close();

  // An error without a system code is a bug, and it is raised, not absorbed.
  const bug = new Error('zero fill below the data end');
  await assert.rejects(
    BlockFile.create(join(dir, 'bug.couch'), Buffer.from('h0'), {
      fileSystem: new FailingFillFileSystem(nodeFileSystem, bug),
    }),
    (error) => error === bug,
  );
});
