/**
 * `npm run bench -- engine [options]`: the database engine (`LocalDatabase`) against PouchDB's
 * Node adapter (pouchdb-node 9, LevelDB), side by side in one run, and commits per second with
 * many busy database files in one process.
 *
 * Scenarios, each printing its throughput line first:
 * - `single`: documents of about 1 KB written one per request by 32 concurrent writers.
 * - `bulk`: the same number of other documents in `bulkDocs` batches of 1,000, each batch
 *   awaited before the next.
 * - `all_docs`: `allDocs` with `include_docs` over the bulk database.
 * - `changes`: `changes` from 0 over the bulk database.
 * - `compact`: online compaction of the `single` database while `--writers` writers keep
 *   writing new documents (a tenth of `--docs`) until it finishes: documents copied per
 *   second, the file's size before and after, and the writes' rate and p99 latency meanwhile.
 * - `commits`: 1, 10 and 100 database files, each applying one small command per commit as
 *   fast as it can (a commit awaited before the next), for a fixed time.
 * - `log-commits`: the same files, each write going the way a Raft group's leader takes it: a
 *   synced commit that appends one log entry, then an unsynced commit that applies and
 *   discards it. Reports writes/s and this process's CPU per write, user and system.
 *
 * Both sides get their input ready-made: Divan JSON bytes (as the HTTP layer hands them over),
 * PouchDB objects. Ids follow CouchDB's default `sequential` uuid algorithm (a random prefix,
 * then an increasing suffix), so both stores append ids in order. `--random-ids` uses random
 * ids instead. Divan makes every commit durable (fdatasync) before it acknowledges it;
 * pouchdb-node's LevelDB writes are not synced. Before each timed phase the benchmark runs
 * `sync`, so that the dirty pages of the previous phase are written out first: on ext4 in
 * ordered mode, an fdatasync also writes out other files' dirty data, and the side that syncs
 * would otherwise pay for the side that does not.
 *
 * Options: --docs N (100,000), --writers N (32), --batch N (1,000), --doc-bytes N (1,024),
 * --files LIST (1,10,100), --commit-seconds S (5), --random-ids, --dir PATH (a new directory
 * under the OS temp dir), --skip-pouchdb.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import PouchDB from 'pouchdb-node';
import { type DocumentsCommand, documentsCommand, encodeCommand } from '../src/engine/commands.js';
import { DatabaseFile } from '../src/engine/database-file.js';
import { LocalDatabase } from '../src/engine/local-database.js';
import { ChangesFeed } from '../src/engine/read-lists.js';
import { NO_NODE } from '../src/raft/index.js';
import { BenchReport, progress } from './report.js';

/** The parts of pouchdb-node's database API this benchmark calls (the package has no types). */
interface PouchDatabase {
  put(doc: object): Promise<{ ok: boolean; id: string; rev: string }>;
  bulkDocs(docs: object[]): Promise<Array<{ ok?: boolean; error?: string }>>;
  allDocs(options: { include_docs: boolean }): Promise<{ rows: unknown[] }>;
  changes(options: { since: number }): Promise<{ results: unknown[] }>;
  close(): Promise<void>;
}

function openPouch(path: string): PouchDatabase {
  return new PouchDB(path) as unknown as PouchDatabase;
}

interface Options {
  docs: number;
  writers: number;
  batch: number;
  docBytes: number;
  files: number[];
  commitSeconds: number;
  randomIds: boolean;
  skipPouchdb: boolean;
  dir: string;
}

/** Hex digits of the random prefix of a CouchDB `sequential` uuid; the suffix has 6. */
const UUID_PREFIX_DIGITS = 26;
const UUID_SUFFIX_DIGITS = 6;
const UUID_BYTES = 16;
const PERCENTILE_P50 = 0.5;
const PERCENTILE_P99 = 0.99;
const MS_PER_SECOND = 1000;
/** Divisor of `--docs` that gives the most documents written during compaction. */
const WRITES_DURING_COMPACTION_SHARE = 10;

interface Workload {
  ids: string[];
  bytes: Buffer[];
  objects: Array<Record<string, unknown>>;
}

