/**
 * File I/O for database files: the `FileSystem` and `DbFile` interfaces, the real
 * implementation over `node:fs`, and `fileSystemFromEnv`, which stacks fault layers chosen
 * by the `DIVAN_FAULTS` environment variable.
 *
 * This is the only module that touches `node:fs` for database files. Everything above it
 * receives a `FileSystem`, so tests and fault runs can put a fault layer underneath.
 *
 * Reads are synchronous positional reads (`fs.readSync` with a position): the tree code above
 * is synchronous, and a read served by the page cache takes microseconds. The cost is that a
 * read that misses the page cache blocks the event loop for one disk access. Writes, truncation
 * and `datasync()` are asynchronous and run on the libuv thread pool, so an fsync never blocks
 * the event loop.
 *
 * `DIVAN_FAULTS` is a comma-separated list of layers, each `name` or `name=value`, stacked
 * over the real file system in this order whatever order they are listed in (the first is
 * closest to the disk):
 *   power-loss            in-process power-loss recorder (`PowerLossFileSystem`)
 *   power-loss-journal    cross-process recorder: synced lengths go to a journal file in each
 *                         data directory (`PowerLossJournalFileSystem`)
 *   fsync-fail-after=N    the (N+1)th and every later fsync of a file fails with EIO
 *   fsync-fail            every fsync fails from the start
 *   fsync-delay-ms=MS     each fsync waits MS milliseconds before it starts
 * Example: `DIVAN_FAULTS=power-loss-journal,fsync-delay-ms=5`. An empty or unset variable
 * gives the real file system with no layer.
 */
import * as fs from 'node:fs';
import { promisify } from 'node:util';
import {
  FsyncDelayFileSystem,
  type FsyncDelaySettings,
  FsyncFailureFileSystem,
  type FsyncFailureSettings,
} from './fault-layers.js';
import { PowerLossFileSystem, PowerLossJournalFileSystem } from './power-loss.js';

/** An open database file. Positions and lengths are in bytes. */
export interface DbFile {
  readonly path: string;
  /** Current length of the file as the operating system reports it. */
  size(): number;
  /**
   * Reads up to `length` bytes at file position `position` into `target` at `targetOffset`,
   * synchronously. Returns the number of bytes read, less than `length` only at end of file.
   */
  readSync(target: Uint8Array, targetOffset: number, length: number, position: number): number;
  /** Writes all of `source` at file position `position`. */
  write(source: Uint8Array, position: number): Promise<void>;
  /**
   * Writes all of `source` at `position` synchronously. Meant for small writes: the page cache
   * takes them in microseconds, less than a hand-off to a thread-pool job costs.
   */
  writeSync(source: Uint8Array, position: number): void;
  /**
   * Writes `length` zero bytes at `position` synchronously, to allocate file space ahead of the
   * data (block-file.ts gives the reason). The power-loss layers count the zeros in the file's
   * length but not in its data: a crash may turn unsynced data written over them back into
   * zeros.
   */
  zeroFill(position: number, length: number): void;
  /** Cuts or extends the file to `length` bytes. */
  truncate(length: number): Promise<void>;
  /** Makes the file's data durable (fdatasync). */
  datasync(): Promise<void>;
  close(): Promise<void>;
}

export type OpenMode = 'read-only' | 'read-write';

/** The file system operations the storage layer uses. Paths are absolute or cwd-relative. */
export interface FileSystem {
  /** Opens an existing file. */
  open(path: string, mode?: OpenMode): Promise<DbFile>;
  /** Creates a new, empty file for reading and writing; fails with EEXIST if it exists. */
  create(path: string): Promise<DbFile>;
  /** Renames `from` to `to`, replacing `to` if it exists. Durable only after `syncDirectory`. */
  rename(from: string, to: string): Promise<void>;
  unlink(path: string): Promise<void>;
  exists(path: string): Promise<boolean>;
  /** Creates a directory and its missing parents. */
  mkdir(path: string): Promise<void>;
  readdir(path: string): Promise<string[]>;
  /** Makes the directory's entries durable (fsync of the directory). */
  syncDirectory(path: string): Promise<void>;
  /** Removes a file or a directory tree; a missing path is not an error. */
  remove(path: string): Promise<void>;
}

const writeAsync = promisify(fs.write);
const fdatasyncAsync = promisify(fs.fdatasync);
const ftruncateAsync = promisify(fs.ftruncate);
const closeAsync = promisify(fs.close);
const openAsync = promisify(fs.open);
const fsyncAsync = promisify(fs.fsync);

/** Source of the bytes `zeroFill` writes. */
const ZEROS = Buffer.alloc(256 << 10);

class NodeDbFile implements DbFile {
  #fd: number;

  constructor(
    readonly path: string,
    fd: number,
  ) {
    this.#fd = fd;
  }

