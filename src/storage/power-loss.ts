/**
 * Power-loss simulation for append-only files, in process and across processes.
 *
 * Both layers record durability events: a file's synced length and synced data end at each
 * `datasync()`, file creation, renames, and directory syncs. A simulated crash then undoes what
 * was not durable. Renames and creations not followed by a sync of their directory are undone.
 * Each file loses the data written after its synced data end, or is torn. A torn file keeps a
 * random prefix of that data, up to its last non-zero byte, so the cut usually falls mid-block,
 * and sometimes garbage bytes end the kept part. What follows the kept data becomes zeros up to the synced length, as the zeros
 * that `zeroFill` wrote there were (preallocated space). An unsynced growth of the file is cut
 * off, or at random kept as zeros, as when a new length reached the disk and the data did not.
 *
 * - `PowerLossFileSystem` keeps the record in memory; `crash()` applies it, and files opened
 *   before the crash fail from then on, as after a reboot.
 * - `PowerLossJournalFileSystem` appends each event to a journal file in the file's directory
 *   (`JOURNAL_NAME`); the journal is fsynced before a sync is reported done. A harness can
 *   SIGKILL the process (the kernel keeps every write) and then call `applyPowerLossJournal`.
 *
 * Model limits: the synced data end of a file is the end of its furthest write completed before
 * `datasync()` was called, `zeroFill` aside, and its synced length is its size then. That
 * is exact for files whose data only grows, over zeros or at the end, and wrong for a file
 * overwritten below its data end (such writes are rejected by the in-process layer).
 * Truncation, unlink, `remove` and `mkdir` count as durable at once. A rename over an existing file cannot restore the replaced file.
 */
import { basename, dirname, join, resolve } from 'node:path';
import { ForwardingDbFile, ForwardingFileSystem } from './fault-layers.js';
// io.ts imports this module too; nodeFileSystem is only read when a journal is applied.
import { type DbFile, type FileSystem, nodeFileSystem, type OpenMode } from './io.js';

/** Name of the journal file that `PowerLossJournalFileSystem` keeps in each data directory. */
export const JOURNAL_NAME = '.divan-power-loss.journal';

/** Maximum length of the garbage written at the end of a torn file, in bytes. */
const MAX_GARBAGE_BYTES = 512;
/** Size of each zero write when a crash clears lost data, in bytes. */
const ZERO_CHUNK_BYTES = 1 << 20;

export type DurabilityEvent =
  | { op: 'open'; path: string; size: number }
  | { op: 'create'; path: string }
  /** `dataEnd` is absent from journals written before preallocation, and is then `length`. */
  | { op: 'sync'; path: string; length: number; dataEnd?: number }
  | { op: 'truncate'; path: string; length: number }
  | { op: 'rename'; from: string; to: string }
  | { op: 'unlink'; path: string }
  | { op: 'dirsync'; path: string };

interface FileRecord {
  syncedLength: number;
  /** Bytes after this offset and below `syncedLength` are durable zeros. */
  syncedDataEnd: number;
  /** Created since the last sync of its directory, so a crash removes it. */
  creationPending: boolean;
}

/** Outcome of a simulated crash for one file. */
export interface CrashAction {
  path: string;
  action: 'removed' | 'renamed-back' | 'cut' | 'torn' | 'kept';
  /** Length after the crash, for cut, torn and kept files. */
  length?: number;
  /** End of the data kept, for cut, torn and kept files. Zeros follow it up to `length`. */
  dataEnd?: number;
}

export interface CrashOptions {
  /** Seed of the generator that chooses tears; the same seed gives the same crash. */
  seed: number;
  /** Probability that a file with unsynced bytes is torn rather than cut. Default 0.5. */
  tearProbability?: number;
  /** Probability that a torn file ends in garbage bytes. Default 0.5. */
  garbageProbability?: number;
  /** Probability that an unsynced growth of a file survives as zeros. Default 0.25. */
  zeroGrowthProbability?: number;
}

/** The durable state of files as a sequence of events describes it. */
export class DurabilityModel {
  readonly #files = new Map<string, FileRecord>();
  readonly #pendingRenames = new Map<string, Array<{ from: string; to: string }>>();

