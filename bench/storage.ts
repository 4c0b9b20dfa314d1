/**
 * `npm run bench -- storage [options]`: the block file and B+tree against classic-level
 * (LevelDB) with the same durability, side by side in one run.
 *
 * Scenarios, each printing its throughput line first:
 * - `inserts`: random 16-byte keys with 100-byte values, one synced batch per 1,000, each
 *   awaited before the next. Divan's node cache is capped at 10% of the data size, LevelDB
 *   keeps its defaults.
 * - `inserts pipelined`: the same, but each side builds and issues the next batch while the
 *   previous one is in flight, and awaits that one before going on: at most two batches in
 *   flight, still one sync per batch, as a writer with group commit does.
 * - `lookups`: random point lookups of existing keys after reopening both stores, with
 *   Divan's node cache and LevelDB's block cache both capped at 10% of the data size. Each
 *   store's files are read once just before its lookups, so both start with their files in
 *   the page cache whatever the machine evicted since they were written.
 * - `scan`: a full ordered scan.
 * - `commits`: many small commits, once per commit discipline, to choose the default.
 *
 * Options: --entries N (1,000,000), --batch N (1,000), --lookups N (100,000),
 * --node-size BYTES (leaves and interior nodes), --leaf-size BYTES, --interior-size BYTES
 * (the tree's defaults), --discipline one-fsync|two-fsync (the default),
 * --commits N (2,000), --cache-fraction F (0.1: Divan's node cache and LevelDB's block cache
 * as a fraction of the user data size), --dir PATH (a new directory under the OS temp dir).
 */
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  rmSync,
  statSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClassicLevel } from 'classic-level';
import { BlockFile, type CommitDiscipline, DEFAULT_DISCIPLINE } from '../src/storage/block-file.js';
import {
  BTree,
  type BTreeOptions,
  DEFAULT_LEAF_SIZE_BYTES,
  DEFAULT_NODE_SIZE_BYTES,
  decodeRoot,
  encodeRoot,
} from '../src/storage/btree.js';
import { bytesKeys, bytesValues, type TreeCodec } from '../src/storage/codecs.js';
import { NodeCache } from '../src/storage/node-cache.js';
import { BenchReport, progress } from './report.js';

const KEY_BYTES = 16;
const VALUE_BYTES = 100;
const ENTRY_BYTES = KEY_BYTES + VALUE_BYTES;
const SCAN_BATCH = 1000;
const SMALL_RECORD_BYTES = 100;
/** Bytes read at a time when reading files into the page cache. */
const READ_CHUNK_BYTES = 1 << 20;

interface Options {
  entries: number;
  batch: number;
  lookups: number;
  leafSizeBytes: number;
  interiorSizeBytes: number;
  discipline: CommitDiscipline;
  commits: number;
  cacheFraction: number;
  dir: string;
}

const codec: TreeCodec<Buffer, Buffer> = { key: bytesKeys, value: bytesValues };