export async function main(args: string[]): Promise<void> {
  const options = parseOptions(args);
  const report = new BenchReport('engine');
  progress(`${options.docs} documents of about ${options.docBytes} bytes, in ${options.dir}`);
  const singleDocs = workload(options, 0);
  const bulkDocs = workload(options, options.docs);

  const divanSingle = await singleDivan(
    join(options.dir, 'divan-single.couch'),
    singleDocs,
    options,
  );
  const pouchSingle = options.skipPouchdb
    ? null
    : await singlePouch(join(options.dir, 'pouch-single'), singleDocs, options);
  compare(
    report,
    'single',
    'docs/s',
    'docs/s',
    'higher-is-better',
    divanSingle.docsPerSecond,
    pouchSingle?.docsPerSecond,
  );
  compare(
    report,
    'single',
    'p50 latency',
    'ms',
    'lower-is-better',
    divanSingle.p50Ms,
    pouchSingle?.p50Ms,
  );
  compare(
    report,
    'single',
    'p99 latency',
    'ms',
    'lower-is-better',
    divanSingle.p99Ms,
    pouchSingle?.p99Ms,
  );
  report.measure('single', 'docs per commit', 'docs', divanSingle.docsPerCommit);

  const compaction = await compactDivan(
    join(options.dir, 'divan-single.couch'),
    workload(
      { ...options, docs: Math.ceil(options.docs / WRITES_DURING_COMPACTION_SHARE) },
      2 * options.docs,
    ),
    options,
  );
  report.measure('compact', 'docs copied/s', 'docs/s', compaction.docsPerSecond);
  report.measure('compact', 'size before', 'bytes', compaction.sizeBefore);
  report.measure('compact', 'size after', 'bytes', compaction.sizeAfter);
  report.measure('compact', 'writes during', 'docs/s', compaction.writesPerSecond);
  report.measure('compact', 'p99 write latency during', 'ms', compaction.p99Ms);

  const divanPath = join(options.dir, 'divan-bulk.couch');
  const pouchPath = join(options.dir, 'pouch-bulk');
  const divanBulk = await bulkDivan(divanPath, bulkDocs, options);
  const pouchBulk = options.skipPouchdb ? null : await bulkPouch(pouchPath, bulkDocs, options);
  compare(report, 'bulk', 'docs/s', 'docs/s', 'higher-is-better', divanBulk, pouchBulk);
  compare(
    report,
    'bulk',
    'disk size',
    'bytes',
    'lower-is-better',
    statSync(divanPath).size,
    options.skipPouchdb ? undefined : directoryBytes(pouchPath),
  );

  const divanReads = await readsDivan(divanPath, options);
  const pouchReads = options.skipPouchdb ? null : await readsPouch(pouchPath, options);
  compare(
    report,
    'all_docs',
    'docs/s',
    'docs/s',
    'higher-is-better',
    divanReads.allDocs,
    pouchReads?.allDocs,
  );
  compare(
    report,
    'changes',
    'docs/s',
    'docs/s',
    'higher-is-better',
    divanReads.changes,
    pouchReads?.changes,
  );

  const commitRates: Record<string, number> = {};
  for (const files of options.files) {
    const rate = await commitsWithFiles(join(options.dir, `files-${files}`), files, options);
    commitRates[files] = rate.total;
    report.measure('commits', `${files} files total commits/s`, 'commits/s', rate.total);
    report.measure('commits', `${files} files commits/s per file`, 'commits/s', rate.total / files);
  }
  const logCommits: Record<string, BusyFilesRun> = {};
  for (const files of options.files) {
    const rate = await logCommitsWithFiles(join(options.dir, `log-files-${files}`), files, options);
    logCommits[files] = rate;
    report.measure('log-commits', `${files} files writes/s`, 'writes/s', rate.writesPerSecond);
    report.measure('log-commits', `${files} files user CPU per write`, 'µs', rate.userMicros);
    report.measure('log-commits', `${files} files system CPU per write`, 'µs', rate.systemMicros);
  }
  report.save({ options: { ...options, dir: undefined }, commitRates, logCommits });
  rmSync(options.dir, { recursive: true, force: true });
}

function compare(
  report: BenchReport,
  scenario: string,
  metric: string,
  unit: string,
  direction: 'higher-is-better' | 'lower-is-better',
  divan: number,
  pouch: number | null | undefined,
): void {
  if (pouch === null || pouch === undefined) report.measure(scenario, metric, unit, divan);
  else report.compare(scenario, metric, unit, direction, divan, 'pouchdb', pouch);
}