  size(): number {
    return fs.fstatSync(this.#fd).size;
  }

  readSync(target: Uint8Array, targetOffset: number, length: number, position: number): number {
    let done = 0;
    while (done < length) {
      const count = fs.readSync(
        this.#fd,
        target,
        targetOffset + done,
        length - done,
        position + done,
      );
      if (count === 0) break;
      done += count;
    }
    return done;
  }

  async write(source: Uint8Array, position: number): Promise<void> {
    let done = 0;
    while (done < source.length) {
      const { bytesWritten } = await writeAsync(
        this.#fd,
        source,
        done,
        source.length - done,
        position + done,
      );
      done += bytesWritten;
    }
  }

  writeSync(source: Uint8Array, position: number): void {
    let done = 0;
    while (done < source.length) {
      done += fs.writeSync(this.#fd, source, done, source.length - done, position + done);
    }
  }

  zeroFill(position: number, length: number): void {
    let done = 0;
    while (done < length) {
      const count = Math.min(ZEROS.length, length - done);
      done += fs.writeSync(this.#fd, ZEROS, 0, count, position + done);
    }
  }

  truncate(length: number): Promise<void> {
    return ftruncateAsync(this.#fd, length);
  }

  datasync(): Promise<void> {
    return fdatasyncAsync(this.#fd);
  }

  close(): Promise<void> {
    return closeAsync(this.#fd);
  }
}

/** The real file system, through `node:fs`. */
export class NodeFileSystem implements FileSystem {
  async open(path: string, mode: OpenMode = 'read-write'): Promise<DbFile> {
    const fd = await openAsync(path, mode === 'read-only' ? 'r' : 'r+');
    return new NodeDbFile(path, fd);
  }

  async create(path: string): Promise<DbFile> {
    const fd = await openAsync(path, 'wx+');
    return new NodeDbFile(path, fd);
  }

  rename(from: string, to: string): Promise<void> {
    return fs.promises.rename(from, to);
  }

  unlink(path: string): Promise<void> {
    return fs.promises.unlink(path);
  }

  async exists(path: string): Promise<boolean> {
    try {
      await fs.promises.access(path);
      return true;
    } catch {
      return false;
    }
  }

  async mkdir(path: string): Promise<void> {
    await fs.promises.mkdir(path, { recursive: true });
  }

  readdir(path: string): Promise<string[]> {
    return fs.promises.readdir(path);
  }

  async syncDirectory(path: string): Promise<void> {
    const fd = await openAsync(path, 'r');
    try {
      await fsyncAsync(fd);
    } finally {
      await closeAsync(fd);
    }
  }

  remove(path: string): Promise<void> {
    return fs.promises.rm(path, { recursive: true, force: true });
  }
}

/** The process-wide real file system. */
export const nodeFileSystem: FileSystem = new NodeFileSystem();

/** A file system stack and handles on its fault layers' mutable settings. */
export interface FaultStack {
  fileSystem: FileSystem;
  fsyncDelay?: FsyncDelaySettings;
  fsyncFailure?: FsyncFailureSettings;
  powerLoss?: PowerLossFileSystem;
  powerLossJournal?: PowerLossJournalFileSystem;
}

/** Names of the layers that `DIVAN_FAULTS` accepts. */
export const FAULT_LAYER_NAMES = [
  'power-loss',
  'power-loss-journal',
  'fsync-fail-after',
  'fsync-fail',
  'fsync-delay-ms',
] as const;

/**
 * Builds the file system stack that `env.DIVAN_FAULTS` names (syntax in this file's header).
 * Throws an Error naming the bad item on an unknown layer or an invalid value.
 */
export function fileSystemFromEnv(
  env: Record<string, string | undefined> = process.env,
  base: FileSystem = nodeFileSystem,
): FaultStack {
  const settings = parseFaultSpec(env.DIVAN_FAULTS ?? '');
  const stack: FaultStack = { fileSystem: base };
  if (settings.has('power-loss')) {
    stack.powerLoss = new PowerLossFileSystem(stack.fileSystem);
    stack.fileSystem = stack.powerLoss;
  }
  if (settings.has('power-loss-journal')) {
    stack.powerLossJournal = new PowerLossJournalFileSystem(stack.fileSystem);
    stack.fileSystem = stack.powerLossJournal;
  }
  const failAfter = settings.get('fsync-fail-after');
  if (failAfter !== undefined || settings.has('fsync-fail')) {
    const layer = new FsyncFailureFileSystem(stack.fileSystem, {
      failAfterSyncs: failAfter ?? 0,
    });
    stack.fsyncFailure = layer.settings;
    stack.fileSystem = layer;
  }
  const delayMs = settings.get('fsync-delay-ms');
  if (delayMs !== undefined) {
    const layer = new FsyncDelayFileSystem(stack.fileSystem, { delayMs });
    stack.fsyncDelay = layer.settings;
    stack.fileSystem = layer;
  }
  return stack;
}

function parseFaultSpec(spec: string): Map<string, number | undefined> {
  const settings = new Map<string, number | undefined>();
  for (const item of spec.split(',')) {
    const trimmed = item.trim();
    if (trimmed === '') continue;
    const [name, value] = trimmed.split('=', 2) as [string, string | undefined];
    if (!(FAULT_LAYER_NAMES as readonly string[]).includes(name)) {
      throw new Error(
        `DIVAN_FAULTS: unknown layer "${name}"; expected one of ${FAULT_LAYER_NAMES.join(', ')}`,
      );
    }
    const needsValue = name === 'fsync-fail-after' || name === 'fsync-delay-ms';
    if (needsValue !== (value !== undefined)) {
      const expected = needsValue ? `${name}=<non-negative integer>` : name;
      throw new Error(`DIVAN_FAULTS: invalid item "${trimmed}"; expected ${expected}`);
    }
    const number = value === undefined ? undefined : Number(value);
    if (number !== undefined && !(Number.isSafeInteger(number) && number >= 0)) {
      throw new Error(`DIVAN_FAULTS: invalid value in "${trimmed}"; expected an integer >= 0`);
    }
    settings.set(name, number);
  }
  return settings;
}