export async function main(args: string[]): Promise<void> {
  const options = parseOptions(args);
  const report = new BenchReport('storage');
  const keys = randomBytes(options.entries * KEY_BYTES);
  const values = randomBytes(options.entries * VALUE_BYTES);
  const userBytes = options.entries * ENTRY_BYTES;
  const cacheBytes = Math.floor(userBytes * options.cacheFraction);
  progress(`${options.entries} entries, ${userBytes} bytes of user data, in ${options.dir}`);

  const divanPath = join(options.dir, 'divan.db');
  const levelPath = join(options.dir, 'leveldb');
  const divanInsert = await insertDivan(divanPath, keys, values, cacheBytes, options);
  const levelInsert = await insertLevel(levelPath, keys, values, options);
  report.compare(
    'inserts',
    'ops/s',
    'entries/s',
    'higher-is-better',
    divanInsert.opsPerSecond,
    'leveldb',
    levelInsert.opsPerSecond,
  );
  report.compare(
    'inserts',
    'file size',
    'bytes',
    'lower-is-better',
    divanInsert.fileBytes,
    'leveldb',
    levelInsert.fileBytes,
  );
  report.compare(
    'inserts',
    'bytes written per user byte',
    'ratio',
    'lower-is-better',
    divanInsert.writtenBytes / userBytes,
    'leveldb',
    levelInsert.writtenBytes / userBytes,
  );
  const pipelinedPath = join(options.dir, 'pipelined.db');
  const pipelined = await insertDivan(pipelinedPath, keys, values, cacheBytes, options, true);
  rmSync(pipelinedPath);
  const levelPipelinedPath = join(options.dir, 'leveldb-pipelined');
  const levelPipelined = await insertLevel(levelPipelinedPath, keys, values, options, true);
  rmSync(levelPipelinedPath, { recursive: true, force: true });
  report.compare(
    'inserts',
    'pipelined ops/s',
    'entries/s',
    'higher-is-better',
    pipelined.opsPerSecond,
    'leveldb',
    levelPipelined.opsPerSecond,
  );

  const sample = lookupSample(options);
  const divanLookup = await lookupDivan(divanPath, keys, values, sample, cacheBytes, options);
  const levelLookup = await lookupLevel(levelPath, keys, values, sample, cacheBytes);
  report.compare(
    'lookups',
    'ops/s',
    'lookups/s',
    'higher-is-better',
    divanLookup.opsPerSecond,
    'leveldb',
    levelLookup.opsPerSecond,
  );
  report.measure('lookups', 'node cache hit rate', 'fraction', divanLookup.hitRate);
  report.measure('lookups', 'node cache interior bytes', 'bytes', divanLookup.interiorBytes);

  const divanScan = await scanDivan(divanPath, options);
  const levelScan = await scanLevel(levelPath);
  report.compare(
    'scan',
    'ops/s',
    'entries/s',
    'higher-is-better',
    divanScan.opsPerSecond,
    'leveldb',
    levelScan.opsPerSecond,
  );
  assertEqual(divanScan.count, options.entries, 'divan scan count');
  assertEqual(levelScan.count, options.entries, 'leveldb scan count');

  const oneFsync = await smallCommits(join(options.dir, 'commits-one.db'), 'one-fsync', options);
  const twoFsync = await smallCommits(join(options.dir, 'commits-two.db'), 'two-fsync', options);
  report.compare(
    'commits',
    'ops/s',
    'commits/s',
    'higher-is-better',
    oneFsync,
    'two-fsync',
    twoFsync,
  );

  report.save({ options: { ...options, dir: undefined }, divanFileStats: divanInsert.stats });
  rmSync(options.dir, { recursive: true, force: true });
}

function parseOptions(args: string[]): Options {
  const options: Options = {
    entries: 1_000_000,
    batch: 1000,
    lookups: 100_000,
    leafSizeBytes: DEFAULT_LEAF_SIZE_BYTES,
    interiorSizeBytes: DEFAULT_NODE_SIZE_BYTES,
    discipline: DEFAULT_DISCIPLINE,
    commits: 2000,
    cacheFraction: 0.1,
    dir: '',
  };
  for (let i = 0; i < args.length; i += 2) {
    const name = args[i];
    const value = args[i + 1];
    if (value === undefined) throw new Error(`option ${name} needs a value`);
    if (name === '--entries') options.entries = positiveInteger(name, value);
    else if (name === '--batch') options.batch = positiveInteger(name, value);
    else if (name === '--lookups') options.lookups = positiveInteger(name, value);
    else if (name === '--node-size') {
      options.leafSizeBytes = positiveInteger(name, value);
      options.interiorSizeBytes = options.leafSizeBytes;
    } else if (name === '--leaf-size') options.leafSizeBytes = positiveInteger(name, value);
    else if (name === '--interior-size') options.interiorSizeBytes = positiveInteger(name, value);
    else if (name === '--commits') options.commits = positiveInteger(name, value);
    else if (name === '--dir') options.dir = value;
    else if (name === '--cache-fraction') options.cacheFraction = positiveNumber(name, value);
    else if (name === '--discipline' && (value === 'one-fsync' || value === 'two-fsync')) {
      options.discipline = value;
    } else throw new Error(`unknown option ${name} ${value}; see the header of bench/storage.ts`);
  }
  options.dir ||= mkdtempSync(join(tmpdir(), 'divan-bench-'));
  return options;
}

function treeOptions(options: Options, cache: NodeCache): BTreeOptions {
  return {
    leafSizeBytes: options.leafSizeBytes,
    interiorSizeBytes: options.interiorSizeBytes,
    cache,
  };
}

function positiveNumber(name: string, value: string): number {
  const number = Number(value);
  if (!(number > 0)) throw new Error(`${name}: expected a positive number, got "${value}"`);
  return number;
}

function positiveInteger(name: string, value: string): number {
  const number = Number(value);
  if (!Number.isSafeInteger(number) || number <= 0) {
    throw new Error(`${name}: expected a positive integer, got "${value}"`);
  }
  return number;
}