/** Documents `first..first + docs` with ids in CouchDB's `sequential` style, or random. */
function workload(options: Options, first: number): Workload {
  const prefix = randomBytes(UUID_BYTES).toString('hex').slice(0, UUID_PREFIX_DIGITS);
  const ids: string[] = [];
  const bytes: Buffer[] = [];
  const objects: Array<Record<string, unknown>> = [];
  const filler = 'lorem ipsum dolor sit amet '.repeat(Math.ceil(options.docBytes / 27));
  for (let i = 0; i < options.docs; i++) {
    const id = options.randomIds
      ? randomBytes(UUID_BYTES).toString('hex')
      : prefix + i.toString(16).padStart(UUID_SUFFIX_DIGITS, '0');
    const object: Record<string, unknown> = {
      _id: id,
      type: 'bench',
      n: first + i,
      tags: ['a', 'b'],
    };
    const base = Buffer.byteLength(JSON.stringify(object));
    object.text = filler.slice(0, Math.max(0, options.docBytes - base - 10));
    ids.push(id);
    objects.push(object);
    bytes.push(Buffer.from(JSON.stringify(object)));
  }
  return { ids, bytes, objects };
}

/** Writes every dirty page of the machine out, so a phase does not pay for the last one. */
function flushDirtyPages(): void {
  execFileSync('sync');
}

function percentile(sorted: number[], fraction: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * fraction))]!;
}

/** Runs `writers` loops that each take the next document and await `write` for it. */
async function concurrentWrites(
  count: number,
  writers: number,
  write: (index: number) => Promise<unknown>,
) {
  const latencies = new Float64Array(count);
  let next = 0;
  flushDirtyPages();
  const start = performance.now();
  await Promise.all(
    Array.from({ length: writers }, async () => {
      while (next < count) {
        const index = next++;
        const began = performance.now();
        await write(index);
        latencies[index] = performance.now() - began;
      }
    }),
  );
  const elapsedMs = performance.now() - start;
  const sorted = Array.from(latencies).sort((a, b) => a - b);
  return {
    docsPerSecond: (count / elapsedMs) * MS_PER_SECOND,
    p50Ms: percentile(sorted, PERCENTILE_P50),
    p99Ms: percentile(sorted, PERCENTILE_P99),
  };
}

async function singleDivan(path: string, docs: Workload, options: Options) {
  progress('divan: single writes');
  const db = await LocalDatabase.create(path, { name: 'single' });
  const commitsBefore = db.file.fileStats.commits;
  const result = await concurrentWrites(options.docs, options.writers, (i) =>
    db.put(docs.bytes[i]!),
  );
  const commits = db.file.fileStats.commits - commitsBefore;
  await db.close();
  return { ...result, docsPerCommit: options.docs / commits };
}

/**
 * Compacts the database at `path` while `options.writers` writers write `docs` until the
 * compaction finishes (or the documents run out).
 */
async function compactDivan(path: string, docs: Workload, options: Options) {
  progress('divan: compaction with writes');
  const db = await LocalDatabase.open(path);
  const copied = db.read((snapshot) => snapshot.info().docCount);
  flushDirtyPages();
  const start = performance.now();
  let finished = false;
  const compaction = db.compact().finally(() => {
    finished = true;
  });
  const latencies: number[] = [];
  let next = 0;
  let writesEnd = start;
  await Promise.all(
    Array.from({ length: options.writers }, async () => {
      while (!finished && next < docs.bytes.length) {
        const index = next++;
        const began = performance.now();
        await db.put(docs.bytes[index]!);
        writesEnd = performance.now();
        latencies.push(writesEnd - began);
      }
    }),
  );
  const result = await compaction;
  const elapsedMs = performance.now() - start;
  await db.close();
  latencies.sort((a, b) => a - b);
  return {
    docsPerSecond: (copied / elapsedMs) * MS_PER_SECOND,
    sizeBefore: result.sizeBefore,
    sizeAfter: result.sizeAfter,
    writesPerSecond: (latencies.length / Math.max(1, writesEnd - start)) * MS_PER_SECOND,
    p99Ms: latencies.length === 0 ? 0 : percentile(latencies, PERCENTILE_P99),
  };
}