  apply(event: DurabilityEvent): void {
    switch (event.op) {
      case 'open':
        if (!this.#files.has(event.path)) {
          this.#files.set(event.path, {
            syncedLength: event.size,
            syncedDataEnd: event.size,
            creationPending: false,
          });
        }
        return;
      case 'create':
        this.#files.set(event.path, { syncedLength: 0, syncedDataEnd: 0, creationPending: true });
        return;
      case 'sync': {
        const record = this.#record(event.path);
        record.syncedLength = event.length;
        record.syncedDataEnd = Math.min(event.dataEnd ?? event.length, event.length);
        return;
      }
      case 'truncate': {
        const record = this.#record(event.path);
        record.syncedLength = Math.min(record.syncedLength, event.length);
        record.syncedDataEnd = Math.min(record.syncedDataEnd, event.length);
        return;
      }
      case 'rename':
        this.#rename(event.from, event.to);
        return;
      case 'unlink':
        for (const path of [...this.#files.keys()]) {
          if (path === event.path || path.startsWith(`${event.path}/`)) this.#files.delete(path);
        }
        return;
      case 'dirsync':
        for (const [path, record] of this.#files) {
          if (dirname(path) === event.path) record.creationPending = false;
        }
        this.#pendingRenames.delete(event.path);
        return;
    }
  }

  /** Applies the crash to the files on `fileSystem` and clears the record. */
  async crash(fileSystem: FileSystem, options: CrashOptions): Promise<CrashAction[]> {
    const random = seededRandom(options.seed);
    const actions: CrashAction[] = [];
    for (const renames of this.#pendingRenames.values()) {
      for (const { from, to } of renames.reverse()) {
        if (await fileSystem.exists(to)) {
          await fileSystem.rename(to, from);
          this.#move(to, from);
          actions.push({ path: to, action: 'renamed-back' });
        }
      }
    }
    for (const [path, record] of this.#files) {
      if (!(await fileSystem.exists(path))) continue;
      if (record.creationPending) {
        await fileSystem.unlink(path);
        actions.push({ path, action: 'removed' });
        continue;
      }
      actions.push(await cutFile(fileSystem, path, record, random, options));
    }
    this.#files.clear();
    this.#pendingRenames.clear();
    return actions;
  }

  #record(path: string): FileRecord {
    let record = this.#files.get(path);
    if (record === undefined) {
      record = { syncedLength: 0, syncedDataEnd: 0, creationPending: false };
      this.#files.set(path, record);
    }
    return record;
  }

  #rename(from: string, to: string): void {
    this.#move(from, to);
    const directory = dirname(to);
    const renames = this.#pendingRenames.get(directory) ?? [];
    renames.push({ from, to });
    this.#pendingRenames.set(directory, renames);
  }

  #move(from: string, to: string): void {
    const record = this.#files.get(from);
    this.#files.delete(from);
    if (record !== undefined) this.#files.set(to, record);
  }
}

async function cutFile(
  fileSystem: FileSystem,
  path: string,
  record: FileRecord,
  random: () => number,
  options: CrashOptions,
): Promise<CrashAction> {
  const file = await fileSystem.open(path);
  try {
    const size = file.size();
    const syncedDataEnd = Math.min(record.syncedDataEnd, record.syncedLength);
    if (size <= syncedDataEnd) return { path, action: 'kept', length: size, dataEnd: size };
    let dataEnd = syncedDataEnd;
    // Tears fall in the data written since the sync, not in the zeros that may follow it.
    const writtenEnd = endOfNonZero(file, syncedDataEnd, size);
    const torn = random() < (options.tearProbability ?? 0.5) && writtenEnd > syncedDataEnd;
    if (torn) {
      dataEnd = syncedDataEnd + 1 + Math.floor(random() * (writtenEnd - syncedDataEnd));
      if (random() < (options.garbageProbability ?? 0.5)) {
        const garbageLength =
          1 + Math.floor(random() * Math.min(dataEnd - syncedDataEnd, MAX_GARBAGE_BYTES));
        const garbage = Buffer.alloc(garbageLength);
        for (let i = 0; i < garbageLength; i++) garbage[i] = Math.floor(random() * 256);
        await file.write(garbage, dataEnd - garbageLength);
      }
    }
    let length = Math.min(size, Math.max(record.syncedLength, dataEnd));
    if (length < size && random() < (options.zeroGrowthProbability ?? 0.25)) length = size;
    for (let position = dataEnd; position < length; position += ZERO_CHUNK_BYTES) {
      await file.write(Buffer.alloc(Math.min(ZERO_CHUNK_BYTES, length - position)), position);
    }
    if (length < size) await file.truncate(length);
    return { path, action: torn ? 'torn' : 'cut', length, dataEnd };
  } finally {
    await file.close();
  }
}