function key(keys: Buffer, index: number): Buffer {
  return keys.subarray(index * KEY_BYTES, (index + 1) * KEY_BYTES);
}

function value(values: Buffer, index: number): Buffer {
  return values.subarray(index * VALUE_BYTES, (index + 1) * VALUE_BYTES);
}

/** Bytes this process passed to write system calls so far (Linux `wchar`). */
function writtenBytes(): number {
  const match = /wchar: (\d+)/.exec(readFileSync('/proc/self/io', 'utf8'));
  return match === null ? Number.NaN : Number(match[1]);
}

function seconds(start: bigint): number {
  return Number(process.hrtime.bigint() - start) / 1e9;
}

async function insertDivan(
  path: string,
  keys: Buffer,
  values: Buffer,
  cacheBytes: number,
  options: Options,
  pipelined = false,
) {
  progress(`divan: inserting${pipelined ? ' (pipelined)' : ''}, node cache ${cacheBytes} bytes`);
  const cache = new NodeCache(cacheBytes);
  const file = await BlockFile.create(path, encodeRoot(null), { discipline: options.discipline });
  let tree = BTree.open(file, codec, null, treeOptions(options, cache));
  const writtenBefore = writtenBytes();
  const start = process.hrtime.bigint();
  let inFlight: Promise<void> = Promise.resolve();
  for (let first = 0; first < options.entries; first += options.batch) {
    const last = Math.min(options.entries, first + options.batch);
    const insert: Array<[Buffer, Buffer]> = [];
    for (let i = first; i < last; i++) insert.push([key(keys, i), value(values, i)]);
    tree = tree.modify({ insert });
    // Pipelined, the next batch is built while this commit's fsync runs, as group commit
    // does. There is still one commit (one fsync with the default discipline) per batch.
    const commit = file.commit(encodeRoot(tree.root));
    if (!pipelined) await commit;
    await inFlight;
    inFlight = commit;
  }
  await inFlight;
  const elapsed = seconds(start);
  await file.close();
  cache.dropFile(file.id);
  return {
    opsPerSecond: options.entries / elapsed,
    fileBytes: statSync(path).size,
    writtenBytes: writtenBytes() - writtenBefore,
    stats: { ...file.stats, treeBytes: tree.root?.sizeBytes },
  };
}

async function insertLevel(
  path: string,
  keys: Buffer,
  values: Buffer,
  options: Options,
  pipelined = false,
) {
  progress(`leveldb: inserting${pipelined ? ' (pipelined)' : ''}`);
  const db = new ClassicLevel<Buffer, Buffer>(path, {
    keyEncoding: 'buffer',
    valueEncoding: 'buffer',
  });
  await db.open();
  const writtenBefore = writtenBytes();
  const start = process.hrtime.bigint();
  let inFlight: Promise<void> = Promise.resolve();
  for (let first = 0; first < options.entries; first += options.batch) {
    const last = Math.min(options.entries, first + options.batch);
    const batch: Array<{ type: 'put'; key: Buffer; value: Buffer }> = [];
    for (let i = first; i < last; i++)
      batch.push({ type: 'put', key: key(keys, i), value: value(values, i) });
    // Pipelined, this batch is issued while the previous one is in flight, like Divan's
    // pipelined loop; LevelDB still syncs each batch, since the previous one is awaited
    // before the next is issued.
    const written = db.batch(batch, { sync: true });
    if (!pipelined) await written;
    await inFlight;
    inFlight = written;
  }
  await inFlight;
  const elapsed = seconds(start);
  await db.close();
  return {
    opsPerSecond: options.entries / elapsed,
    fileBytes: directoryBytes(path),
    writtenBytes: writtenBytes() - writtenBefore,
  };
}

/**
 * Reads every byte of `paths`, so the page cache holds them. This machine pages out file
 * pages not used for about a minute, which would otherwise charge the store written first
 * with disk reads that the other one does not pay.
 */
function readFiles(paths: string[]): void {
  const chunk = Buffer.allocUnsafe(READ_CHUNK_BYTES);
  for (const path of paths) {
    const fd = openSync(path, 'r');
    try {
      let position = 0;
      for (;;) {
        const read = readSync(fd, chunk, 0, chunk.length, position);
        if (read === 0) break;
        position += read;
      }
    } finally {
      closeSync(fd);
    }
  }
}