async function singlePouch(path: string, docs: Workload, options: Options) {
  progress('pouchdb: single writes');
  const db = openPouch(path);
  const result = await concurrentWrites(options.docs, options.writers, (i) =>
    db.put(docs.objects[i]!),
  );
  await db.close();
  return result;
}

async function bulkDivan(path: string, docs: Workload, options: Options): Promise<number> {
  progress('divan: bulk writes');
  const db = await LocalDatabase.create(path, { name: 'bulk' });
  flushDirtyPages();
  const start = performance.now();
  for (let first = 0; first < options.docs; first += options.batch) {
    const results = await db.bulkDocs(docs.bytes.slice(first, first + options.batch));
    if (results.some((result) => !result.ok)) throw new Error('divan: a bulk write failed');
  }
  const elapsedMs = performance.now() - start;
  await db.close();
  return (options.docs / elapsedMs) * MS_PER_SECOND;
}

async function bulkPouch(path: string, docs: Workload, options: Options): Promise<number> {
  progress('pouchdb: bulk writes');
  const db = openPouch(path);
  flushDirtyPages();
  const start = performance.now();
  for (let first = 0; first < options.docs; first += options.batch) {
    const results = await db.bulkDocs(docs.objects.slice(first, first + options.batch));
    if (results.some((result) => result.error !== undefined))
      throw new Error('pouchdb: a bulk write failed');
  }
  const elapsedMs = performance.now() - start;
  await db.close();
  return (options.docs / elapsedMs) * MS_PER_SECOND;
}

async function readsDivan(path: string, options: Options) {
  progress('divan: all_docs and changes');
  const db = await LocalDatabase.open(path);
  flushDirtyPages();
  let start = performance.now();
  const rows = db.allDocs({ includeDocs: true }).rows.length;
  const allDocs = (rows / (performance.now() - start)) * MS_PER_SECOND;
  start = performance.now();
  const changed = db.read((snapshot) => {
    let count = 0;
    for (const _row of new ChangesFeed(snapshot, { since: 0 })) count += 1;
    return count;
  });
  const changes = (changed / (performance.now() - start)) * MS_PER_SECOND;
  await db.close();
  if (rows !== options.docs || changed !== options.docs)
    throw new Error('divan: reads missed documents');
  return { allDocs, changes };
}

async function readsPouch(path: string, options: Options) {
  progress('pouchdb: all_docs and changes');
  const db = openPouch(path);
  flushDirtyPages();
  let start = performance.now();
  const rows = (await db.allDocs({ include_docs: true })).rows.length;
  const allDocs = (rows / (performance.now() - start)) * MS_PER_SECOND;
  start = performance.now();
  const changed = (await db.changes({ since: 0 })).results.length;
  const changes = (changed / (performance.now() - start)) * MS_PER_SECOND;
  await db.close();
  if (rows !== options.docs || changed !== options.docs)
    throw new Error('pouchdb: reads missed documents');
  return { allDocs, changes };
}

/** Measures total commits/s while each of `count` files commits one small command at a time. */
async function commitsWithFiles(dir: string, count: number, options: Options) {
  progress(`divan: commits with ${count} busy files for ${options.commitSeconds} s`);
  const run = await writeToBusyFiles(dir, count, options, async (file, i) => {
    const index = file.applied.index + 1;
    const command = smallDocumentCommand(`bench-${i}-${index}`, `doc-${index}`);
    await file.stage({ apply: [{ index, term: 0, command }] }).durable;
  });
  return { total: run.writesPerSecond };
}

interface BusyFilesRun {
  readonly writesPerSecond: number;
  /** This process's user CPU per write, in µs. */
  readonly userMicros: number;
  /** This process's system CPU per write, in µs. */
  readonly systemMicros: number;
}

/**
 * Measures writes of one small document at a time to each of `count` files, each write as a
 * Raft leader stages it: one synced commit appending the entry with the hard state, then one
 * unsynced commit applying and discarding it. Nothing else runs in this process, so its CPU
 * time is the engine's.
 */