/** Returns the end of the last non-zero byte in [start, end) of `file`, or `start` if none. */
function endOfNonZero(file: DbFile, start: number, end: number): number {
  const chunk = Buffer.alloc(ZERO_CHUNK_BYTES);
  for (let stop = end; stop > start; stop -= chunk.length) {
    const from = Math.max(start, stop - chunk.length);
    const read = file.readSync(chunk, 0, stop - from, from);
    for (let i = read - 1; i >= 0; i--) if (chunk[i] !== 0) return from + i + 1;
  }
  return start;
}

/** Returns a generator of numbers in [0, 1) from a 32-bit seed (mulberry32). */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let mixed = state;
    mixed = Math.imul(mixed ^ (mixed >>> 15), mixed | 1);
    mixed ^= mixed + Math.imul(mixed ^ (mixed >>> 7), mixed | 61);
    return ((mixed ^ (mixed >>> 14)) >>> 0) / 2 ** 32;
  };
}

/** The error every call on a file opened before a simulated crash raises. */
export class PowerLossError extends Error {
  override readonly name = 'PowerLossError';
  readonly code = 'EIO';

  constructor(readonly path: string) {
    super(`EIO: ${path} was open when power loss was simulated`);
  }
}

/**
 * Base of the two power-loss layers: reports each durability event to `record` and wraps
 * files so that their syncs and truncations are recorded too.
 */
abstract class RecordingFileSystem extends ForwardingFileSystem {
  /** Open files by their current absolute path, so events follow a file across renames. */
  protected readonly openFiles = new Set<RecordingFile>();

  protected abstract record(event: DurabilityEvent): Promise<void>;

  override async open(path: string, mode?: OpenMode): Promise<DbFile> {
    const file = await this.inner.open(path, mode);
    await this.record({ op: 'open', path: resolve(path), size: file.size() });
    return this.wrap(file);
  }

  override async create(path: string): Promise<DbFile> {
    const file = await this.inner.create(path);
    await this.record({ op: 'create', path: resolve(path) });
    return this.wrap(file);
  }

  override async rename(from: string, to: string): Promise<void> {
    await this.inner.rename(from, to);
    for (const file of this.openFiles) {
      if (file.currentPath === resolve(from)) file.currentPath = resolve(to);
    }
    await this.record({ op: 'rename', from: resolve(from), to: resolve(to) });
  }

  override async unlink(path: string): Promise<void> {
    await this.inner.unlink(path);
    await this.record({ op: 'unlink', path: resolve(path) });
  }

  override async remove(path: string): Promise<void> {
    await this.inner.remove(path);
    await this.record({ op: 'unlink', path: resolve(path) });
  }

  override async syncDirectory(path: string): Promise<void> {
    await this.inner.syncDirectory(path);
    await this.record({ op: 'dirsync', path: resolve(path) });
  }

  /** Called by recording files; `record` runs after the inner operation succeeded. */
  recordFileEvent(event: DurabilityEvent): Promise<void> {
    return this.record(event);
  }

  register(file: RecordingFile): void {
    this.openFiles.add(file);
  }

  unregister(file: RecordingFile): void {
    this.openFiles.delete(file);
  }
}

class RecordingFile extends ForwardingDbFile {
  /** Absolute path of the file now; renames through the owning layer update it. */
  currentPath: string;
  /** End of the furthest completed write other than a `zeroFill`, or the size at open. */
  protected dataEnd: number;
  /** End of the furthest write started, completed or not, other than a `zeroFill`. */
  protected startedDataEnd: number;

  constructor(
    inner: DbFile,
    private readonly owner: RecordingFileSystem,
    private readonly isAlive: () => boolean,
    private readonly track: <T>(operation: Promise<T>) => Promise<T>,
  ) {
    super(inner);
    this.currentPath = resolve(inner.path);
    this.dataEnd = inner.size();
    this.startedDataEnd = this.dataEnd;
    owner.register(this);
  }

