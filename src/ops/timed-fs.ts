/**
 * `timedFileSystem`: a `FileSystem` layer that times every fsync (a file's `datasync` and
 * `syncDirectory`) and reports it to a callback, for the fsync count and duration metrics.
 *
 * It changes nothing else: every call goes to the layer below unchanged, and a failed fsync
 * is reported with its duration and then rethrown as it was.
 */
import { performance } from 'node:perf_hooks';
import type { DbFile, FileSystem, OpenMode } from '../storage/io.js';
import type { FsyncKind } from './metrics.js';

const MILLISECONDS_PER_SECOND = 1000;

/** Receives each fsync's kind and duration in seconds. */
export type FsyncObserver = (kind: FsyncKind, seconds: number) => void;

async function timed<T>(
  kind: FsyncKind,
  observe: FsyncObserver,
  sync: () => Promise<T>,
): Promise<T> {
  const started = performance.now();
  try {
    return await sync();
  } finally {
    observe(kind, (performance.now() - started) / MILLISECONDS_PER_SECOND);
  }
}

class TimedDbFile implements DbFile {
  constructor(
    readonly inner: DbFile,
    readonly observe: FsyncObserver,
  ) {}

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

  truncate(length: number): Promise<void> {
    return this.inner.truncate(length);
  }

  datasync(): Promise<void> {
    return timed('file', this.observe, () => this.inner.datasync());
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

/** Wraps `inner` so that every fsync through it is reported to `observe`. */
export function timedFileSystem(inner: FileSystem, observe: FsyncObserver): FileSystem {
  return {
    open: async (path: string, mode?: OpenMode) =>
      new TimedDbFile(await inner.open(path, mode), observe),
    create: async (path: string) => new TimedDbFile(await inner.create(path), observe),
    rename: (from, to) => inner.rename(from, to),
    unlink: (path) => inner.unlink(path),
    exists: (path) => inner.exists(path),
    mkdir: (path) => inner.mkdir(path),
    readdir: (path) => inner.readdir(path),
    syncDirectory: (path) => timed('directory', observe, () => inner.syncDirectory(path)),
    remove: (path) => inner.remove(path),
  };
}
