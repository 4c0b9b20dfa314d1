/**
 * Fault layers that delay or fail fsync. Each layer implements `FileSystem` over another one
 * and forwards everything it does not change. Their settings objects are mutable, so a test or
 * a running node can change them while files are open.
 *
 * These layers delay or fail file `datasync()` only; directory syncs pass through unchanged.
 * The power-loss layers are in `power-loss.ts`.
 */
import type { DbFile, FileSystem, OpenMode } from './io.js';

/** A file that forwards every call to `inner`; fault layers override what they change. */
export class ForwardingDbFile implements DbFile {
  constructor(protected readonly inner: DbFile) {}

  get path(): string {
    return this.inner.path;
  }

  size(): number {
    return this.inner.size();
  }

  readSync(target: Uint8Array, targetOffset: number, length: number, position: number): number {
    return this.inner.readSync(target, targetOffset, length, position);
  }

  write(source: Uint8Array, position: number): Promise<void> {
    return this.inner.write(source, position);
  }

  writeSync(source: Uint8Array, position: number): void {
    this.inner.writeSync(source, position);
  }

  zeroFill(position: number, length: number): void {
    this.inner.zeroFill(position, length);
  }

  truncate(length: number): Promise<void> {
    return this.inner.truncate(length);
  }

  datasync(): Promise<void> {
    return this.inner.datasync();
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

/** A file system that forwards every call to `inner`, wrapping the files it opens. */
export class ForwardingFileSystem implements FileSystem {
  constructor(protected readonly inner: FileSystem) {}

  /** Wraps a file opened by `inner`; layers that change file behaviour override it. */
  protected wrap(file: DbFile): DbFile {
    return file;
  }

  async open(path: string, mode?: OpenMode): Promise<DbFile> {
    return this.wrap(await this.inner.open(path, mode));
  }

  async create(path: string): Promise<DbFile> {
    return this.wrap(await this.inner.create(path));
  }

  rename(from: string, to: string): Promise<void> {
    return this.inner.rename(from, to);
  }

  unlink(path: string): Promise<void> {
    return this.inner.unlink(path);
  }

  exists(path: string): Promise<boolean> {
    return this.inner.exists(path);
  }

  mkdir(path: string): Promise<void> {
    return this.inner.mkdir(path);
  }

  readdir(path: string): Promise<string[]> {
    return this.inner.readdir(path);
  }

  syncDirectory(path: string): Promise<void> {
    return this.inner.syncDirectory(path);
  }

  remove(path: string): Promise<void> {
    return this.inner.remove(path);
  }
}

/** Mutable settings of `FsyncDelayFileSystem`. */
export interface FsyncDelaySettings {
  /** Time each file fsync waits before it starts, in milliseconds. */
  delayMs: number;
}

/** A layer that makes every file fsync wait `settings.delayMs` before it runs. */
export class FsyncDelayFileSystem extends ForwardingFileSystem {
  readonly settings: FsyncDelaySettings;

  constructor(inner: FileSystem, settings: FsyncDelaySettings) {
    super(inner);
    this.settings = settings;
  }

  protected override wrap(file: DbFile): DbFile {
    return new FsyncDelayFile(file, this.settings);
  }
}

class FsyncDelayFile extends ForwardingDbFile {
  constructor(
    inner: DbFile,
    private readonly settings: FsyncDelaySettings,
  ) {
    super(inner);
  }

  override async datasync(): Promise<void> {
    const delayMs = this.settings.delayMs;
    if (delayMs > 0) await new Promise((resolve) => setTimeout(resolve, delayMs));
    return this.inner.datasync();
  }
}

/** Mutable settings of `FsyncFailureFileSystem`. */
export interface FsyncFailureSettings {
  /**
   * Number of file fsyncs (counted over all files of the layer) that succeed; every later one
   * fails. `null` lets every fsync succeed. Setting it to `syncCount` fails the next one.
   */
  failAfterSyncs: number | null;
  /** File fsyncs attempted so far through this layer, failed ones included. */
  syncCount: number;
}

/** The error an injected fsync failure raises, shaped like the EIO that fdatasync gives. */
export class InjectedFsyncError extends Error {
  override readonly name = 'InjectedFsyncError';
  readonly code = 'EIO';

  constructor(readonly path: string) {
    super(`EIO: injected fsync failure on ${path}`);
  }
}

/** A layer that fails file fsyncs once `settings.failAfterSyncs` of them have succeeded. */
export class FsyncFailureFileSystem extends ForwardingFileSystem {
  readonly settings: FsyncFailureSettings;

  constructor(inner: FileSystem, settings: { failAfterSyncs: number | null }) {
    super(inner);
    this.settings = { failAfterSyncs: settings.failAfterSyncs, syncCount: 0 };
  }

  protected override wrap(file: DbFile): DbFile {
    return new FsyncFailureFile(file, this.settings);
  }
}

class FsyncFailureFile extends ForwardingDbFile {
  constructor(
    inner: DbFile,
    private readonly settings: FsyncFailureSettings,
  ) {
    super(inner);
  }

  override async datasync(): Promise<void> {
    const { failAfterSyncs } = this.settings;
    const attempt = this.settings.syncCount;
    this.settings.syncCount += 1;
    if (failAfterSyncs !== null && attempt >= failAfterSyncs) {
      throw new InjectedFsyncError(this.path);
    }
    return this.inner.datasync();
  }
}