  #checkAlive(): void {
    if (!this.isAlive()) throw new PowerLossError(this.path);
  }

  override size(): number {
    this.#checkAlive();
    return this.inner.size();
  }

  override readSync(target: Uint8Array, offset: number, length: number, position: number): number {
    this.#checkAlive();
    return this.inner.readSync(target, offset, length, position);
  }

  override async write(source: Uint8Array, position: number): Promise<void> {
    this.#checkAlive();
    const end = position + source.length;
    this.startedDataEnd = Math.max(this.startedDataEnd, end);
    await this.track(this.inner.write(source, position));
    // Only a write completed before a sync starts is covered by it.
    this.dataEnd = Math.max(this.dataEnd, end);
  }

  override writeSync(source: Uint8Array, position: number): void {
    this.#checkAlive();
    const end = position + source.length;
    this.startedDataEnd = Math.max(this.startedDataEnd, end);
    this.inner.writeSync(source, position);
    this.dataEnd = Math.max(this.dataEnd, end);
  }

  override zeroFill(position: number, length: number): void {
    this.#checkAlive();
    this.inner.zeroFill(position, length);
  }

  override async truncate(length: number): Promise<void> {
    this.#checkAlive();
    this.dataEnd = Math.min(this.dataEnd, length);
    this.startedDataEnd = Math.min(this.startedDataEnd, length);
    await this.track(this.inner.truncate(length));
    await this.owner.recordFileEvent({ op: 'truncate', path: this.currentPath, length });
  }

  override async datasync(): Promise<void> {
    this.#checkAlive();
    const length = this.inner.size();
    const dataEnd = this.dataEnd;
    await this.track(this.inner.datasync());
    this.#checkAlive();
    await this.owner.recordFileEvent({ op: 'sync', path: this.currentPath, length, dataEnd });
  }

  /** Closes the descriptor; allowed after a crash, so that no descriptor leaks. */
  override async close(): Promise<void> {
    this.owner.unregister(this);
    await this.inner.close();
  }
}

/**
 * In-process power-loss layer. `crash()` waits for writes in flight, undoes everything not
 * durable and makes every file opened before it fail. The layer itself stays usable, like a
 * machine after a reboot.
 */
export class PowerLossFileSystem extends RecordingFileSystem {
  readonly #model = new DurabilityModel();
  readonly #inFlight = new Set<Promise<unknown>>();
  #boot = 0;

  protected async record(event: DurabilityEvent): Promise<void> {
    this.#model.apply(event);
  }

  protected override wrap(file: DbFile): DbFile {
    const boot = this.#boot;
    return new PowerLossFile(
      file,
      this,
      () => this.#boot === boot,
      (operation) => this.#track(operation),
    );
  }

  /** Simulates a power loss now; resolves with what happened to each recorded file. */
  async crash(options: CrashOptions): Promise<CrashAction[]> {
    this.#boot += 1;
    await Promise.allSettled([...this.#inFlight]);
    return this.#model.crash(this.inner, options);
  }

  #track<T>(operation: Promise<T>): Promise<T> {
    this.#inFlight.add(operation);
    const forget = () => this.#inFlight.delete(operation);
    operation.then(forget, forget);
    return operation;
  }
}

class PowerLossFile extends RecordingFile {
  #syncedDataEnd = 0;

  override async write(source: Uint8Array, position: number): Promise<void> {
    this.#checkAppendOnly(position);
    await super.write(source, position);
  }

  override writeSync(source: Uint8Array, position: number): void {
    this.#checkAppendOnly(position);
    super.writeSync(source, position);
  }

  override zeroFill(position: number, length: number): void {
    if (position < this.startedDataEnd) {
      throw new Error(
        `power-loss layer: zero fill at ${position} in ${this.path} is below the data end ${this.startedDataEnd}, so it would overwrite data`,
      );
    }
    super.zeroFill(position, length);
  }

  #checkAppendOnly(position: number): void {
    if (position < this.#syncedDataEnd) {
      throw new Error(
        `power-loss layer: write at ${position} in ${this.path} is below the synced data end ${this.#syncedDataEnd}; the layer models files whose data only grows`,
      );
    }
  }

  override async truncate(length: number): Promise<void> {
    await super.truncate(length);
    this.#syncedDataEnd = Math.min(this.#syncedDataEnd, length);
  }

  override async datasync(): Promise<void> {
    const dataEnd = this.dataEnd;
    await super.datasync();
    this.#syncedDataEnd = Math.max(this.#syncedDataEnd, dataEnd);
  }
}

/**
 * Cross-process power-loss layer: writes every durability event as a JSON line to
 * `JOURNAL_NAME` in the directory of the file concerned. Sync events are fsynced into the
 * journal before the sync is reported done. Other events are only written, which is enough
 * because a killed process loses nothing the kernel already has.
 */
export class PowerLossJournalFileSystem extends RecordingFileSystem {
  readonly #journals = new Map<string, JournalWriter>();

  protected record(event: DurabilityEvent): Promise<void> {
    const directory =
      event.op === 'rename' || event.op === 'dirsync'
        ? eventDirectory(event)
        : dirname(eventPath(event));
    let journal = this.#journals.get(directory);
    if (journal === undefined) {
      journal = new JournalWriter(this.inner, join(directory, JOURNAL_NAME));
      this.#journals.set(directory, journal);
    }
    const durable = event.op === 'sync' || event.op === 'dirsync' || event.op === 'rename';
    return journal.append(relativeEvent(event, directory), durable);
  }