function logCommitsWithFiles(dir: string, count: number, options: Options): Promise<BusyFilesRun> {
  progress(`divan: log commits with ${count} busy files for ${options.commitSeconds} s`);
  return writeToBusyFiles(dir, count, options, async (file, i) => {
    const index = file.applied.index + 1;
    const command = smallDocumentCommand(`bench-${i}-${index}`, `doc-${index}`);
    const entry = { index, term: 1, type: 'normal' as const, data: encodeCommand(command) };
    const hardState = { term: 1, vote: NO_NODE, commit: index - 1 };
    await file.stage({ append: [entry], hardState, sync: true }).durable;
    await file.stage({ apply: [{ index, term: 1 }], discardUpTo: index, sync: false }).durable;
  });
}

const SMALL_DOCUMENT = Buffer.from(
  '{"value":"a small document of about a hundred bytes, written by every commit"}',
);

/** Returns the command that writes the small test document `id` as a new document. */
function smallDocumentCommand(requestId: string, id: string): DocumentsCommand {
  return documentsCommand(requestId, {
    newEdits: true,
    docs: [
      {
        id,
        revisions: { start: 0, ids: [] },
        deleted: false,
        body: SMALL_DOCUMENT,
        attachments: null,
      },
    ],
  });
}

/**
 * Creates `count` database files in `dir` and calls `writeOne` on each file, one write awaited
 * before the next, for `--commit-seconds`. Removes the files and returns writes/s with this
 * process's CPU per write.
 */
async function writeToBusyFiles(
  dir: string,
  count: number,
  options: Options,
  writeOne: (file: DatabaseFile, i: number) => Promise<void>,
): Promise<BusyFilesRun> {
  mkdirSync(dir, { recursive: true });
  const files = await Promise.all(
    Array.from({ length: count }, (_, i) =>
      DatabaseFile.create(join(dir, `db-${i}.couch`), { name: `db-${i}` }),
    ),
  );
  flushDirtyPages();
  const deadline = performance.now() + options.commitSeconds * MS_PER_SECOND;
  let writes = 0;
  const start = performance.now();
  const cpuBefore = process.cpuUsage();
  await Promise.all(
    files.map(async (file, i) => {
      while (performance.now() < deadline) {
        await writeOne(file, i);
        writes += 1;
      }
    }),
  );
  const cpu = process.cpuUsage(cpuBefore);
  const elapsedMs = performance.now() - start;
  await Promise.all(files.map((file) => file.close()));
  rmSync(dir, { recursive: true, force: true });
  return {
    writesPerSecond: (writes / elapsedMs) * MS_PER_SECOND,
    userMicros: cpu.user / writes,
    systemMicros: cpu.system / writes,
  };
}

function directoryBytes(path: string): number {
  let total = 0;
  for (const name of readdirSync(path)) total += statSync(join(path, name)).size;
  return total;
}

function parseOptions(args: string[]): Options {
  const options: Options = {
    docs: 100_000,
    writers: 32,
    batch: 1000,
    docBytes: 1024,
    files: [1, 10, 100],
    commitSeconds: 5,
    randomIds: false,
    skipPouchdb: false,
    dir: '',
  };
  for (let i = 0; i < args.length; i++) {
    const name = args[i]!;
    if (name === '--random-ids') {
      options.randomIds = true;
      continue;
    }
    if (name === '--skip-pouchdb') {
      options.skipPouchdb = true;
      continue;
    }
    const value = args[++i];
    if (value === undefined) throw new Error(`option ${name} needs a value`);
    if (name === '--docs') options.docs = positiveInteger(name, value);
    else if (name === '--writers') options.writers = positiveInteger(name, value);
    else if (name === '--batch') options.batch = positiveInteger(name, value);
    else if (name === '--doc-bytes') options.docBytes = positiveInteger(name, value);
    else if (name === '--commit-seconds') options.commitSeconds = positiveInteger(name, value);
    else if (name === '--files')
      options.files = value.split(',').map((part) => positiveInteger(name, part));
    else if (name === '--dir') options.dir = value;
    else throw new Error(`unknown option ${name}; see the header of bench/engine.ts`);
  }
  options.dir ||= mkdtempSync(join(tmpdir(), 'divan-bench-'));
  return options;
}

function positiveInteger(name: string, value: string): number {
  const number = Number(value);
  if (!Number.isSafeInteger(number) || number <= 0) {
    throw new Error(`${name}: expected a positive integer, got "${value}"`);
  }
  return number;
}