function directoryBytes(path: string): number {
  let total = 0;
  for (const name of readdirSync(path)) total += statSync(join(path, name)).size;
  return total;
}

function lookupSample(options: Options): number[] {
  const indexes = new Uint32Array(options.lookups);
  const random = randomBytes(options.lookups * 4);
  for (let i = 0; i < options.lookups; i++)
    indexes[i] = random.readUInt32LE(i * 4) % options.entries;
  return [...indexes];
}

async function lookupDivan(
  path: string,
  keys: Buffer,
  values: Buffer,
  sample: number[],
  cacheBytes: number,
  options: Options,
) {
  progress(`divan: ${sample.length} lookups, node cache ${cacheBytes} bytes`);
  readFiles([path]);
  const cache = new NodeCache(cacheBytes);
  const file = await BlockFile.open(path, { readOnly: true });
  const tree = BTree.open(file, codec, decodeRoot(file.header), treeOptions(options, cache));
  const start = process.hrtime.bigint();
  for (const index of sample) {
    const found = tree.get(key(keys, index));
    if (found === undefined || !found.equals(value(values, index))) {
      throw new Error(`divan lookup of entry ${index} returned a wrong value`);
    }
  }
  const elapsed = seconds(start);
  const { hitRate, interiorBytes } = cache.stats;
  await file.close();
  return { opsPerSecond: sample.length / elapsed, hitRate, interiorBytes };
}

async function lookupLevel(
  path: string,
  keys: Buffer,
  values: Buffer,
  sample: number[],
  cacheBytes: number,
) {
  progress(`leveldb: ${sample.length} lookups (getSync), block cache ${cacheBytes} bytes`);
  readFiles(readdirSync(path).map((name) => join(path, name)));
  const db = new ClassicLevel<Buffer, Buffer>(path, {
    keyEncoding: 'buffer',
    valueEncoding: 'buffer',
    cacheSize: cacheBytes,
  });
  await db.open();
  const start = process.hrtime.bigint();
  for (const index of sample) {
    const found = db.getSync(key(keys, index));
    if (found === undefined || !found.equals(value(values, index))) {
      throw new Error(`leveldb lookup of entry ${index} returned a wrong value`);
    }
  }
  const elapsed = seconds(start);
  await db.close();
  return { opsPerSecond: sample.length / elapsed };
}

async function scanDivan(path: string, options: Options) {
  progress('divan: full scan');
  const cache = new NodeCache(0);
  const file = await BlockFile.open(path, { readOnly: true });
  const tree = BTree.open(file, codec, decodeRoot(file.header), treeOptions(options, cache));
  let count = 0;
  let previous: Buffer | undefined;
  const start = process.hrtime.bigint();
  tree.fold((entryKey) => {
    if (previous !== undefined && Buffer.compare(previous, entryKey) >= 0)
      throw new Error('scan out of order');
    previous = entryKey;
    count += 1;
  });
  const elapsed = seconds(start);
  await file.close();
  return { opsPerSecond: count / elapsed, count };
}

async function scanLevel(path: string) {
  progress('leveldb: full scan (nextv batches)');
  const db = new ClassicLevel<Buffer, Buffer>(path, {
    keyEncoding: 'buffer',
    valueEncoding: 'buffer',
  });
  await db.open();
  let count = 0;
  const start = process.hrtime.bigint();
  const iterator = db.iterator();
  for (;;) {
    const entries = await iterator.nextv(SCAN_BATCH);
    if (entries.length === 0) break;
    count += entries.length;
  }
  await iterator.close();
  const elapsed = seconds(start);
  await db.close();
  return { opsPerSecond: count / elapsed, count };
}

/** Commits one small record at a time and returns commits per second. */
async function smallCommits(
  path: string,
  discipline: CommitDiscipline,
  options: Options,
): Promise<number> {
  progress(`divan: ${options.commits} small commits, ${discipline}`);
  const file = await BlockFile.create(path, Buffer.alloc(0), { discipline });
  const record = randomBytes(SMALL_RECORD_BYTES);
  const header = Buffer.alloc(SMALL_RECORD_BYTES);
  const start = process.hrtime.bigint();
  for (let i = 0; i < options.commits; i++) {
    file.append(record);
    await file.commit(header);
  }
  const elapsed = seconds(start);
  await file.close();
  return options.commits / elapsed;
}

function assertEqual(actual: number, expected: number, what: string): void {
  if (actual !== expected) throw new Error(`${what}: expected ${expected}, got ${actual}`);
}