  protected override wrap(file: DbFile): DbFile {
    return new RecordingFile(
      file,
      this,
      () => true,
      (operation) => operation,
    );
  }

  /** Closes the journal files. */
  async close(): Promise<void> {
    for (const journal of this.#journals.values()) await journal.close();
    this.#journals.clear();
  }
}

function eventPath(event: DurabilityEvent): string {
  return event.op === 'rename' ? event.to : event.path;
}

function eventDirectory(event: DurabilityEvent): string {
  return event.op === 'dirsync' ? event.path : dirname(eventPath(event));
}

/** Replaces absolute paths by names relative to the journal's directory. */
function relativeEvent(event: DurabilityEvent, directory: string): DurabilityEvent {
  const name = (path: string) => (dirname(path) === directory ? basename(path) : path);
  switch (event.op) {
    case 'rename':
      return { op: 'rename', from: name(event.from), to: name(event.to) };
    case 'dirsync':
      return { op: 'dirsync', path: '.' };
    default:
      return { ...event, path: name(event.path) };
  }
}

/** Resolves the names of a journaled event against the journal's directory. */
function absoluteEvent(event: DurabilityEvent, directory: string): DurabilityEvent {
  switch (event.op) {
    case 'rename':
      return {
        op: 'rename',
        from: resolve(directory, event.from),
        to: resolve(directory, event.to),
      };
    default:
      return { ...event, path: resolve(directory, event.path) };
  }
}

/** Appends lines to one journal file, in order, fsyncing when asked. */
class JournalWriter {
  #file: Promise<DbFile> | undefined;
  #position = 0;
  #queue: Promise<void> = Promise.resolve();

  constructor(
    private readonly fileSystem: FileSystem,
    private readonly path: string,
  ) {}

  append(event: DurabilityEvent, durable: boolean): Promise<void> {
    const line = Buffer.from(`${JSON.stringify(event)}\n`);
    const step = this.#queue.then(async () => {
      const file = await this.#open();
      await file.write(line, this.#position);
      this.#position += line.length;
      if (durable) await file.datasync();
    });
    this.#queue = step.catch(() => undefined);
    return step;
  }

  async close(): Promise<void> {
    await this.#queue;
    if (this.#file !== undefined) await (await this.#file).close();
    this.#file = undefined;
  }

  #open(): Promise<DbFile> {
    this.#file ??= (async () => {
      const exists = await this.fileSystem.exists(this.path);
      const file = exists
        ? await this.fileSystem.open(this.path)
        : await this.fileSystem.create(this.path);
      this.#position = file.size();
      if (!exists) await this.fileSystem.syncDirectory(dirname(this.path));
      return file;
    })();
    return this.#file;
  }
}

export interface ApplyJournalOptions extends CrashOptions {
  /** File system to read the journal from and cut files on; the real one by default. */
  fileSystem?: FileSystem;
  /** Keep the journal file after applying it; by default it is removed. */
  keepJournal?: boolean;
}

/**
 * Applies the power loss that the journal in `directory` describes to the files of that
 * directory: run it after the process that wrote them was killed, before anything reopens
 * them. Returns what happened to each file; a directory without a journal is left alone.
 */
export async function applyPowerLossJournal(
  directory: string,
  options: ApplyJournalOptions,
): Promise<CrashAction[]> {
  const fileSystem = options.fileSystem ?? nodeFileSystem;
  const absolute = resolve(directory);
  const journalPath = join(absolute, JOURNAL_NAME);
  if (!(await fileSystem.exists(journalPath))) return [];
  const model = new DurabilityModel();
  for (const event of await readJournal(fileSystem, journalPath)) {
    model.apply(absoluteEvent(event, absolute));
  }
  const actions = await model.crash(fileSystem, options);
  if (options.keepJournal !== true) {
    await fileSystem.unlink(journalPath);
    await fileSystem.syncDirectory(absolute);
  }
  return actions;
}

async function readJournal(fileSystem: FileSystem, path: string): Promise<DurabilityEvent[]> {
  const file = await fileSystem.open(path, 'read-only');
  try {
    const bytes = Buffer.alloc(file.size());
    file.readSync(bytes, 0, bytes.length, 0);
    const events: DurabilityEvent[] = [];
    for (const line of bytes.toString('utf8').split('\n')) {
      // A kill can leave the last line half written; it was never reported durable.
      if (line === '') continue;
      try {
        events.push(JSON.parse(line) as DurabilityEvent);
      } catch {
        break;
      }
    }
    return events;
  } finally {
    await file.close();
  }
}
